//! Telling a relay's replay from an ordinary duplicate. Every copy of a message after the first fails to open (its
//! key is spent), so both are dropped; what differs is the envelope id. The relay redelivers under the id the
//! sender chose (until we acknowledge it) and a sender retries under it too, so a copy under the same id is
//! at-least-once delivery, silent. One under another id was sent again by the relay (or by a sender that does not
//! follow the protocol; only the header is read, the copy does not open): it is reported like a forgery.

use std::collections::{HashMap, VecDeque};

use uuid::Uuid;

/// Messages whose envelope id is remembered (under 200 kB). A copy of an older one, or one after a restart, is
/// dropped silently as before: its key is gone either way.
const REMEMBERED: usize = 2048;

/// A message: its session id (16 bytes) and number.
type MessageKey = ([u8; 16], u64);

/// The envelope ids of the last [`REMEMBERED`] messages opened, oldest first out.
#[derive(Debug, Default)]
pub(crate) struct RecentlyOpened {
    envelope_of: HashMap<MessageKey, Uuid>,
    order: VecDeque<MessageKey>,
}

impl RecentlyOpened {
    /// Message `n` of `session_id` was opened from envelope `envelope`.
    pub(crate) fn note(&mut self, session_id: &[u8], n: u64, envelope: Uuid) {
        let Some(key) = key(session_id, n) else {
            return;
        };
        if self.envelope_of.insert(key, envelope).is_some() {
            return;
        }
        self.order.push_back(key);
        if self.order.len() > REMEMBERED {
            if let Some(oldest) = self.order.pop_front() {
                self.envelope_of.remove(&oldest);
            }
        }
    }

    /// For a copy of message `n` of `session_id` that came in `envelope`: the envelope id it was first opened
    /// from, when that differs (a replay); `None` for a redelivery or a message not remembered.
    pub(crate) fn replayed(&self, session_id: &[u8], n: u64, envelope: Uuid) -> Option<Uuid> {
        self.envelope_of
            .get(&key(session_id, n)?)
            .copied()
            .filter(|first| *first != envelope)
    }
}

/// `None` for a session id of another length (no session has one).
fn key(session_id: &[u8], n: u64) -> Option<MessageKey> {
    Some((<[u8; 16]>::try_from(session_id).ok()?, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_under_another_envelope_id_is_a_replay_and_the_memory_is_bounded() {
        let mut opened = RecentlyOpened::default();
        let (first, other) = (Uuid::new_v4(), Uuid::new_v4());
        opened.note(b"session-16-bytes", 0, first);
        assert_eq!(opened.replayed(b"session-16-bytes", 0, first), None, "a redelivery");
        assert_eq!(opened.replayed(b"session-16-bytes", 0, other), Some(first));
        assert_eq!(opened.replayed(b"session-16-bytes", 1, other), None, "never opened");
        assert_eq!(opened.replayed(b"another-16-byte!", 0, other), None);
        assert_eq!(opened.replayed(b"short", 0, other), None, "no session has such an id");
        for n in 1..=REMEMBERED as u64 {
            opened.note(b"session-16-bytes", n, Uuid::new_v4());
        }
        assert_eq!(opened.order.len(), REMEMBERED);
        assert_eq!(opened.envelope_of.len(), REMEMBERED);
        assert_eq!(
            opened.replayed(b"session-16-bytes", 0, other),
            None,
            "forgotten, oldest first"
        );
    }
}

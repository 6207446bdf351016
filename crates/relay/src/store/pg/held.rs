//! Envelopes this relay committed, held until its own announcement of them comes back.
//!
//! Every push on PostgreSQL follows the announcements, this relay's own included: they arrive in commit order, so
//! a recipient's envelopes reach its sockets in the order they were stored whichever relay stored them. (Pushing
//! its own at once let a relay's fresh envelope overtake an older one another relay had announced.) Holding what
//! this relay wrote spares reading it back; one not held (over the budget, or committed before the listener
//! started) is read from the database like another relay's.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::store::StoredEnvelope;

/// Body bytes held at most: past it envelopes are read back instead. Announcements come back within milliseconds,
/// so this is only reached when the listener is lost, and then [`Held::clear`] empties it.
const MOST_BYTES: usize = 32 << 20;

/// A recipient and a seq: how an announcement names an envelope.
pub type Announced = (String, u64);

#[derive(Debug, Default)]
pub(super) struct Held {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    envelopes: HashMap<Announced, StoredEnvelope>,
    bytes: usize,
}

impl Held {
    /// Holds `envelopes` (about to commit) while the budget allows; returns the keys held.
    pub(super) fn hold(&self, envelopes: impl IntoIterator<Item = StoredEnvelope>) -> Vec<Announced> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut held = Vec::new();
        for envelope in envelopes {
            if inner.bytes + envelope.body_b64.len() > MOST_BYTES {
                break;
            }
            inner.bytes += envelope.body_b64.len();
            let key = (envelope.to.clone(), envelope.seq);
            held.push(key.clone());
            inner.envelopes.insert(key, envelope);
        }
        held
    }

    /// Takes the envelope announced as `key`, if held.
    pub(super) fn take(&self, key: &Announced) -> Option<StoredEnvelope> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let envelope = inner.envelopes.remove(key)?;
        inner.bytes -= envelope.body_b64.len();
        Some(envelope)
    }

    /// Lets go of `keys` (their group did not commit: no announcement will come).
    pub(super) fn release(&self, keys: &[Announced]) {
        for key in keys {
            self.take(key);
        }
    }

    /// Lets go of everything (the announcements were lost with the listener).
    pub(super) fn clear(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.envelopes.clear();
        inner.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(to: &str, seq: u64, bytes: usize) -> StoredEnvelope {
        StoredEnvelope {
            seq,
            id: uuid::Uuid::new_v4(),
            from: "alice".into(),
            to: to.into(),
            kind: magpie_proto::EnvelopeKind::Message,
            body_b64: "A".repeat(bytes),
            received_at: 0,
        }
    }

    #[test]
    fn holds_within_its_budget_and_gives_each_back_once() {
        let held = Held::default();
        let keys = held.hold([envelope("bob", 1, 10), envelope("carol", 2, 10)]);
        assert_eq!(keys, [("bob".to_owned(), 1), ("carol".to_owned(), 2)]);
        assert_eq!(held.take(&("bob".into(), 1)).map(|e| e.seq), Some(1));
        assert!(held.take(&("bob".into(), 1)).is_none());
        held.release(&keys);
        assert!(held.take(&("carol".into(), 2)).is_none());

        let over = held.hold([envelope("bob", 3, MOST_BYTES - 5), envelope("bob", 4, 10)]);
        assert_eq!(over, [("bob".to_owned(), 3)], "the second would pass the budget");
        held.clear();
        assert!(held.take(&("bob".into(), 3)).is_none());
        assert_eq!(
            held.hold([envelope("bob", 5, 10)]).len(),
            1,
            "clearing frees the budget"
        );
    }
}

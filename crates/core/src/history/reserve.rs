//! Send-counter reservations: why a sealed message may leave before the step that sealed it is on disk.
//!
//! A message key must never seal two messages. If a crash loses a session's last steps, the restarted client holds
//! an older state and would seal new messages with counters it has already used. So no counter `n` is sealed until
//! a record "counters below `r`", `r > n`, is durable, and a session loaded with a record from an earlier run skips
//! to `r` ([`Session::skip_sends_to`]) before it seals anything.
//!
//! A record is written [`RESERVE_AHEAD`] counters ahead, in the step that comes within half of that of the last one, so at a steady pace the flush after each send makes it durable long before it is needed.
//! The first send of a session in a run, or one that outruns the flushes, writes and flushes a record itself.
//! Dropping the history drops this run's records (every step it took is in the log before them), so a restart
//! after a clean exit skips nothing; after a crash the peer keeps at most `RESERVE_AHEAD` skipped keys.
//!
//! Records live in `sessions` under `H("chat", peer) ‖ "reserved" ‖ session id`; the sealed value is `r` (u64 BE).

use std::collections::HashMap;

use magpie_proto::Session;

use super::step::Tree;
use super::{History, SESSIONS};
use crate::error::{Error, Result};

/// How far ahead of the next counter a record reaches. A crash costs the peer at most this many skipped keys,
/// well inside its window of [`magpie_proto::MAX_SKIP`].
pub const RESERVE_AHEAD: u64 = 64;

const RESERVED: &[u8] = b"reserved";

/// This run's records, by session id.
pub(super) type Reservations = HashMap<[u8; 16], Reservation>;

pub(super) struct Reservation {
    key: Vec<u8>,
    /// The highest record committed.
    written: u64,
    /// The highest record a completed flush covers: counters below it may be sealed.
    durable: u64,
}

/// A record to commit with a step, then to note with [`History::note_reserved`].
pub(super) struct DueRecord {
    pub(super) key: Vec<u8>,
    pub(super) sealed: Vec<u8>,
    session_id: [u8; 16],
    reserved: u64,
}

impl History {
    /// Makes sure `session` may seal its next counter: returns at once while a durable record covers it, else
    /// writes one and flushes (the first send of a session in a run, or one that outran the flushes).
    pub fn reserve_send(&self, session: &Session) -> Result<()> {
        let next = session.next_send_counter();
        let covered = self
            .reservations()?
            .get(session.session_id())
            .is_some_and(|r| next < r.durable);
        if covered {
            return Ok(());
        }
        let record = self.record(session, next)?;
        let step = self.step()?;
        step.put(Tree::Sessions, &record.key, record.sealed.clone());
        step.commit()?;
        self.note_reserved(record)?;
        self.flush()?;
        Ok(())
    }

    /// The record to commit with a step that leaves `session` where it is, if it comes within half of
    /// [`RESERVE_AHEAD`] of this run's last record (sessions that have not sent in this run need none).
    pub(super) fn record_due(&self, session: &Session) -> Result<Option<DueRecord>> {
        let next = session.next_send_counter();
        let due = self
            .reservations()?
            .get(session.session_id())
            .is_some_and(|r| next.saturating_add(RESERVE_AHEAD / 2) >= r.written);
        due.then(|| self.record(session, next)).transpose()
    }

    /// Notes a committed record, so the next flush to start covers it.
    pub(super) fn note_reserved(&self, record: DueRecord) -> Result<()> {
        let mut reservations = self.reservations()?;
        let entry = reservations.entry(record.session_id).or_insert(Reservation {
            key: record.key,
            written: 0,
            durable: 0,
        });
        entry.written = entry.written.max(record.reserved);
        Ok(())
    }

    /// What a flush starting now will make durable: every record committed so far.
    pub(super) fn reserved_so_far(&self) -> Result<Vec<([u8; 16], u64)>> {
        Ok(self.reservations()?.iter().map(|(id, r)| (*id, r.written)).collect())
    }

    /// After a flush that started when `covered` was taken.
    pub(super) fn note_durable(&self, covered: Vec<([u8; 16], u64)>) -> Result<()> {
        let mut reservations = self.reservations()?;
        for (id, written) in covered {
            if let Some(r) = reservations.get_mut(&id) {
                r.durable = r.durable.max(written);
            }
        }
        Ok(())
    }

    /// A session just loaded from disk (from `session_key`), moved past a record an earlier run left (it may have
    /// sealed up to there) and stored so, so that records written from here on stay within [`RESERVE_AHEAD`] of
    /// the stored state however often a run ends early. Sessions this run has reserved for are current on disk.
    pub(super) fn skip_past_reservation(&self, session: &mut Session, session_key: &[u8]) -> Result<()> {
        if self.reservations()?.contains_key(session.session_id()) {
            return Ok(());
        }
        let key = self.reservation_key(session)?;
        let Some(sealed) = self.sessions.get(&key)? else {
            return Ok(());
        };
        let plain = self.sealer.open(SESSIONS, &key, &sealed)?;
        let reserved = <[u8; 8]>::try_from(plain.as_slice()).map_err(|_| Error::HistoryCorrupt { tree: SESSIONS })?;
        let reserved = u64::from_be_bytes(reserved);
        if reserved > session.next_send_counter() {
            tracing::info!(peer = %session.peer(), skipped = reserved - session.next_send_counter(),
                "skipping send counters an earlier run may have used");
            session.skip_sends_to(reserved)?;
            let exported = session.export()?;
            let step = self.step()?;
            step.seal_put(Tree::Sessions, session_key, exported.expose_secret())?;
            step.commit()?;
        }
        Ok(())
    }

    /// Drops this run's records: called once nothing can use the history any more. sled flushes as its trees
    /// close, and a crash before that keeps a prefix of the log: the records go only with every step before them.
    pub(super) fn release_reservations(&self) -> Result<()> {
        let keys: Vec<Vec<u8>> = self.reservations()?.drain().map(|(_, r)| r.key).collect();
        if keys.is_empty() {
            return Ok(());
        }
        let step = self.step()?;
        for key in keys {
            step.remove(Tree::Sessions, &key);
        }
        step.commit()
    }

    fn record(&self, session: &Session, next: u64) -> Result<DueRecord> {
        let key = self.reservation_key(session)?;
        let reserved = next.saturating_add(RESERVE_AHEAD);
        Ok(DueRecord {
            sealed: self.sealer.seal(SESSIONS, &key, &reserved.to_be_bytes())?,
            key,
            session_id: *session.session_id(),
            reserved,
        })
    }

    fn reservation_key(&self, session: &Session) -> Result<Vec<u8>> {
        let mut key = self.chat_id(session.peer())?.to_vec();
        key.extend_from_slice(RESERVED);
        key.extend_from_slice(session.session_id());
        Ok(key)
    }

    /// This run's record for a session: (written, durable).
    #[cfg(test)]
    pub(super) fn reservation(&self, session_id: &[u8; 16]) -> Option<(u64, u64)> {
        let reservations = self.reservations().ok()?;
        reservations.get(session_id).map(|r| (r.written, r.durable))
    }

    /// Ends this run as a crash would: the records stay for the next one.
    #[cfg(test)]
    pub(super) fn crash(self) {
        if let Ok(mut reservations) = self.reservations() {
            reservations.clear();
        }
    }

    fn reservations(&self) -> Result<crate::lock_order::Guard<'_, Reservations>> {
        self.reservations.lock().map_err(|_| Error::Poisoned)
    }
}

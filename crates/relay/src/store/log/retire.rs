//! Retirement: reclaiming sealed segments whose records are mostly dead.
//!
//! A segment's live data is its waiting envelopes, and its ack records of envelopes whose own record is in a
//! segment that stays (without a copy, a replay would find those envelopes unacknowledged). Sealed segments
//! but the newest (what was sent just before a seal gets time to be acked) retire when their live data is at most
//! half their length: it is copied into the active segment and synced, their acknowledged ids are written as a run,
//! the segments are marked retired in sled, then deleted. A segment mostly full of waiting mail stays until that
//! mail is acked, so copying never costs more than it frees and a retirement never triggers another.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::sync::{mpsc, Arc, Weak};

use uuid::Uuid;

use super::runs::{pair_hash, RetiredId};
use super::{file, poisoned, read_record, record, stored, Inner, Loc, Log};
use crate::store::{StoreError, StoreResult};

/// What an ack record of one id costs when copied forward alone.
const ACK_COPY_BYTES: u64 = (record::HEADER + 1 + 8 + 4 + 16) as u64;

/// The background thread: retires after each seal until the store is dropped.
pub(super) fn retirer(log: Weak<Log>, wakes: mpsc::Receiver<()>) {
    while wakes.recv().is_ok() {
        let Some(log) = log.upgrade() else { break };
        if let Err(e) = log.retire() {
            tracing::error!(error = %e, "mailbox log retirement failed; retrying after the next seal");
        }
    }
}

impl Inner {
    /// The sealed segments, but the newest, whose live data is at most half their length.
    fn doomed(&self) -> BTreeSet<u64> {
        let sealed: Vec<u64> = self.segments.keys().copied().filter(|s| *s < self.active).collect();
        let Some((_, candidates)) = sealed.split_last() else {
            return BTreeSet::new();
        };
        let mut live: BTreeMap<u64, u64> = candidates.iter().map(|s| (*s, 0)).collect();
        for loc in self.mailboxes.values().flat_map(|m| m.values()) {
            if let Some(bytes) = live.get_mut(&loc.segment) {
                *bytes += u64::from(loc.len);
            }
        }
        for e in self.ids.values() {
            if e.acked_at.is_some() && e.ack_segment != e.segment {
                if let Some(bytes) = live.get_mut(&e.ack_segment) {
                    *bytes += ACK_COPY_BYTES;
                }
            }
        }
        live.into_iter()
            .filter(|(s, live)| live.saturating_mul(2) <= self.sealed_len.get(s).copied().unwrap_or(0))
            .map(|(s, _)| s)
            .collect()
    }

    /// Appends the live data of the `doomed` segments: the waiting records read from them (unless acked or moved
    /// since), and acks whose envelope's record stays. Returns how many records it copied.
    fn carry_forward(&mut self, copies: Vec<(Loc, Vec<u8>)>, doomed: &BTreeSet<u64>) -> StoreResult<usize> {
        let mut copied = 0;
        for (old, bytes) in copies {
            let e = stored(&bytes)?;
            if self.mailboxes.get(&*e.to).and_then(|m| m.get(&e.seq)) != Some(&old) {
                continue;
            }
            let loc = Loc {
                segment: self.active,
                offset: self.buffer_start + self.buffer.len() as u64,
                len: old.len,
            };
            self.buffer.extend_from_slice(&bytes);
            self.index_stored(&e, loc);
            copied += 1;
        }
        let mut acks: BTreeMap<u64, Vec<Uuid>> = BTreeMap::new();
        for (id, e) in &self.ids {
            if let Some(at) = e.acked_at {
                if doomed.contains(&e.ack_segment) && !doomed.contains(&e.segment) {
                    acks.entry(at).or_default().push(*id);
                }
            }
        }
        let active = self.active;
        for (at, ids) in acks {
            for chunk in ids.chunks(1_000) {
                record::append_acked(&mut self.buffer, at, chunk);
                copied += 1;
            }
            for id in ids {
                if let Some(e) = self.ids.get_mut(&id) {
                    e.ack_segment = active;
                }
            }
        }
        Ok(copied)
    }
}

impl Log {
    /// Retires the sealed segments that are mostly dead (see the module docs); returns how many.
    pub(super) fn retire(&self) -> StoreResult<usize> {
        let _one = self.retiring.lock().map_err(poisoned)?;
        let (doomed, waiting) = {
            let g = self.lock()?;
            let doomed = g.doomed();
            let waiting = g
                .mailboxes
                .values()
                .flat_map(|m| m.values().copied())
                .filter(|loc| doomed.contains(&loc.segment))
                .map(|loc| Ok((g.segment_file(loc.segment)?, loc)))
                .collect::<StoreResult<Vec<(Arc<File>, Loc)>>>()?;
            (doomed, waiting)
        };
        if doomed.is_empty() {
            return Ok(0);
        }
        // Read without the lock; the lock is held only to append the copies.
        let copies = waiting
            .into_iter()
            .map(|(file, loc)| Ok((loc, read_record(&file, loc)?)))
            .collect::<StoreResult<Vec<_>>>()?;
        let copied = self.lock()?.carry_forward(copies, &doomed)?;
        self.flush_log()?;
        let retired: Vec<RetiredId> = {
            let g = self.lock()?;
            let still_waiting = g
                .mailboxes
                .values()
                .flat_map(|m| m.values())
                .any(|l| doomed.contains(&l.segment));
            if still_waiting {
                return Err(StoreError::Backend(
                    "an envelope still waits in a segment being retired".into(),
                ));
            }
            g.ids
                .iter()
                .filter(|(_, e)| doomed.contains(&e.segment))
                .map(|(id, e)| RetiredId {
                    id: *id,
                    seq: e.seq,
                    acked_at: e.acked_at.unwrap_or_default(),
                    pair: pair_hash(&e.from, &e.to),
                })
                .collect()
        };
        let kept = retired.len();
        // Written without holding the runs (lookups go on), then added before the ids leave memory.
        let run = {
            let runs = self.runs.read().map_err(poisoned)?;
            runs.write(runs.last_round() + 1, retired)?
        };
        self.runs.write().map_err(poisoned)?.add(run);
        let doomed: Vec<u64> = doomed.into_iter().collect();
        // From here a crash must not replay these segments: their acks may be gone with another of them.
        self.meta.mark_retired(&doomed)?;
        {
            let mut g = self.lock()?;
            g.ids.retain(|_, e| !doomed.contains(&e.segment));
            for segment in &doomed {
                g.segments.remove(segment);
                g.sealed_len.remove(segment);
            }
        }
        let mut deleted = Vec::with_capacity(doomed.len());
        for &segment in &doomed {
            match std::fs::remove_file(file::segment_path(&self.dir, segment)) {
                Ok(()) => deleted.push(segment),
                // The mark stays: the next start deletes it.
                Err(e) => tracing::warn!(segment, error = %e, "cannot delete a retired mailbox log segment"),
            }
        }
        self.meta.unmark_retired(&deleted)?;
        self.merge_runs()?;
        tracing::debug!(segments = ?doomed, copied, ids_kept = kept, "mailbox log segments retired");
        Ok(doomed.len())
    }

    fn merge_runs(&self) -> StoreResult<()> {
        loop {
            let runs = self.runs.read().map_err(poisoned)?;
            let Some((lo, hi)) = runs.merge_due() else {
                return Ok(());
            };
            let merged = runs.merge(lo, hi, self.expired_before.load(std::sync::atomic::Ordering::SeqCst))?;
            drop(runs);
            self.runs.write().map_err(poisoned)?.replace(merged);
        }
    }
}

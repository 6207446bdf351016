//! The in-memory index: which ids are known, where each waiting envelope's record is.

use std::fs::File;
use std::sync::Arc;

use uuid::Uuid;

use super::record::{self, Record};
use super::{IdEntry, Inner, Loc};
use crate::store::{StoreError, StoreResult, StoredEnvelope};

impl Inner {
    fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(known) = self.names.get(name) {
            return Arc::clone(known);
        }
        let name: Arc<str> = Arc::from(name);
        self.names.insert(Arc::clone(&name));
        name
    }

    /// Reads a segment's records into the index; returns the length of its whole records.
    pub(super) fn replay(&mut self, segment: u64, bytes: &[u8]) -> StoreResult<usize> {
        let mut offset = 0;
        while let record::Scan::Whole { payload, len } = record::next(&bytes[offset..]) {
            match record::decode(payload)? {
                Record::Stored(e) => {
                    let len = u32::try_from(len).map_err(|_| StoreError::Corrupt("record over 4 GiB".into()))?;
                    self.index_stored(
                        &e,
                        Loc {
                            segment,
                            offset: offset as u64,
                            len,
                        },
                    );
                }
                Record::Acked { at, ids } => {
                    self.apply_ack(None, &ids, at, segment);
                }
            }
            offset += len;
        }
        Ok(offset)
    }

    /// Indexes a `STORED` record at `loc`: a new envelope, or a copy carried forward from a retired segment.
    pub(super) fn index_stored(&mut self, e: &StoredEnvelope, loc: Loc) {
        if let Some(entry) = self.ids.get_mut(&e.id) {
            if entry.acked_at.is_none() {
                entry.segment = loc.segment;
                if let Some(mailbox) = self.mailboxes.get_mut(&*entry.to) {
                    mailbox.insert(entry.seq, loc);
                }
            }
            return;
        }
        let from = self.intern(&e.from);
        let to = self.intern(&e.to);
        self.mailboxes.entry(Arc::clone(&to)).or_default().insert(e.seq, loc);
        self.ids.insert(
            e.id,
            IdEntry {
                from,
                to,
                seq: e.seq,
                acked_at: None,
                segment: loc.segment,
                ack_segment: 0,
            },
        );
    }

    /// Marks waiting envelopes of `to` (any recipient when replaying) acknowledged by a record in `segment`;
    /// returns those it marked.
    pub(super) fn apply_ack(&mut self, to: Option<&str>, ids: &[Uuid], at: u64, segment: u64) -> Vec<Uuid> {
        let mut acked = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(entry) = self.ids.get_mut(id) else { continue };
            if entry.acked_at.is_some() || to.is_some_and(|to| *entry.to != *to) {
                continue;
            }
            entry.acked_at = Some(at);
            entry.ack_segment = segment;
            if let Some(mailbox) = self.mailboxes.get_mut(&*entry.to) {
                mailbox.remove(&entry.seq);
                if mailbox.is_empty() {
                    self.mailboxes.remove(&*entry.to);
                }
            }
            acked.push(*id);
        }
        acked
    }

    /// Appends a new envelope.
    pub(super) fn append_stored(&mut self, e: &StoredEnvelope) -> StoreResult<()> {
        let offset = self.buffer_start + self.buffer.len() as u64;
        let len = record::append_stored(&mut self.buffer, e)?;
        let segment = self.active;
        self.index_stored(e, Loc { segment, offset, len });
        Ok(())
    }

    /// A record still in the buffer.
    pub(super) fn buffered(&self, loc: Loc) -> Option<&[u8]> {
        if loc.segment != self.active || loc.offset < self.buffer_start {
            return None;
        }
        let from = usize::try_from(loc.offset - self.buffer_start).ok()?;
        self.buffer.get(from..from.checked_add(loc.len as usize)?)
    }

    pub(super) fn segment_file(&self, segment: u64) -> StoreResult<Arc<File>> {
        self.segments
            .get(&segment)
            .cloned()
            .ok_or_else(|| StoreError::Corrupt(format!("mailbox log segment {segment} is gone")))
    }
}

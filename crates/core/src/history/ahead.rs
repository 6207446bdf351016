//! Steps written ahead: a ratchet step on the hot path (our text sealed, their texts opened) is one sealed record
//! inserted in `pending_steps`, not a transaction over four trees. sled rolls its log buffer twice per transaction
//! and hands each roll to its IO pool, which made the transaction about three quarters of a step's cost; a plain
//! insert is atomic and is recovered in log order like the rest.
//!
//! The record holds everything the step would have written (the sealed session, a send-counter record, the sealed
//! outbox item, the messages with their seqs). [`History::settle`] applies every pending record in one transaction
//! that also deletes them, so a record is applied exactly once; opening the history settles first.
//!
//! Until then only the outbox and the id check see them, from memory ([`Pending`]). Everything else that reads or
//! writes sessions, messages or the outbox settles first, so it finds the trees as if each step had been a
//! transaction. A record is made durable by the same flush as everything else, and a flush settles what it covers.

use std::collections::{BTreeMap, HashSet};

use sled::transaction::{ConflictableTransactionError, Transactional};
use zeroize::Zeroizing;

use super::messages::{flatten, Row};
use super::reserve::DueRecord;
use super::writer::{abort, Writer};
use super::{Appended, Cursor, History, PENDING_STEPS};
use crate::error::{Error, Result};

/// Steps pending at most before a step settles them itself (bounds memory and the settling transaction).
const MOST_PENDING: usize = 256;
const FORMAT: u8 = 1;

/// What the pending records hold that readers must see before they are applied.
#[derive(Default)]
pub(super) struct Pending {
    records: usize,
    /// Outbox items they queue, sealed, by key.
    outbox: BTreeMap<[u8; 8], Vec<u8>>,
    /// Id hashes of the messages they store.
    message_ids: HashSet<[u8; 32]>,
}

/// Held while writing beside the pending steps ([`History::settled`]).
pub(super) struct Settled<'a>(#[allow(dead_code, reason = "held for its lock")] std::sync::MutexGuard<'a, Pending>);

/// One step's writes, as [`History::write_ahead`] takes them.
pub(super) struct Step<'a> {
    pub(super) session_key: &'a [u8],
    pub(super) sealed_session: &'a [u8],
    pub(super) reservation: Option<&'a DueRecord>,
    pub(super) outbox: Option<([u8; 8], &'a [u8])>,
    pub(super) rows: &'a [Row],
}

impl History {
    /// Writes `step` as one pending record; one [`Appended`] per row, in order (a row whose id is stored, pending
    /// or earlier in `rows` is a duplicate and is not written).
    pub(super) fn write_ahead(&self, step: &Step<'_>) -> Result<Vec<Appended>> {
        let mut pending = self.pending()?;
        let mut appended = Vec::with_capacity(step.rows.len());
        let mut kept: Vec<(&Row, u64)> = Vec::with_capacity(step.rows.len());
        for row in step.rows {
            let seen = pending.message_ids.contains(&row.id_hash)
                || kept.iter().any(|(k, _)| k.id_hash == row.id_hash)
                || self.locate_hash(&row.id_hash)?.is_some();
            if seen {
                appended.push(Appended::Duplicate);
                continue;
            }
            // Drawn under the lock, so records and seqs come in the same order.
            let seq = self.db.generate_id()?;
            kept.push((row, seq));
            appended.push(Appended::New(Cursor::from_value(seq)));
        }
        let key = self.db.generate_id()?.to_be_bytes();
        let plain = encode(step, &kept)?;
        self.pending_steps
            .insert(key, self.sealer.seal(PENDING_STEPS, &key, &plain)?)?;
        pending.records += 1;
        if let Some((key, sealed)) = step.outbox {
            pending.outbox.insert(key, sealed.to_vec());
        }
        pending.message_ids.extend(kept.iter().map(|(row, _)| row.id_hash));
        if pending.records >= MOST_PENDING {
            self.apply_pending(&mut pending)?;
        }
        Ok(appended)
    }

    /// Applies every pending step to the trees (see the module). Cheap when none is pending. What reads sessions,
    /// messages or the outbox calls it first.
    pub(super) fn settle(&self) -> Result<()> {
        self.settled().map(drop)
    }

    /// [`History::settle`], keeping steps from being written ahead until the guard drops: what writes sessions,
    /// messages or the outbox holds it across its write, so no step's seq or session lands before it and is applied
    /// after it. (The guard is the pending lock: call nothing that settles while holding it.)
    pub(super) fn settled(&self) -> Result<Settled<'_>> {
        let mut pending = self.pending()?;
        if pending.records > 0 {
            self.apply_pending(&mut pending)?;
        }
        Ok(Settled(pending))
    }

    /// Pending outbox items after `start`, by key, for the outbox to read with the tree (under the lock, so none
    /// moves between the two while it reads).
    pub(super) fn with_pending_outbox<T>(
        &self,
        read: impl FnOnce(&BTreeMap<[u8; 8], Vec<u8>>) -> Result<T>,
    ) -> Result<T> {
        let pending = self.pending()?;
        read(&pending.outbox)
    }

    /// Whether an outbox item is still only in a pending record.
    pub(super) fn outbox_pending(&self, key: &[u8; 8]) -> Result<bool> {
        Ok(self.pending()?.outbox.contains_key(key))
    }

    /// Counts the records a previous run left, so the first settle applies them.
    pub(super) fn count_pending(&self) -> Result<()> {
        self.pending()?.records = self.pending_steps.len();
        Ok(())
    }

    fn apply_pending(&self, pending: &mut Pending) -> Result<()> {
        let mut records = Vec::with_capacity(pending.records);
        for item in &self.pending_steps {
            let (key, sealed) = item?;
            let plain = self.sealer.open(PENDING_STEPS, &key, &sealed)?;
            records.push((key, plain));
        }
        let trees = (
            &self.pending_steps,
            &self.sessions,
            &self.blocks,
            &self.message_index,
            &self.outbox,
        );
        let result = trees.transaction(|(steps, sessions, blocks, index, outbox)| {
            let mut writer = Writer::new(&self.sealer, blocks, index);
            for (key, plain) in &records {
                steps.remove(key)?;
                let mut record = Reader(plain.as_slice());
                let corrupt = |_| abort(Error::HistoryCorrupt { tree: PENDING_STEPS });
                if record.byte().map_err(corrupt)? != FORMAT {
                    return Err(abort(Error::HistoryCorrupt { tree: PENDING_STEPS }));
                }
                let (session_key, sealed_session) =
                    (record.bytes().map_err(corrupt)?, record.bytes().map_err(corrupt)?);
                sessions.insert(session_key, sealed_session)?;
                if record.byte().map_err(corrupt)? == 1 {
                    sessions.insert(record.bytes().map_err(corrupt)?, record.bytes().map_err(corrupt)?)?;
                }
                if record.byte().map_err(corrupt)? == 1 {
                    outbox.insert(record.bytes().map_err(corrupt)?, record.bytes().map_err(corrupt)?)?;
                }
                for _ in 0..record.count().map_err(corrupt)? {
                    let chat = record.array::<32>().map_err(corrupt)?;
                    let id = uuid::Uuid::from_bytes(record.array::<16>().map_err(corrupt)?);
                    let id_hash = record.array::<32>().map_err(corrupt)?;
                    let seq = u64::from_be_bytes(record.array::<8>().map_err(corrupt)?);
                    let json = record.bytes().map_err(corrupt)?;
                    writer.append(&chat, id, &id_hash, json, Some(seq))?;
                }
            }
            writer.finish()?;
            Ok::<_, ConflictableTransactionError<Error>>(())
        });
        flatten(result)?;
        *pending = Pending::default();
        Ok(())
    }

    fn pending(&self) -> Result<std::sync::MutexGuard<'_, Pending>> {
        self.pending.lock().map_err(|_| Error::Poisoned)
    }
}

/// `FORMAT`, then session key and value, a flag and the counter record's key and value, a flag and the outbox
/// item's key and value, and the rows: each chat, id, id hash, seq and JSON. Byte strings are u32 BE length-prefixed.
fn encode(step: &Step<'_>, rows: &[(&Row, u64)]) -> Result<Zeroizing<Vec<u8>>> {
    let size = 64 + step.session_key.len() + step.sealed_session.len() + step.outbox.map_or(0, |(_, v)| v.len() + 12);
    let size = size + rows.iter().map(|(row, _)| row.json.len() + 92).sum::<usize>();
    let mut out = Zeroizing::new(Vec::with_capacity(size));
    out.push(FORMAT);
    put(&mut out, step.session_key)?;
    put(&mut out, step.sealed_session)?;
    match step.reservation {
        Some(record) => {
            out.push(1);
            put(&mut out, &record.key)?;
            put(&mut out, &record.sealed)?;
        }
        None => out.push(0),
    }
    match step.outbox {
        Some((key, sealed)) => {
            out.push(1);
            put(&mut out, &key)?;
            put(&mut out, sealed)?;
        }
        None => out.push(0),
    }
    out.extend_from_slice(&length(rows.len())?);
    for (row, seq) in rows {
        out.extend_from_slice(&row.chat);
        out.extend_from_slice(row.id.as_bytes());
        out.extend_from_slice(&row.id_hash);
        out.extend_from_slice(&seq.to_be_bytes());
        put(&mut out, &row.json)?;
    }
    Ok(out)
}

fn length(len: usize) -> Result<[u8; 4]> {
    u32::try_from(len)
        .map(u32::to_be_bytes)
        .map_err(|_| Error::Crypto("step too large"))
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) -> Result<()> {
    out.extend_from_slice(&length(bytes.len())?);
    out.extend_from_slice(bytes);
    Ok(())
}

/// Reads what [`encode`] wrote; `Err(())` when the record ends early.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], ()> {
        if self.0.len() < n {
            return Err(());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> std::result::Result<u8, ()> {
        self.take(1)?.first().copied().ok_or(())
    }

    fn array<const N: usize>(&mut self) -> std::result::Result<[u8; N], ()> {
        self.take(N)?.try_into().map_err(|_| ())
    }

    fn count(&mut self) -> std::result::Result<usize, ()> {
        usize::try_from(u32::from_be_bytes(self.array::<4>()?)).map_err(|_| ())
    }

    fn bytes(&mut self) -> std::result::Result<&'a [u8], ()> {
        let n = self.count()?;
        self.take(n)
    }
}

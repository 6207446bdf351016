//! Steps written ahead: what the engine writes per message (a ratchet step with the texts it sealed or opened, a
//! receipt's deliveries, the relay's 202 for an envelope) is one sealed record inserted in `pending_steps`, not a
//! transaction over several trees. sled rolls its log buffer twice per transaction and hands each roll to its IO
//! pool, which made the transaction about three quarters of a step's cost; a plain insert is atomic and is
//! recovered in log order like the rest.
//!
//! A record holds everything its step would have written: the sealed session, a send-counter record, the sealed
//! outbox item, the messages with their seqs, delivery states, an outbox item to drop. [`History::settle`] applies
//! every pending record, in order, in one transaction that also moves a watermark (`meta`, [`APPLIED_THROUGH`]) past
//! them, so each is applied exactly once. Records at or below the watermark are left over and removed later
//! ([`History::remove_applied_steps`]), outside the transaction (which holds sled's process-wide lock) and outside
//! the pending lock. Opening the history settles first, and so does a flush once [`SETTLE_ON_FLUSH`] records are
//! pending; a flush's settle lets steps go on being written while it applies the earlier ones (see
//! [`super::generations`]).
//!
//! Until then the outbox, the id check and delivery states read what the records hold from memory ([`Pending`]).
//! Everything else that reads or writes sessions, messages or the outbox settles first, so it finds the trees as if
//! each step had been a transaction; writes hold the lock across their write, so none lands between a record and its
//! application. A record is made durable by the same flush as everything else.

use std::collections::{HashMap, HashSet};
use std::ops::Bound;

use sled::transaction::{ConflictableTransactionError, Transactional};
use zeroize::Zeroizing;

use super::generations::Pending;
use super::messages::{change_deliveries, flatten, Row};
use super::reserve::DueRecord;
use super::writer::{Staged, Writer};
use super::{Appended, Cursor, Delivery, History, PENDING_STEPS};
use crate::error::{Error, Result};

/// Steps pending at most before a step settles them itself (bounds memory and the settling transaction).
const MOST_PENDING: usize = 256;
/// Steps pending from which a flush settles them (off the path of the messages that wrote them).
pub(super) const SETTLE_ON_FLUSH: usize = 32;
const FORMAT: u8 = 1;
/// Key in `meta` of the newest applied record's key (sealed): records up to it are applied and only wait to go.
const APPLIED_THROUGH: &[u8] = b"pending-applied-through";

/// Held while writing beside the pending steps ([`History::settled`]).
pub(super) struct Settled<'a>(#[allow(dead_code, reason = "held for its lock")] std::sync::MutexGuard<'a, Pending>);

/// One step's writes, as [`History::write_ahead`] takes them.
#[derive(Default)]
pub(super) struct Step<'a> {
    /// The session's key and sealed value.
    pub(super) session: Option<(&'a [u8], &'a [u8])>,
    pub(super) reservation: Option<&'a DueRecord>,
    /// A new outbox item's key and sealed value.
    pub(super) outbox: Option<([u8; 8], &'a [u8])>,
    pub(super) rows: &'a [Row],
    /// Messages (by id hash) to move on to `delivery`, after the rows are stored.
    pub(super) deliveries: &'a [[u8; 32]],
    pub(super) delivery: Option<Delivery>,
    /// An outbox item a record before this one queued, to drop.
    pub(super) drop_outbox: Option<[u8; 8]>,
}

impl History {
    /// Writes `step` as one pending record. Returns one [`Appended`] per row, in order (a row whose id is stored,
    /// pending or earlier in `rows` is a duplicate and is not written), and the state each of `deliveries` ends in
    /// (`None` for an id not stored).
    pub(super) fn write_ahead(&self, step: &Step<'_>) -> Result<(Vec<Appended>, Vec<Option<Delivery>>)> {
        let mut pending = self.pending()?;
        let mut appended = Vec::with_capacity(step.rows.len());
        let mut kept: Vec<(&Row, u64)> = Vec::with_capacity(step.rows.len());
        for row in step.rows {
            let seen = pending.has_message(&row.id_hash)
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
        let mut states = Vec::with_capacity(step.deliveries.len());
        let mut changed: Vec<([u8; 32], Delivery)> = Vec::with_capacity(step.deliveries.len());
        for id_hash in step.deliveries {
            let current = match changed.iter().rev().find(|(h, _)| h == id_hash) {
                Some((_, state)) => Some(*state),
                None => match kept.iter().find(|(row, _)| row.id_hash == *id_hash) {
                    Some((row, _)) => Some(row.delivery),
                    None => match pending.delivery(id_hash) {
                        Some(state) => Some(state),
                        None => self.applied_delivery(id_hash)?,
                    },
                },
            };
            let (Some(current), Some(update)) = (current, step.delivery) else {
                states.push(None);
                continue;
            };
            let state = current.then(update);
            changed.push((*id_hash, state));
            states.push(Some(state));
        }
        let nothing =
            step.session.is_none() && step.reservation.is_none() && step.outbox.is_none() && step.drop_outbox.is_none();
        if nothing && kept.is_empty() && changed.is_empty() {
            return Ok((appended, states));
        }
        self.insert_record(&mut pending, &encode(step, &kept, &changed)?)?;
        let current = &mut pending.current;
        if let Some((key, sealed)) = step.outbox {
            current.outbox.insert(key, sealed.to_vec());
        }
        for (row, _) in &kept {
            current.message_ids.insert(row.id_hash);
            current.deliveries.insert(row.id_hash, row.delivery);
        }
        current.deliveries.extend(changed);
        if current.records >= MOST_PENDING {
            drop(pending);
            self.settle()?;
        }
        Ok((appended, states))
    }

    /// Drops an outbox item that is still only in a pending record, by a record of its own (applied after the one
    /// that queued it); `false` if it is not pending.
    pub(super) fn remove_pending_outbox(&self, key: [u8; 8]) -> Result<bool> {
        let mut pending = self.pending()?;
        if !pending.queues(&key) {
            return Ok(false);
        }
        let step = Step {
            drop_outbox: Some(key),
            ..Step::default()
        };
        self.insert_record(&mut pending, &encode(&step, &[], &[])?)?;
        // Queued by a generation being applied, it may reach the trees before this record does.
        if pending.current.outbox.remove(&key).is_none() {
            pending.current.dropped.insert(key);
        }
        Ok(true)
    }

    /// Seals and inserts one record after every other (called with the lock held).
    fn insert_record(&self, pending: &mut Pending, plain: &[u8]) -> Result<()> {
        let key = self.db.generate_id()?.to_be_bytes();
        self.pending_steps
            .insert(key, self.sealer.seal(PENDING_STEPS, &key, plain)?)?;
        pending.current.records += 1;
        pending.newest = Some(key);
        Ok(())
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
        let _only_one = self.settling()?;
        let mut pending = self.pending()?;
        if let Some((after, through)) = pending.begin_apply() {
            let applied = self.apply_records(after, through);
            pending.end_apply(through, applied.is_ok());
            applied?;
        }
        Ok(Settled(pending))
    }

    /// Applies the steps written so far without holding the pending lock, so steps go on being written ahead
    /// meanwhile (what a flush does: its records are off the path of the messages that wrote them).
    pub(super) fn settle_while_writing(&self) -> Result<()> {
        let _only_one = self.settling()?;
        let Some((after, through)) = self.pending()?.begin_apply() else {
            return Ok(());
        };
        let applied = self.apply_records(after, through);
        self.pending()?.end_apply(through, applied.is_ok());
        applied
    }

    /// How many steps are pending, not counting those a settle is applying.
    pub(super) fn pending_count(&self) -> Result<usize> {
        Ok(self.pending()?.current.records)
    }

    /// The pending records' outbox items, for the outbox to read with the tree (under the lock, so none moves
    /// between the two while it reads).
    pub(super) fn with_pending_outbox<T>(&self, read: impl FnOnce(&Pending) -> Result<T>) -> Result<T> {
        let pending = self.pending()?;
        read(&pending)
    }

    /// Reads the watermark and counts the records above it a previous run left, so the first settle applies them.
    pub(super) fn count_pending(&self) -> Result<()> {
        let applied_through = match self.meta.get(APPLIED_THROUGH)? {
            Some(sealed) => Some(
                <[u8; 8]>::try_from(self.sealer.open(super::META, APPLIED_THROUGH, &sealed)?.as_slice())
                    .map_err(|_| Error::HistoryCorrupt { tree: super::META })?,
            ),
            None => None,
        };
        let mut pending = self.pending()?;
        pending.applied_through = applied_through;
        pending.current.records = self.steps_after(applied_through).count();
        pending.newest = match self.pending_steps.last()? {
            Some((key, _)) => {
                Some(<[u8; 8]>::try_from(key.as_ref()).map_err(|_| Error::HistoryCorrupt { tree: PENDING_STEPS })?)
            }
            None => None,
        };
        Ok(())
    }

    /// Removes the records the watermark has passed. Called without the pending lock: they are never read again, and
    /// records written meanwhile come above it.
    /// Every flush calls it; one whose watermark has not moved since the last removal reads nothing.
    pub(super) fn remove_applied_steps(&self) -> Result<()> {
        let through = {
            let pending = self.pending()?;
            match pending.applied_through {
                Some(through) if pending.removed_through != Some(through) => through,
                _ => return Ok(()),
            }
        };
        for key in self.pending_steps.range(..=through).keys() {
            self.pending_steps.remove(key?)?;
        }
        let mut pending = self.pending()?;
        pending.removed_through = pending.removed_through.max(Some(through));
        Ok(())
    }

    /// Records above `applied_through`, oldest first.
    fn steps_after(&self, applied_through: Option<[u8; 8]>) -> sled::Iter {
        match applied_through {
            Some(key) => self.pending_steps.range((Bound::Excluded(key), Bound::Unbounded)),
            None => self.pending_steps.iter(),
        }
    }

    /// Applies the records with keys in `(after, through]` and moves the watermark to `through`, in one transaction.
    fn apply_records(&self, after: Option<[u8; 8]>, through: [u8; 8]) -> Result<()> {
        let mut plains = Vec::new();
        for item in self.steps_after(after) {
            let (key, sealed) = item?;
            if key.as_ref() > through.as_slice() {
                break;
            }
            let plain = self.sealer.open(PENDING_STEPS, &key, &sealed)?;
            plains.push((key, plain));
        }
        // Decoded before the transaction, which holds every tree (sled's global lock) while it runs.
        let records = plains
            .iter()
            .map(|(key, plain)| {
                Ok((
                    key,
                    decode(plain).map_err(|()| Error::HistoryCorrupt { tree: PENDING_STEPS })?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        // An item queued and dropped again within these records (the relay took it before they were applied) is
        // neither written nor removed: two writes fewer.
        let queued: HashSet<[u8; 8]> = records
            .iter()
            .filter_map(|(_, r)| r.outbox.map(|(key, _)| key))
            .collect();
        let elided: HashSet<[u8; 8]> = records
            .iter()
            .filter_map(|(_, r)| r.drop_outbox)
            .filter(|key| queued.contains(key))
            .collect();
        let sealed_through = self.sealer.seal(super::META, APPLIED_THROUGH, &through)?;
        // Only the last value of each session key matters to the outcome: one write each, not one per step.
        let sessions_after: HashMap<&[u8], &[u8]> = records
            .iter()
            .flat_map(|(_, r)| [r.session, r.reservation].into_iter().flatten())
            .collect();
        // The messages' blocks and index are worked out before the transaction, which then only writes them: no other
        // writer of those trees runs meanwhile (writers settle first, and only one settle runs at a time).
        let (staged_blocks, staged_index) = (
            Staged::new(&self.blocks, &self.db),
            Staged::new(&self.message_index, &self.db),
        );
        let mut writer = Writer::new(&self.sealer, &staged_blocks, &staged_index);
        let staging = records.iter().try_for_each(|(_, record)| {
            for row in &record.rows {
                writer.append(&row.chat, row.id, &row.id_hash, row.json, Some(row.seq))?;
            }
            for (id_hash, state) in &record.deliveries {
                change_deliveries(&mut writer, &[*id_hash], *state)?;
            }
            Ok::<_, ConflictableTransactionError<Error>>(())
        });
        staging.and_then(|()| writer.finish()).map_err(outside_transaction)?;
        let trees = (
            &self.sessions,
            &self.blocks,
            &self.message_index,
            &self.outbox,
            &self.meta,
        );
        let result = trees.transaction(|(sessions, blocks, index, outbox, meta)| {
            meta.insert(APPLIED_THROUGH, sealed_through.as_slice())?;
            for (key, value) in &sessions_after {
                sessions.insert(*key, *value)?;
            }
            staged_blocks.apply(blocks)?;
            staged_index.apply(index)?;
            for (_, record) in &records {
                if let Some((key, value)) = record.outbox.filter(|(key, _)| !elided.contains(key)) {
                    outbox.insert(&key, value)?;
                }
                if let Some(key) = record.drop_outbox.filter(|key| !elided.contains(key)) {
                    outbox.remove(&key)?;
                }
            }
            Ok::<_, ConflictableTransactionError<Error>>(())
        });
        flatten(result)
    }

    fn pending(&self) -> Result<std::sync::MutexGuard<'_, Pending>> {
        self.pending.lock().map_err(|_| Error::Poisoned)
    }

    /// Held while a settle runs: one at a time, so generations are applied in order. Taken before the pending lock.
    fn settling(&self) -> Result<std::sync::MutexGuard<'_, ()>> {
        self.settling.lock().map_err(|_| Error::Poisoned)
    }
}

/// The error of a [`Writer`] that worked on [`Staged`] trees.
fn outside_transaction(error: ConflictableTransactionError<Error>) -> Error {
    match error {
        ConflictableTransactionError::Abort(error) => error,
        ConflictableTransactionError::Storage(error) => Error::HistoryStorage(error),
        ConflictableTransactionError::Conflict => {
            Error::HistoryStorage(sled::Error::ReportableBug("a conflict outside a transaction".into()))
        }
    }
}

/// `FORMAT`; a flag and the session's key and value; a flag and the counter record's key and value; a flag and the
/// outbox item's key and value; the rows (each chat, id, id hash, seq and JSON); the delivery states (each id hash
/// and state); a flag and an outbox key to drop. Byte strings and counts are u32 BE length-prefixed.
fn encode(step: &Step<'_>, rows: &[(&Row, u64)], deliveries: &[([u8; 32], Delivery)]) -> Result<Zeroizing<Vec<u8>>> {
    let session_len = step.session.map_or(0, |(k, v)| k.len() + v.len());
    let size = 64 + session_len + step.outbox.map_or(0, |(_, v)| v.len() + 12) + deliveries.len() * 33;
    let size = size + rows.iter().map(|(row, _)| row.json.len() + 92).sum::<usize>();
    let mut out = Zeroizing::new(Vec::with_capacity(size));
    out.push(FORMAT);
    let reservation = step.reservation.map(|r| (r.key.as_slice(), r.sealed.as_slice()));
    let outbox = step.outbox.as_ref().map(|(key, sealed)| (key.as_slice(), *sealed));
    for entry in [step.session, reservation, outbox] {
        match entry {
            Some((key, value)) => {
                out.push(1);
                put(&mut out, key)?;
                put(&mut out, value)?;
            }
            None => out.push(0),
        }
    }
    out.extend_from_slice(&length(rows.len())?);
    for (row, seq) in rows {
        out.extend_from_slice(&row.chat);
        out.extend_from_slice(row.id.as_bytes());
        out.extend_from_slice(&row.id_hash);
        out.extend_from_slice(&seq.to_be_bytes());
        put(&mut out, &row.json)?;
    }
    out.extend_from_slice(&length(deliveries.len())?);
    for (id_hash, state) in deliveries {
        out.extend_from_slice(id_hash);
        out.push(delivery_code(*state));
    }
    match step.drop_outbox {
        Some(key) => {
            out.push(1);
            out.extend_from_slice(&key);
        }
        None => out.push(0),
    }
    Ok(out)
}

/// A record as [`encode`] wrote it, borrowing from its plaintext.
struct Record<'a> {
    session: Option<(&'a [u8], &'a [u8])>,
    reservation: Option<(&'a [u8], &'a [u8])>,
    outbox: Option<([u8; 8], &'a [u8])>,
    rows: Vec<RecordRow<'a>>,
    deliveries: Vec<([u8; 32], Delivery)>,
    drop_outbox: Option<[u8; 8]>,
}

struct RecordRow<'a> {
    chat: [u8; 32],
    id: uuid::Uuid,
    id_hash: [u8; 32],
    seq: u64,
    json: &'a [u8],
}

/// Reads what [`encode`] wrote; `Err(())` when it is not such a record.
fn decode(plain: &[u8]) -> std::result::Result<Record<'_>, ()> {
    let mut reader = Reader(plain);
    if reader.byte()? != FORMAT {
        return Err(());
    }
    let mut entry = || -> std::result::Result<_, ()> {
        Ok(match reader.byte()? {
            1 => Some((reader.bytes()?, reader.bytes()?)),
            _ => None,
        })
    };
    let (session, reservation, outbox) = (entry()?, entry()?, entry()?);
    let outbox = match outbox {
        Some((key, value)) => Some((key.try_into().map_err(|_| ())?, value)),
        None => None,
    };
    let rows = (0..reader.count()?)
        .map(|_| {
            Ok(RecordRow {
                chat: reader.array()?,
                id: uuid::Uuid::from_bytes(reader.array()?),
                id_hash: reader.array()?,
                seq: u64::from_be_bytes(reader.array()?),
                json: reader.bytes()?,
            })
        })
        .collect::<std::result::Result<_, ()>>()?;
    let deliveries = (0..reader.count()?)
        .map(|_| Ok((reader.array()?, delivery_from(reader.byte()?).ok_or(())?)))
        .collect::<std::result::Result<_, ()>>()?;
    let drop_outbox = match reader.byte()? {
        1 => Some(reader.array()?),
        _ => None,
    };
    Ok(Record {
        session,
        reservation,
        outbox,
        rows,
        deliveries,
        drop_outbox,
    })
}

fn delivery_code(state: Delivery) -> u8 {
    match state {
        Delivery::Sending => 0,
        Delivery::Sent => 1,
        Delivery::Delivered => 2,
        Delivery::Failed => 3,
        Delivery::Received => 4,
        Delivery::Waiting => 5,
    }
}

fn delivery_from(code: u8) -> Option<Delivery> {
    Some(match code {
        0 => Delivery::Sending,
        1 => Delivery::Sent,
        2 => Delivery::Delivered,
        3 => Delivery::Failed,
        4 => Delivery::Received,
        5 => Delivery::Waiting,
        _ => return None,
    })
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

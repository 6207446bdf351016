//! The default backend: mailboxes in an append-only log with an in-memory index, the rest in sled.
//!
//! Why: with mailboxes in sled, every envelope cost four tree writes and two reads (claim the id, write the
//! mail; on ack read the id, delete the mail, mark the id), two thirds of the relay's CPU under load. Here a send
//! appends one record to a buffer and an ack appends one record for all the ids it lists; the group commit
//! writes the buffer and syncs it (`fdatasync`, which also survives power loss). Users, challenges, tokens,
//! and the ids of envelopes acknowledged long ago stay in sled ([`SledStore`]).
//!
//! - **Layout:** sled in the store directory; the log in its `mailbox/` directory as numbered segments
//!   (`record.rs` has the format). A segment is sealed once it passes `segment_bytes`, and appends go on in the next.
//! - **Memory:** the index holds every id whose record is in a live segment (for idempotency) and, per mailbox, the
//!   location of each waiting envelope; bodies stay on disk (the OS caches the recent ones) and are read back by
//!   fetches. A send's push carries the envelope itself, so the common path never reads the log.
//! - **Retirement** (a background thread, after each seal): all sealed segments but the newest are retired. What
//!   still waits in them is copied forward into the active segment and synced; then their acknowledged ids are
//!   written as a sorted run (`runs.rs`; a late retry is still recognised until [`DEDUP_RETENTION_SECS`]), whose
//!   name records "retired through segment N", and the segment files are deleted. Segments retire oldest first,
//!   so an ack record never outlives the envelope record it acknowledges.
//! - **Recovery:** at open, segments up to the newest run's mark are deleted, the others are read in order to
//!   rebuild the index, and the last is truncated after its last whole record (a write cut by a crash was never
//!   acknowledged). Mail left in sled by a relay that kept mailboxes there is moved into the log, and the ids
//!   such a relay kept in sled are still consulted.
//! - **Sequence numbers** come from sled's persistent id generator, so they keep increasing across crashes: a
//!   client that saw a pushed envelope's cursor never misses one stored after a restart.

mod file;
mod record;
mod runs;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, RwLock, Weak};

use uuid::Uuid;

use self::record::Record;
use self::runs::{pair_hash, RetiredId, Runs};
use super::{
    ChallengeRecord, Inserted, NewEnvelope, SledStore, Store, StoreError, StoreResult, StoredEnvelope, SyncMode,
    TokenRecord, UserRecord, DEDUP_RETENTION_SECS,
};

/// Default size at which a segment is sealed. At 50,000 envelopes/s of 400 bytes that is one segment every
/// 0.8 s, so the index holds about two seconds of ids; at a few envelopes a second it is weeks.
pub const SEGMENT_BYTES: u64 = 16 << 20;

/// A [`Store`] whose mailboxes are an append-only log (see the module docs).
pub struct LogStore {
    log: Arc<Log>,
    wake_retirer: mpsc::SyncSender<()>,
}

struct Log {
    meta: SledStore,
    dir: PathBuf,
    segment_bytes: u64,
    inner: Mutex<Inner>,
    /// One log flush at a time; how far the active segment is synced.
    flushing: Mutex<Synced>,
    /// One retirement at a time.
    retiring: Mutex<()>,
    /// Acknowledged ids of retired segments.
    runs: RwLock<Runs>,
    /// Ids acked before this (Unix seconds) are past their retention: merges drop them.
    expired_before: AtomicU64,
    /// sled was written since its last flush.
    meta_dirty: AtomicBool,
}

#[derive(Debug, Clone, Copy)]
struct Synced {
    segment: u64,
    to: u64,
}

#[derive(Default)]
struct Inner {
    names: HashSet<Arc<str>>,
    ids: HashMap<Uuid, IdEntry>,
    mailboxes: HashMap<Arc<str>, BTreeMap<u64, Loc>>,
    segments: BTreeMap<u64, Arc<File>>,
    /// The segment appended to.
    active: u64,
    /// Offset in the active segment where `buffer` goes.
    buffer_start: u64,
    /// Records appended since the last flush.
    buffer: Vec<u8>,
}

struct IdEntry {
    from: Arc<str>,
    to: Arc<str>,
    seq: u64,
    acked_at: Option<u64>,
    /// The segment holding its newest `STORED` record.
    segment: u64,
}

/// Where a record is: segment, byte offset, length with header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Loc {
    segment: u64,
    offset: u64,
    len: u32,
}

impl fmt::Debug for LogStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogStore")
            .field("dir", &self.log.dir)
            .finish_non_exhaustive()
    }
}

fn io_err(e: std::io::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Backend("mailbox log lock poisoned".into())
}

impl LogStore {
    /// Opens (or creates) the store in `dir` with the default page cache and segment size.
    pub fn open(dir: &Path, mode: SyncMode) -> StoreResult<Self> {
        Self::open_with(dir, mode, crate::config::DEFAULT_CACHE_MB << 20, SEGMENT_BYTES)
    }

    /// Opens (or creates) the store in `dir`: sled there with a page cache of `cache_bytes`, the log in
    /// `dir/mailbox` sealing segments at `segment_bytes`.
    pub fn open_with(dir: &Path, mode: SyncMode, cache_bytes: u64, segment_bytes: u64) -> StoreResult<Self> {
        let meta = SledStore::open_with_cache(dir, mode, cache_bytes)?;
        let log_dir = dir.join("mailbox");
        std::fs::create_dir_all(&log_dir).map_err(io_err)?;
        let runs = Runs::open(&log_dir)?;
        let (inner, synced) = recover(&log_dir, runs.retired_through())?;
        let log = Arc::new(Log {
            meta,
            dir: log_dir,
            segment_bytes: segment_bytes.max(1),
            inner: Mutex::new(inner),
            flushing: Mutex::new(synced),
            retiring: Mutex::new(()),
            runs: RwLock::new(runs),
            expired_before: AtomicU64::new(0),
            meta_dirty: AtomicBool::new(false),
        });
        log.take_over_legacy_mail()?;
        let (wake_retirer, wakes) = mpsc::sync_channel(1);
        let weak = Arc::downgrade(&log);
        std::thread::Builder::new()
            .name("magpie-retire".into())
            .spawn(move || retirer(weak, wakes))
            .map_err(io_err)?;
        Ok(Self { log, wake_retirer })
    }

    /// Retires sealed segments now (a background thread does it after each seal); returns how many.
    pub fn retire_now(&self) -> StoreResult<usize> {
        self.log.retire()
    }

    /// The segments on disk, oldest first.
    pub fn segments(&self) -> StoreResult<Vec<u64>> {
        Ok(self.log.lock()?.segments.keys().copied().collect())
    }
}

fn retirer(log: Weak<Log>, wakes: mpsc::Receiver<()>) {
    while wakes.recv().is_ok() {
        let Some(log) = log.upgrade() else { break };
        // Again while it retires something: copies carried forward can fill the active segment.
        loop {
            match log.retire() {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "mailbox log retirement failed; retrying after the next seal");
                    break;
                }
            }
        }
    }
}

/// Rebuilds the index from the live segments (deleting retired ones) and opens the last for appending.
fn recover(dir: &Path, retired_through: u64) -> StoreResult<(Inner, Synced)> {
    let mut inner = Inner::default();
    let segments = file::list_segments(dir).map_err(io_err)?;
    let live: Vec<u64> = segments.iter().copied().filter(|s| *s > retired_through).collect();
    for &segment in segments.iter().filter(|s| **s <= retired_through) {
        if let Err(e) = std::fs::remove_file(file::segment_path(dir, segment)) {
            tracing::warn!(segment, error = %e, "cannot delete a retired mailbox log segment");
        }
    }
    for (i, &segment) in live.iter().enumerate() {
        let bytes = std::fs::read(file::segment_path(dir, segment)).map_err(io_err)?;
        let valid = inner.replay(segment, &bytes)?;
        let f = file::open_segment(dir, segment).map_err(io_err)?;
        let last = i + 1 == live.len();
        if valid < bytes.len() {
            tracing::warn!(
                segment,
                kept = valid,
                dropped = bytes.len() - valid,
                "mailbox log segment ends in a record that is cut short or fails its checksum"
            );
            // Only the last segment is appended to: cut the torn write off so new records follow whole ones.
            if last {
                f.set_len(valid as u64).map_err(io_err)?;
            }
        }
        inner.segments.insert(segment, Arc::new(f));
        inner.active = segment;
        inner.buffer_start = valid as u64;
    }
    if inner.segments.is_empty() {
        let first = retired_through.saturating_add(1);
        inner
            .segments
            .insert(first, Arc::new(file::open_segment(dir, first).map_err(io_err)?));
        file::sync_dir(dir).map_err(io_err)?;
        inner.active = first;
    }
    // What the crashed process wrote may still be only in the OS cache.
    if let Some(active) = inner.segments.get(&inner.active) {
        active.sync_data().map_err(io_err)?;
    }
    let synced = Synced {
        segment: inner.active,
        to: inner.buffer_start,
    };
    Ok((inner, synced))
}

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
    fn replay(&mut self, segment: u64, bytes: &[u8]) -> StoreResult<usize> {
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
                    self.apply_ack(None, &ids, at);
                }
            }
            offset += len;
        }
        Ok(offset)
    }

    /// Indexes a `STORED` record at `loc`: a new envelope, or a copy carried forward from a retired segment.
    fn index_stored(&mut self, e: &StoredEnvelope, loc: Loc) {
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
            },
        );
    }

    /// Marks waiting envelopes of `to` (any recipient when replaying) acknowledged; returns those it marked.
    fn apply_ack(&mut self, to: Option<&str>, ids: &[Uuid], at: u64) -> Vec<Uuid> {
        let mut acked = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(entry) = self.ids.get_mut(id) else { continue };
            if entry.acked_at.is_some() || to.is_some_and(|to| *entry.to != *to) {
                continue;
            }
            entry.acked_at = Some(at);
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
    fn append_stored(&mut self, e: &StoredEnvelope) -> StoreResult<()> {
        let offset = self.buffer_start + self.buffer.len() as u64;
        let len = record::append_stored(&mut self.buffer, e)?;
        let segment = self.active;
        self.index_stored(e, Loc { segment, offset, len });
        Ok(())
    }

    /// A record still in the buffer.
    fn buffered(&self, loc: Loc) -> Option<&[u8]> {
        if loc.segment != self.active || loc.offset < self.buffer_start {
            return None;
        }
        let from = usize::try_from(loc.offset - self.buffer_start).ok()?;
        self.buffer.get(from..from.checked_add(loc.len as usize)?)
    }

    fn segment_file(&self, segment: u64) -> StoreResult<Arc<File>> {
        self.segments
            .get(&segment)
            .cloned()
            .ok_or_else(|| StoreError::Corrupt(format!("mailbox log segment {segment} is gone")))
    }

    fn waiting_in(&self, through: u64) -> impl Iterator<Item = Loc> + '_ {
        self.mailboxes
            .values()
            .flat_map(|m| m.values().copied())
            .filter(move |loc| loc.segment <= through)
    }
}

fn read_record(file: &File, loc: Loc) -> StoreResult<Vec<u8>> {
    let mut bytes = vec![0; loc.len as usize];
    file::read_exact_at(file, &mut bytes, loc.offset).map_err(io_err)?;
    Ok(bytes)
}

fn stored(bytes: &[u8]) -> StoreResult<StoredEnvelope> {
    match record::decode_whole(bytes)? {
        Record::Stored(e) => Ok(e),
        Record::Acked { .. } => Err(StoreError::Corrupt("an ack record where an envelope should be".into())),
    }
}

impl Log {
    fn lock(&self) -> StoreResult<MutexGuard<'_, Inner>> {
        self.inner.lock().map_err(poisoned)
    }

    fn take_over_legacy_mail(&self) -> StoreResult<()> {
        let legacy = self.meta.legacy_mail()?;
        if legacy.is_empty() {
            return Ok(());
        }
        {
            let mut g = self.lock()?;
            for e in &legacy {
                if !g.ids.contains_key(&e.id) {
                    g.append_stored(e)?;
                }
            }
        }
        self.flush_log()?;
        self.meta.clear_legacy_mail()?;
        tracing::info!(
            envelopes = legacy.len(),
            "waiting mail moved from sled into the mailbox log"
        );
        Ok(())
    }

    /// Writes and syncs the buffer; seals the active segment once it is full. Returns whether it sealed one.
    fn flush_log(&self) -> StoreResult<bool> {
        let mut synced = self.flushing.lock().map_err(poisoned)?;
        let (file, segment, end) = {
            let mut g = self.lock()?;
            let segment = g.active;
            let file = g.segment_file(segment)?;
            write_buffer(&mut g, &file)?;
            (file, segment, g.buffer_start)
        };
        if synced.segment != segment || end > synced.to {
            file.sync_data().map_err(io_err)?;
            *synced = Synced { segment, to: end };
        }
        if end < self.segment_bytes {
            return Ok(false);
        }
        let next = segment.saturating_add(1);
        let next_file = file::open_segment(&self.dir, next).map_err(io_err)?;
        // Its name must survive a power loss as its records will.
        file::sync_dir(&self.dir).map_err(io_err)?;
        {
            // Records appended since the write above belong to this segment's offsets.
            let mut g = self.lock()?;
            write_buffer(&mut g, &file)?;
            g.segments.insert(next, Arc::new(next_file));
            g.active = next;
            g.buffer_start = 0;
        }
        file.sync_data().map_err(io_err)?;
        *synced = Synced {
            segment: segment + 1,
            to: 0,
        };
        Ok(true)
    }

    /// Retires every sealed segment but the newest (see the module docs); returns how many.
    fn retire(&self) -> StoreResult<usize> {
        let _one = self.retiring.lock().map_err(poisoned)?;
        let (through, waiting) = {
            let g = self.lock()?;
            let sealed: Vec<u64> = g.segments.keys().copied().filter(|s| *s < g.active).collect();
            // The newest sealed segment stays: what was sent just before the seal gets time to be acked.
            let Some(&through) = sealed.len().checked_sub(2).and_then(|i| sealed.get(i)) else {
                return Ok(0);
            };
            let waiting = g
                .waiting_in(through)
                .map(|loc| Ok((g.segment_file(loc.segment)?, loc)))
                .collect::<StoreResult<Vec<_>>>()?;
            (through, waiting)
        };
        let copies = waiting
            .into_iter()
            .map(|(file, loc)| Ok((loc, read_record(&file, loc)?)))
            .collect::<StoreResult<Vec<_>>>()?;
        let copied = copies.len();
        {
            let mut g = self.lock()?;
            for (old, bytes) in copies {
                let e = stored(&bytes)?;
                let still_waiting = g.mailboxes.get(&*e.to).and_then(|m| m.get(&e.seq)) == Some(&old);
                if still_waiting {
                    let offset = g.buffer_start + g.buffer.len() as u64;
                    g.buffer.extend_from_slice(&bytes);
                    let segment = g.active;
                    g.index_stored(
                        &e,
                        Loc {
                            segment,
                            offset,
                            len: old.len,
                        },
                    );
                }
            }
        }
        // Should the copies fill the active segment, the retirer's next round retires it.
        self.flush_log()?;
        let acked: Vec<RetiredId> = {
            let g = self.lock()?;
            if g.waiting_in(through).next().is_some() {
                return Err(StoreError::Backend(
                    "an envelope still waits in a segment being retired".into(),
                ));
            }
            g.ids
                .iter()
                .filter(|(_, e)| e.segment <= through)
                .map(|(id, e)| RetiredId {
                    id: *id,
                    seq: e.seq,
                    acked_at: e.acked_at.unwrap_or_default(),
                    pair: pair_hash(&e.from, &e.to),
                })
                .collect()
        };
        let kept = acked.len();
        // Written without holding the runs (lookups go on), then added: from here the segments are not needed.
        let run = self.runs.read().map_err(poisoned)?.write(through, acked)?;
        self.runs.write().map_err(poisoned)?.add(run);
        let retired = {
            let mut g = self.lock()?;
            g.ids.retain(|_, e| e.segment > through);
            let kept = g.segments.split_off(&through.saturating_add(1));
            std::mem::replace(&mut g.segments, kept)
        };
        for segment in retired.keys() {
            if let Err(e) = std::fs::remove_file(file::segment_path(&self.dir, *segment)) {
                tracing::warn!(segment, error = %e, "cannot delete a retired mailbox log segment");
            }
        }
        self.merge_runs()?;
        tracing::debug!(through, copied, ids_kept = kept, "mailbox log segments retired");
        Ok(retired.len())
    }

    fn merge_runs(&self) -> StoreResult<()> {
        loop {
            let runs = self.runs.read().map_err(poisoned)?;
            let Some((lo, hi)) = runs.merge_due() else {
                return Ok(());
            };
            let merged = runs.merge(lo, hi, self.expired_before.load(SeqCst))?;
            drop(runs);
            self.runs.write().map_err(poisoned)?.replace(merged);
        }
    }
}

/// Writes the buffer at its place in `file` and empties it; on error it is kept for the next try.
fn write_buffer(g: &mut Inner, file: &File) -> StoreResult<()> {
    if g.buffer.is_empty() {
        return Ok(());
    }
    file::write_all_at(file, &g.buffer, g.buffer_start).map_err(io_err)?;
    g.buffer_start += g.buffer.len() as u64;
    g.buffer.clear();
    Ok(())
}

impl LogStore {
    fn meta_written<T>(&self, result: StoreResult<T>) -> StoreResult<T> {
        self.log.meta_dirty.store(true, SeqCst);
        result
    }
}

impl Store for LogStore {
    fn add_user(&self, user: &UserRecord) -> StoreResult<bool> {
        self.meta_written(self.log.meta.add_user(user))
    }

    fn user(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        self.log.meta.user(username)
    }

    fn has_user(&self, username: &str) -> StoreResult<bool> {
        self.log.meta.has_user(username)
    }

    fn put_challenge(&self, nonce: &[u8], challenge: &ChallengeRecord) -> StoreResult<()> {
        self.meta_written(self.log.meta.put_challenge(nonce, challenge))
    }

    fn take_challenge(&self, nonce: &[u8]) -> StoreResult<Option<ChallengeRecord>> {
        self.meta_written(self.log.meta.take_challenge(nonce))
    }

    fn put_token(&self, token_hash: &[u8; 32], token: &TokenRecord) -> StoreResult<()> {
        self.meta_written(self.log.meta.put_token(token_hash, token))
    }

    fn token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<TokenRecord>> {
        self.log.meta.token(token_hash)
    }

    fn insert_envelope(&self, envelope: NewEnvelope) -> StoreResult<Inserted> {
        let mut g = self.log.lock()?;
        let pair = pair_hash(&envelope.from, &envelope.to);
        // In memory, else in a run (retirement adds the run before it drops the ids from memory), else in sled (ids
        // a relay that kept mailboxes in sled acknowledged; one claimed without its mail is stored anew).
        let known = match g.ids.get(&envelope.id) {
            Some(e) => Some((pair_hash(&e.from, &e.to), e.seq)),
            None => match self.log.runs.read().map_err(poisoned)?.find(&envelope.id)? {
                Some(r) => Some((r.pair, r.seq)),
                None => self
                    .log
                    .meta
                    .id_record(&envelope.id)?
                    .and_then(|r| r.acked_at.is_some().then(|| (pair_hash(&r.from, &r.to), r.seq))),
            },
        };
        if let Some((known_pair, seq)) = known {
            return Ok(if known_pair == pair {
                Inserted::Duplicate { seq }
            } else {
                Inserted::IdTaken
            });
        }
        let stored = StoredEnvelope::new(self.log.meta.next_seq()?, envelope);
        g.append_stored(&stored)?;
        Ok(Inserted::Stored(stored))
    }

    fn fetch(&self, to: &str, after: u64, limit: usize) -> StoreResult<Vec<StoredEnvelope>> {
        let mut found: Vec<Option<StoredEnvelope>> = Vec::new();
        let mut on_disk = Vec::new();
        {
            let g = self.log.lock()?;
            let Some(mailbox) = g.mailboxes.get(to) else {
                return Ok(Vec::new());
            };
            for (_, loc) in mailbox.range(after.saturating_add(1)..).take(limit) {
                match g.buffered(*loc) {
                    Some(bytes) => found.push(Some(stored(bytes)?)),
                    None => {
                        on_disk.push((found.len(), g.segment_file(loc.segment)?, *loc));
                        found.push(None);
                    }
                }
            }
        }
        // Read without the lock: a segment retired meanwhile stays readable through its open handle.
        for (i, file, loc) in on_disk {
            found[i] = Some(stored(&read_record(&file, loc)?)?);
        }
        Ok(found.into_iter().flatten().collect())
    }

    fn ack(&self, to: &str, ids: &[Uuid], now: u64) -> StoreResult<usize> {
        let mut g = self.log.lock()?;
        let acked = g.apply_ack(Some(to), ids, now);
        if !acked.is_empty() {
            record::append_acked(&mut g.buffer, now, &acked);
        }
        Ok(acked.len())
    }

    fn purge_expired(&self, now: u64) -> StoreResult<usize> {
        let purged = self.meta_written(self.log.meta.purge_expired(now))?;
        let cutoff = now.saturating_sub(DEDUP_RETENTION_SECS);
        self.log.expired_before.fetch_max(cutoff, SeqCst);
        let from_runs = self.log.runs.write().map_err(poisoned)?.purge(cutoff);
        let mut g = self.log.lock()?;
        let before = g.ids.len();
        g.ids.retain(|_, e| e.acked_at.is_none_or(|at| at >= cutoff));
        Ok(purged + from_runs + (before - g.ids.len()))
    }

    fn flush(&self) -> StoreResult<()> {
        if self.log.meta_dirty.swap(false, SeqCst) {
            if let Err(e) = self.log.meta.flush() {
                self.log.meta_dirty.store(true, SeqCst);
                return Err(e);
            }
        }
        if self.log.flush_log()? {
            // Full: the retirer takes it from here. A wake already pending is enough.
            let _ = self.wake_retirer.try_send(());
        }
        Ok(())
    }
}

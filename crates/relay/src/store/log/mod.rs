//! The default backend: mailboxes in an append-only log with an in-memory index, the rest in sled.
//!
//! Why: with mailboxes in sled, every envelope cost four tree writes and two reads (claim the id, write the
//! mail; on ack read the id, delete the mail, mark the id), two thirds of the relay's CPU under load. Here a send
//! appends one record to a buffer and an ack appends one record for all the ids it lists; the group commit
//! writes the buffer and syncs it (`fdatasync`, which also survives power loss). Users, challenges and tokens
//! stay in sled ([`SledStore`]).
//!
//! - **Layout:** sled in the store directory; the log in its `mailbox/` directory as numbered segments
//!   (`record.rs` has the format). A segment is sealed once it passes `segment_bytes`, and appends go on in the next.
//! - **Memory:** the index holds every id whose record is in a live segment (for idempotency) and, per mailbox, the
//!   location of each waiting envelope; bodies stay on disk (the OS caches the recent ones) and are read back by
//!   fetches. A send's push carries the envelope itself, so the common path never reads the log.
//! - **Retirement** (`retire.rs`, a background thread after each seal): sealed segments that are mostly dead are
//!   reclaimed. Their live records (waiting envelopes, acks of envelopes recorded elsewhere) are copied forward,
//!   their acknowledged ids are written as a sorted run (`runs.rs`; a late retry is still recognised until
//!   [`DEDUP_RETENTION_SECS`]), they are marked retired in sled, and deleted.
//! - **Recovery** (`recover.rs`): at open, segments marked retired are deleted, the others are read in order to
//!   rebuild the index, and the last is truncated after its last whole record (a write cut by a crash was never
//!   acknowledged). Mail left in sled by a relay that kept mailboxes there is moved into the log, and the ids
//!   such a relay kept in sled are still consulted.
//! - **Sequence numbers** come from sled's persistent id generator, so they keep increasing across crashes: a
//!   client that saw a pushed envelope's cursor never misses one stored after a restart.

mod file;
#[doc(hidden)]
pub mod fuzzing;
mod index;
mod record;
mod recover;
mod retire;
mod runs;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, RwLock};

use uuid::Uuid;

use self::record::Record;
use self::runs::{pair_hash, Runs};
use super::{
    ChallengeRecord, Inserted, MailboxQuota, NewEnvelope, SledStore, Store, StoreError, StoreGauge, StoreResult,
    StoredEnvelope, SyncMode, TokenRecord, UserRecord, DEDUP_RETENTION_SECS,
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
    /// Users known to exist (a name, once registered, stays): spares a sled read on every send.
    known_users: RwLock<HashSet<String>>,
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
    /// The length of each sealed segment.
    sealed_len: BTreeMap<u64, u64>,
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
    /// Once acked: the segment holding the ack record.
    ack_segment: u64,
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

/// The on-disk format of a relay's store: the sled trees of [`SledStore`] beside the mailbox log's records. A
/// change to either raises it, and [`LogStore::open_with`] moves an older store on (no release has written
/// another yet).
pub const STORE_FORMAT: u32 = 1;

impl LogStore {
    /// Opens (or creates) the store in `dir` with the default page cache and segment size.
    pub fn open(dir: &Path, mode: SyncMode) -> StoreResult<Self> {
        Self::open_with(dir, mode, crate::config::DEFAULT_CACHE_MB << 20, SEGMENT_BYTES)
    }

    /// Opens (or creates) the store in `dir`: sled there with a page cache of `cache_bytes`, the log in
    /// `dir/mailbox` sealing segments at `segment_bytes`.
    pub fn open_with(dir: &Path, mode: SyncMode, cache_bytes: u64, segment_bytes: u64) -> StoreResult<Self> {
        let meta = SledStore::open_with_cache(dir, mode, cache_bytes)?;
        match meta.format_or_set(STORE_FORMAT)? {
            STORE_FORMAT => {}
            found => {
                return Err(StoreError::Format {
                    found,
                    supported: STORE_FORMAT,
                })
            }
        }
        let log_dir = dir.join("mailbox");
        std::fs::create_dir_all(&log_dir).map_err(io_err)?;
        let runs = Runs::open(&log_dir)?;
        let retired = meta.retired_segments()?;
        let (inner, synced, deleted) = recover::recover(&log_dir, &retired)?;
        meta.unmark_retired(&deleted)?;
        let log = Arc::new(Log {
            dir: log_dir,
            segment_bytes: segment_bytes.max(1),
            inner: Mutex::new(inner),
            flushing: Mutex::new(synced),
            retiring: Mutex::new(()),
            runs: RwLock::new(runs),
            expired_before: AtomicU64::new(0),
            meta_dirty: AtomicBool::new(false),
            known_users: RwLock::new(HashSet::new()),
            meta,
        });
        let (wake_retirer, wakes) = mpsc::sync_channel(1);
        let weak = Arc::downgrade(&log);
        std::thread::Builder::new()
            .name("magpie-retire".into())
            .spawn(move || retire::retirer(weak, wakes))
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
    pub(super) fn lock(&self) -> StoreResult<MutexGuard<'_, Inner>> {
        self.inner.lock().map_err(poisoned)
    }

    /// Writes and syncs the buffer; seals the active segment once it is full. Returns whether it sealed one.
    pub(super) fn flush_log(&self) -> StoreResult<bool> {
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
            let sealed_len = g.buffer_start;
            g.sealed_len.insert(segment, sealed_len);
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
        if self.log.known_users.read().map_err(poisoned)?.contains(username) {
            return Ok(true);
        }
        let exists = self.log.meta.has_user(username)?;
        if exists {
            self.log
                .known_users
                .write()
                .map_err(poisoned)?
                .insert(username.to_owned());
        }
        Ok(exists)
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

    fn insert_envelope_within(&self, envelope: NewEnvelope, quota: MailboxQuota) -> StoreResult<Inserted> {
        let mut g = self.log.lock()?;
        // In memory, else in a run (retirement adds the run before it drops the ids from memory).
        let known = match g.ids.get(&envelope.id) {
            Some(e) => Some((pair_hash(&e.from, &e.to), e.seq)),
            None => self
                .log
                .runs
                .read()
                .map_err(poisoned)?
                .find(&envelope.id)?
                .map(|r| (r.pair, r.seq)),
        };
        if let Some((known_pair, seq)) = known {
            return Ok(if known_pair == pair_hash(&envelope.from, &envelope.to) {
                Inserted::Duplicate { seq }
            } else {
                Inserted::IdTaken
            });
        }
        if quota != MailboxQuota::UNLIMITED {
            let waiting = g.mailboxes.get(envelope.to.as_str());
            let count = waiting.map_or(0, BTreeMap::len);
            let bytes = waiting.map_or(0, |m| m.values().map(|loc| u64::from(loc.len)).sum());
            if !quota.has_room(count, bytes, envelope.body_b64.len() as u64) {
                return Ok(Inserted::MailboxFull);
            }
        }
        let stored = StoredEnvelope::new(self.log.meta.next_seq()?, envelope);
        g.append_stored(&stored)?;
        Ok(Inserted::Stored(stored))
    }

    fn fetch_within(&self, to: &str, after: u64, limit: usize, budget: usize) -> StoreResult<Vec<StoredEnvelope>> {
        let mut found: Vec<Option<StoredEnvelope>> = Vec::new();
        let mut on_disk = Vec::new();
        {
            let g = self.log.lock()?;
            let Some(mailbox) = g.mailboxes.get(to) else {
                return Ok(Vec::new());
            };
            // A record's length bounds its body's from above: the page holds no more than `budget` of bodies.
            let mut bytes = 0usize;
            for (_, loc) in mailbox.range(after.saturating_add(1)..).take(limit) {
                bytes = bytes.saturating_add(loc.len as usize);
                if !found.is_empty() && bytes > budget {
                    break;
                }
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
        let active = g.active;
        let acked = g.apply_ack(Some(to), ids, now, active);
        if !acked.is_empty() {
            record::append_acked(&mut g.buffer, now, &acked);
        }
        Ok(acked.len())
    }

    fn mailboxes(&self) -> StoreResult<Vec<String>> {
        Ok(self.log.lock()?.mailboxes.keys().map(|to| to.to_string()).collect())
    }

    fn purge_expired(&self, now: u64) -> StoreResult<usize> {
        let purged = self.meta_written(self.log.meta.purge_expired(now))?;
        let cutoff = now.saturating_sub(DEDUP_RETENTION_SECS);
        self.log.expired_before.fetch_max(cutoff, SeqCst);
        let from_runs = self.log.runs.write().map_err(poisoned)?.purge(cutoff);
        let mut g = self.log.lock()?;
        let before = g.ids.len();
        // An id whose ack record is in another segment stays until its own segment retires: retirement must
        // know that ack, to carry it forward if that other segment goes first.
        g.ids
            .retain(|_, e| e.acked_at.is_none_or(|at| at >= cutoff) || e.ack_segment != e.segment);
        Ok(purged + from_runs + (before - g.ids.len()))
    }

    fn gauges(&self) -> Vec<StoreGauge> {
        let gauge = |name, help, value: usize| StoreGauge {
            name,
            help,
            value: value as u64,
        };
        let (segments, ids, waiting) = match self.log.lock() {
            Ok(g) => (
                g.segments.len(),
                g.ids.len(),
                g.mailboxes.values().map(BTreeMap::len).sum(),
            ),
            Err(_) => return Vec::new(),
        };
        let (runs, retired) = match self.log.runs.read() {
            Ok(r) => (r.count(), r.ids()),
            Err(_) => return Vec::new(),
        };
        vec![
            gauge("magpie_mailbox_log_segments", "Mailbox log segments on disk.", segments),
            gauge(
                "magpie_mailbox_log_ids",
                "Envelope ids held in memory (live segments).",
                ids,
            ),
            gauge(
                "magpie_mailbox_waiting_envelopes",
                "Envelopes waiting in mailboxes.",
                waiting,
            ),
            gauge("magpie_mailbox_id_runs", "Files of retired, acknowledged ids.", runs),
            gauge(
                "magpie_mailbox_retired_ids",
                "Acknowledged ids kept in those files.",
                retired,
            ),
        ]
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

//! The default backend: sled 0.34 in a directory the relay is given.
//!
//! Durability: [`Store::flush`] calls sled's `Db::flush`, which on Linux writes sled's log buffers with
//! `pwrite` and then `sync_file_range(WAIT_BEFORE | WRITE | WAIT_AFTER)` over the written range (sled
//! `pagecache/iobuf.rs`); a full `fsync` runs only in sled's background flusher (every 500 ms) and at
//! segment and snapshot boundaries. `sync_file_range` pushes the data pages to the device, so a flushed
//! write survives the relay process dying (`kill -9`, OOM, panic). It does **not** write the file's metadata
//! (size, newly allocated extents) nor flush the drive's volatile write cache, so after a power loss or a
//! kernel crash the last ≈ 500 ms of acknowledged envelopes can be lost or torn (sled's CRCs then truncate
//! the log at the first bad record). [`SyncMode::Fsync`] closes that gap by also calling `fsync` on sled's
//! data file after each (group-committed) flush, at the cost of a real disk cache flush per group.

use std::fs::File;
use std::hash::{Hash as _, Hasher as _};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use ::sled::{Db, Tree};
use uuid::Uuid;

use super::{
    decode, encode, within_budget, ChallengeRecord, IdRecord, Inserted, MailboxQuota, NewEnvelope, Store, StoreError,
    StoreResult, StoredEnvelope, TokenRecord, UserRecord, DEDUP_RETENTION_SECS,
};

/// How hard [`Store::flush`] pushes data to the disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SyncMode {
    /// sled's flush (`sync_file_range`): survives a process crash; see the module docs.
    #[default]
    Flush,
    /// sled's flush, then `fsync` of the data file: survives power loss on honest hardware.
    Fsync,
}

/// A [`Store`] on sled.
#[derive(Debug)]
pub struct SledStore {
    db: Db,
    users: Tree,
    challenges: Tree,
    tokens: Tree,
    /// `to ‖ 0x00 ‖ seq (u64 BE)` → [`StoredEnvelope`]: one ordered range per mailbox.
    mail: Tree,
    /// envelope id → [`IdRecord`].
    ids: Tree,
    /// `acked_at (u64 BE) ‖ batch (u64 BE)` → the 16-byte ids one ack acknowledged: which ids to forget, oldest
    /// first. One entry per ack, not per id: a write per envelope less. (Before, `acked_at ‖ id` → empty.)
    acked: Tree,
    /// Mailbox log segments of [`super::LogStore`] retired but maybe not yet deleted: never to be replayed.
    retired_segments: Tree,
    fsync: Option<File>,
    /// Held from drawing an envelope's seq to writing its mail, one lock per stripe of recipients: a mailbox's
    /// envelopes become visible in seq order, so a reader paging on with `after` never passes one that commits
    /// behind its cursor. Striped, so different mailboxes do not wait for each other.
    mailbox_order: Box<[Mutex<()>]>,
}

/// Key in the `meta` tree of the store's format (u32 BE), see [`super::log::STORE_FORMAT`].
const FORMAT: &[u8] = b"format";

/// Stripes of [`SledStore::mailbox_order`].
const MAILBOX_STRIPES: usize = 64;

impl SledStore {
    /// Opens (or creates) the store in `dir` with the default page cache.
    pub fn open(dir: &Path, mode: SyncMode) -> StoreResult<Self> {
        Self::open_with_cache(dir, mode, crate::config::DEFAULT_CACHE_MB << 20)
    }

    /// Opens (or creates) the store in `dir` with a page cache of `cache_bytes` (RSS grows towards it; sled's own
    /// default is 1 GiB, while a relay's working set is the recent mail).
    pub fn open_with_cache(dir: &Path, mode: SyncMode, cache_bytes: u64) -> StoreResult<Self> {
        let db = open_db(&::sled::Config::new().path(dir).cache_capacity(cache_bytes))?;
        let fsync = match mode {
            SyncMode::Flush => None,
            SyncMode::Fsync => Some(File::open(dir.join("db")).map_err(|e| StoreError::Backend(e.to_string()))?),
        };
        Ok(Self {
            users: db.open_tree("users")?,
            challenges: db.open_tree("challenges")?,
            tokens: db.open_tree("tokens")?,
            mail: db.open_tree("mail")?,
            ids: db.open_tree("ids")?,
            acked: db.open_tree("acked")?,
            retired_segments: db.open_tree("retired_segments")?,
            db,
            fsync,
            mailbox_order: (0..MAILBOX_STRIPES).map(|_| Mutex::new(())).collect(),
        })
    }

    fn mailbox_order(&self, to: &str) -> StoreResult<MutexGuard<'_, ()>> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        to.hash(&mut hasher);
        // The remainder is below MAILBOX_STRIPES, so it fits a usize.
        let stripe = usize::try_from(hasher.finish() % MAILBOX_STRIPES as u64).unwrap_or(0);
        self.mailbox_order[stripe]
            .lock()
            .map_err(|_| StoreError::Backend("mailbox lock poisoned".into()))
    }
}

/// sled releases its file lock from a background thread shortly after the last handle drops, so a close and reopen
/// in one process (an embedder restarting its relay, tests) can briefly see "locked": retry for up to a second.
fn open_db(config: &::sled::Config) -> StoreResult<::sled::Db> {
    let mut attempts = 0;
    loop {
        match config.open() {
            Err(::sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") && attempts < 50 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

impl SledStore {
    /// A crash between claiming an id and writing its envelope leaves the id without mail; the sender got
    /// no 202 for it, so it retries, and the retry (same sender, id and recipient) writes the envelope at
    /// the claimed position. When the first write is merely still in flight, both write the same key.
    fn restore_if_orphaned(&self, prev: &IdRecord, retry: StoredEnvelope) -> StoreResult<()> {
        let key = mail_key(&prev.to, prev.seq);
        if prev.acked_at.is_none() && !self.mail.contains_key(&key)? {
            let restored = StoredEnvelope { seq: prev.seq, ..retry };
            self.mail.insert(key, encode(&restored)?)?;
        }
        Ok(())
    }
}

/// What [`super::LogStore`] needs besides the [`Store`] methods.
impl SledStore {
    /// The next envelope sequence number: increasing across restarts and crashes (sled persists a high-water mark).
    pub(super) fn next_seq(&self) -> StoreResult<u64> {
        Ok(self.db.generate_id()?.saturating_add(1))
    }

    /// The format the store says it has; `current`, written now, when it says none (a new store).
    pub(super) fn format_or_set(&self, current: u32) -> StoreResult<u32> {
        let meta = self.db.open_tree("meta")?;
        match meta.get(FORMAT)? {
            Some(bytes) => <[u8; 4]>::try_from(bytes.as_ref())
                .map(u32::from_be_bytes)
                .map_err(|_| StoreError::Corrupt("store format".into())),
            None => {
                meta.insert(FORMAT, &current.to_be_bytes())?;
                Ok(current)
            }
        }
    }

    /// Marks mailbox log segments retired, durably: from here they must never be replayed.
    pub(super) fn mark_retired(&self, segments: &[u64]) -> StoreResult<()> {
        for segment in segments {
            self.retired_segments.insert(segment.to_be_bytes(), &[] as &[u8])?;
        }
        self.flush()
    }

    /// Forgets the marks of segments whose files are deleted (not flushed: a mark left over is harmless).
    pub(super) fn unmark_retired(&self, segments: &[u64]) -> StoreResult<()> {
        for segment in segments {
            self.retired_segments.remove(segment.to_be_bytes())?;
        }
        Ok(())
    }

    /// Segments marked retired.
    pub(super) fn retired_segments(&self) -> StoreResult<Vec<u64>> {
        self.retired_segments
            .iter()
            .keys()
            .map(|k| {
                let bytes: [u8; 8] = k?
                    .as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("retired segment key".into()))?;
                Ok(u64::from_be_bytes(bytes))
            })
            .collect()
    }
}

fn mail_key(to: &str, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(to.len() + 9);
    key.extend_from_slice(to.as_bytes());
    key.push(0);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn acked_key(at: u64, batch: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&at.to_be_bytes());
    key[8..].copy_from_slice(&batch.to_be_bytes());
    key
}

/// The ids an `acked` entry lists: its value, or (the per-id layout of earlier versions) its key's tail.
fn acked_ids<'a>(key: &'a [u8], value: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
    let listed = if value.is_empty() {
        key.get(8..24).unwrap_or(&[])
    } else {
        value
    };
    listed.chunks_exact(16)
}

impl Store for SledStore {
    fn add_user(&self, user: &UserRecord) -> StoreResult<bool> {
        let value = encode(user)?;
        let swapped = self
            .users
            .compare_and_swap(user.username.as_bytes(), None as Option<&[u8]>, Some(value))?;
        Ok(swapped.is_ok())
    }

    fn user(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        self.users.get(username.as_bytes())?.map(|v| decode(&v)).transpose()
    }

    fn has_user(&self, username: &str) -> StoreResult<bool> {
        Ok(self.users.contains_key(username.as_bytes())?)
    }

    fn put_challenge(&self, nonce: &[u8], challenge: &ChallengeRecord) -> StoreResult<()> {
        self.challenges.insert(nonce, encode(challenge)?)?;
        Ok(())
    }

    fn take_challenge(&self, nonce: &[u8]) -> StoreResult<Option<ChallengeRecord>> {
        self.challenges.remove(nonce)?.map(|v| decode(&v)).transpose()
    }

    fn put_token(&self, token_hash: &[u8; 32], token: &TokenRecord) -> StoreResult<()> {
        self.tokens.insert(token_hash, encode(token)?)?;
        Ok(())
    }

    fn token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<TokenRecord>> {
        self.tokens.get(token_hash)?.map(|v| decode(&v)).transpose()
    }

    fn insert_envelope_within(&self, envelope: NewEnvelope, quota: MailboxQuota) -> StoreResult<Inserted> {
        let _in_seq_order = self.mailbox_order(&envelope.to)?;
        // A known id goes on to the claim below (a duplicate, or taken); a new one must fit. The stripe lock keeps
        // other inserts to this mailbox out between the count and the write.
        if quota != MailboxQuota::UNLIMITED && self.ids.get(envelope.id.as_bytes())?.is_none() {
            let (mut count, mut bytes) = (0, 0u64);
            for value in self
                .mail
                .scan_prefix(mail_key(&envelope.to, 0).split_at(envelope.to.len() + 1).0)
                .values()
            {
                count += 1;
                bytes += value?.len() as u64;
            }
            if !quota.has_room(count, bytes, envelope.body_b64.len() as u64) {
                return Ok(Inserted::MailboxFull);
            }
        }
        // generate_id stays monotonic across crashes (sled persists a bumped high-water mark).
        let seq = self.db.generate_id()?.saturating_add(1);
        let stored = StoredEnvelope::new(seq, envelope);
        let id_record = encode(&IdRecord {
            from: stored.from.clone(),
            to: stored.to.clone(),
            seq,
            acked_at: None,
        })?;
        // Two plain writes, not a sled transaction (those serialize on a global lock and cost several
        // times more). The id is claimed atomically first; see `restore_if_orphaned` for the crash window.
        let claimed = self
            .ids
            .compare_and_swap(stored.id.as_bytes(), None as Option<&[u8]>, Some(id_record))?;
        match claimed {
            Ok(()) => {
                self.mail.insert(mail_key(&stored.to, seq), encode(&stored)?)?;
                Ok(Inserted::Stored(stored))
            }
            Err(conflict) => {
                let Some(raw) = conflict.current else {
                    return Err(StoreError::Backend("id claim raced with its purge".into()));
                };
                let prev: IdRecord = decode(&raw)?;
                if prev.from != stored.from || prev.to != stored.to {
                    return Ok(Inserted::IdTaken);
                }
                self.restore_if_orphaned(&prev, stored)?;
                Ok(Inserted::Duplicate { seq: prev.seq })
            }
        }
    }

    fn fetch_within(&self, to: &str, after: u64, limit: usize, budget: usize) -> StoreResult<Vec<StoredEnvelope>> {
        let start = mail_key(to, after.saturating_add(1));
        let mut end = to.as_bytes().to_vec();
        end.push(1);
        let page = self.mail.range(start..end).take(limit).map(|item| decode(&item?.1));
        within_budget(page, budget)
    }

    fn ack(&self, to: &str, ids: &[Uuid], now: u64) -> StoreResult<usize> {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let mut pending = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(raw) = self.ids.get(id.as_bytes())? else {
                continue;
            };
            let record: IdRecord = decode(&raw)?;
            if record.to == to && record.acked_at.is_none() {
                pending.push((id, record));
            }
        }
        if pending.is_empty() {
            return Ok(0);
        }
        // Listed first: a crash before the records below are marked leaves ids that the purge skips (it forgets
        // only ids marked acked long enough ago), never an acked id that nothing lists for purging.
        let listed: Vec<u8> = pending.iter().flat_map(|(id, _)| *id.as_bytes()).collect();
        self.acked.insert(acked_key(now, self.db.generate_id()?), listed)?;
        let count = pending.len();
        for (id, mut record) in pending {
            // Mail first: a crash after this line at worst redelivers on a retry (receivers de-duplicate).
            self.mail.remove(mail_key(to, record.seq))?;
            record.acked_at = Some(now);
            self.ids.insert(id.as_bytes(), encode(&record)?)?;
        }
        Ok(count)
    }

    fn mailboxes(&self) -> StoreResult<Vec<String>> {
        let mut names = Vec::new();
        let mut from = Vec::new();
        // One seek per mailbox: keys are `name 0 seq`, so `name 1` is past all of that name's mail.
        while let Some(item) = self.mail.range(from.as_slice()..).next() {
            let (key, _) = item?;
            let name = key.split(|b| *b == 0).next().unwrap_or_default();
            names.push(String::from_utf8_lossy(name).into_owned());
            from = [name, &[1]].concat();
        }
        Ok(names)
    }

    fn purge_expired(&self, now: u64) -> StoreResult<usize> {
        let mut purged = 0;
        for item in self.challenges.iter() {
            let (k, v) = item?;
            if decode::<ChallengeRecord>(&v)?.expires_at <= now {
                self.challenges.remove(k)?;
                purged += 1;
            }
        }
        for item in self.tokens.iter() {
            let (k, v) = item?;
            if decode::<TokenRecord>(&v)?.expires_at <= now {
                self.tokens.remove(k)?;
                purged += 1;
            }
        }
        let cutoff = now.saturating_sub(DEDUP_RETENTION_SECS);
        for item in self.acked.range(..cutoff.to_be_bytes().as_slice()) {
            let (k, v) = item?;
            for id in acked_ids(&k, &v) {
                // Only ids acked long enough ago: one this entry lists may never have been marked (a crash
                // between the two writes of `ack`), or been acked again later.
                let expired = match self.ids.get(id)? {
                    Some(raw) => decode::<IdRecord>(&raw)?.acked_at.is_some_and(|at| at < cutoff),
                    None => false,
                };
                if expired {
                    self.ids.remove(id)?;
                    purged += 1;
                }
            }
            self.acked.remove(k)?;
        }
        Ok(purged)
    }

    fn flush(&self) -> StoreResult<()> {
        self.db.flush()?;
        if let Some(file) = &self.fsync {
            file.sync_data().map_err(|e| StoreError::Backend(e.to_string()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use magpie_proto::EnvelopeKind;

    use super::*;

    fn alice_to_bob(id: Uuid) -> NewEnvelope {
        NewEnvelope {
            id,
            from: "alice".into(),
            to: "bob".into(),
            kind: EnvelopeKind::Message,
            body_b64: "AQID".into(),
            received_at: 1,
        }
    }

    #[test]
    fn a_retry_restores_an_envelope_whose_write_was_lost_after_its_id_was_claimed() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), SyncMode::Flush).unwrap();
        let id = Uuid::new_v4();
        // What a crash between the two writes leaves behind: the claimed id, no mail.
        let orphan = IdRecord {
            from: "alice".into(),
            to: "bob".into(),
            seq: 7,
            acked_at: None,
        };
        store.ids.insert(id.as_bytes(), encode(&orphan).unwrap()).unwrap();
        let retry = alice_to_bob(id);
        assert_eq!(
            store.insert_envelope(retry.clone()).unwrap(),
            Inserted::Duplicate { seq: 7 }
        );
        let mail = store.fetch("bob", 0, 10).unwrap();
        assert_eq!((mail.len(), mail[0].seq, mail[0].id), (1, 7, id));
        // Once acked, a retry does not bring it back.
        assert_eq!(store.ack("bob", &[id], 5).unwrap(), 1);
        assert_eq!(store.insert_envelope(retry).unwrap(), Inserted::Duplicate { seq: 7 });
        assert!(store.fetch("bob", 0, 10).unwrap().is_empty());
    }

    #[test]
    fn the_purge_forgets_ids_listed_either_way_once_their_own_ack_is_old_enough() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), SyncMode::Flush).unwrap();
        let send = |id: Uuid| {
            let stored = store.insert_envelope(alice_to_bob(id)).unwrap();
            assert!(matches!(stored, Inserted::Stored(_)));
        };
        let (old_layout, batched, pending, acked_later) =
            (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        for id in [old_layout, batched, pending, acked_later] {
            send(id);
        }
        assert_eq!(store.ack("bob", &[batched, batched], 10).unwrap(), 1);
        // An ack of the per-id layout, as an earlier version wrote it.
        assert_eq!(store.ack("bob", &[old_layout], 10).unwrap(), 1);
        let newest = store.acked.last().unwrap().unwrap().0;
        store.acked.remove(newest).unwrap();
        let mut per_id = 10u64.to_be_bytes().to_vec();
        per_id.extend_from_slice(old_layout.as_bytes());
        store.acked.insert(per_id, &[] as &[u8]).unwrap();
        // What a crash right after listing leaves: a listed id whose record was never marked.
        store
            .acked
            .insert(
                acked_key(10, 99),
                [*pending.as_bytes(), *acked_later.as_bytes()].concat(),
            )
            .unwrap();
        // ... and one of those acked properly much later.
        assert_eq!(store.ack("bob", &[acked_later], 1_000).unwrap(), 1);

        assert_eq!(store.purge_expired(11 + DEDUP_RETENTION_SECS).unwrap(), 2);
        for id in [old_layout, batched] {
            assert!(!store.ids.contains_key(id.as_bytes()).unwrap());
        }
        // Still pending: its mail waits and a retry is still recognised.
        assert_eq!(store.fetch("bob", 0, 10).unwrap().len(), 1);
        assert!(store.ids.contains_key(pending.as_bytes()).unwrap());
        // Kept for its own retention, not the old listing's.
        assert!(store.ids.contains_key(acked_later.as_bytes()).unwrap());
        assert_eq!(store.purge_expired(1_001 + DEDUP_RETENTION_SECS).unwrap(), 1);
        assert!(!store.ids.contains_key(acked_later.as_bytes()).unwrap());
        assert!(store.acked.is_empty());
    }

    /// `GET /v1/envelopes?after=` pages on from the last seq it returned: an envelope committed behind that cursor
    /// would be passed over. Senders racing a reader must never leave one behind.
    #[test]
    fn a_mailbox_read_on_from_its_last_seq_misses_nothing_that_senders_race_in() {
        const SENDERS: usize = 4;
        const EACH: usize = 300;
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(SledStore::open(dir.path(), SyncMode::Flush).unwrap());
        let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let senders: Vec<_> = (0..SENDERS)
            .map(|_| {
                let (store, done) = (store.clone(), done.clone());
                std::thread::spawn(move || {
                    for _ in 0..EACH {
                        store.insert_envelope(alice_to_bob(Uuid::new_v4())).unwrap();
                    }
                    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                })
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        let mut after = 0;
        loop {
            let finished = done.load(std::sync::atomic::Ordering::SeqCst) == SENDERS;
            for envelope in store.fetch("bob", after, 100).unwrap() {
                seen.insert(envelope.id);
                after = envelope.seq;
            }
            if finished && store.fetch("bob", after, 1).unwrap().is_empty() {
                break;
            }
        }
        for sender in senders {
            sender.join().unwrap();
        }
        let all = store.fetch("bob", 0, SENDERS * EACH + 1).unwrap();
        let passed_over = all.iter().filter(|e| !seen.contains(&e.id)).count();
        assert_eq!((all.len(), passed_over), (SENDERS * EACH, 0));
    }
}

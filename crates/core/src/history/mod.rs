//! A profile's history in sled, every value sealed with the history key. The rules a maintainer needs are here;
//! the modules named hold the details.
//!
//! **Trees.** No key holds plaintext: names and ids are keyed hashes, `H(domain, x)` = HMAC-SHA256 under a
//! sub-key of the history key.
//!
//! | tree          | key                                  | value                                       |
//! |---------------|--------------------------------------|---------------------------------------------|
//! | `meta`        | `key-check`                          | a constant, proves the key on open          |
//! | `meta`        | `format`                             | [`HISTORY_FORMAT`] (u32 BE)                 |
//! | `meta`        | `registration`                       | [`RegistrationRecord`]                      |
//! | `meta`        | `relay-login`                        | token expiry (u64 BE) ‖ the relay's token   |
//! | `meta`        | `generation`                         | how many times the history was opened (u64 BE) |
//! | `meta`        | `rewrite-due`, `requests-indexed`    | flags, not sealed (they say nothing)        |
//! | `contacts`    | `H("chat", peer)`                    | [`Contact`] as JSON                         |
//! | `sessions`    | `H("chat", peer)`                    | `Session::export` bytes                     |
//! | `handshakes`  | `H("handshake", request id)`         | request id and opaque handshake state       |
//! | `finished_handshakes` | `H("handshake", request id)` | when it ended, Unix seconds (u64 BE)       |
//! | `requests`    | `H("request", request id)`           | [`RequestSummary`] as JSON                  |
//! | `message_blocks` | `H("chat", peer) ‖ first seq (u64 BE)` | up to 32 messages ([`Message`] as JSON), see [`blocks`] |
//! | `message_blocks` | `H("chat", peer)`                 | the first seq of the chat's newest block    |
//! | `message_index`  | first 2 bytes of `H("message", id)` | where each message of that bucket is      |
//! | `outbox`      | seq (u64 BE)                         | [`OutboxItem`]: an envelope awaiting a 202  |
//! | `files`       | `H("file", message id)`              | [`FileRecord`]: a file's transfer, as JSON  |
//! | `steps`       | counter (u64 BE)                     | a step's writes while they are made         |
//!
//! `sessions` also holds, under `H("chat", peer) ‖ "previous" ‖ counter ‖ session id`, the last 16 sessions re-keys
//! replaced (messages sealed with them may still be on their way), and under `H("chat", peer) ‖ "reserved" ‖ session
//! id` the send counters a run may use before its steps are flushed (see [`reserve`]). `seq` comes from sled's
//! `generate_id`, monotonic across the database and across restarts, so one chat's messages sit together in arrival
//! order and "the last 50" is one reverse range scan over a few blocks. A change to what a tree holds raises
//! [`HISTORY_FORMAT`], and [`History::open`] moves an older history on (no release has written another yet).
//!
//! **Sealing** ([`crypt`]). Every value is AES-256-GCM under a sub-key of the history key, with a random nonce and
//! `tree ‖ key` as additional data, so a value moved to another slot does not open. A `steps` record is not sealed
//! again: it holds keys and values exactly as their trees keep them.
//!
//! **Writing** ([`step`]). Everything that changes sessions, messages or the outbox is a step: under the one write
//! lock its writes are worked out (messages into their blocks and buckets in memory), written as one `steps`
//! record (one sled insert, atomic), made to the trees, and the record removed; readers read the trees. Contacts, handshakes, requests
//! and `meta` are single writes of their own (no step touches their trees).
//!
//! **Durable** when a flush that started after the write returns ([`History::flush`], [`History::flush_async`]).
//! The engine awaits one before anything that depends on a write leaves the process (an ack to the relay, a
//! receipt, a handshake step); a sealed text goes before, since its send counter was reserved durably ahead
//! ([`reserve`]). A crash keeps a prefix of sled's log: a step is in the trees whole, in part with its record
//! (made whole at the next open), or not at all.
//!
//! **Locks**, taken in this order (the whole client's order is in `crate::lock_order`, checked in debug builds):
//! `key_changed` (contacts' flags; serializes contact writes), then `reservations` (this run's send-counter
//! records), then `writing` (one step at a time). Nothing under `writing` takes another lock.

mod blocks;
mod contacts;
pub mod crypt;
mod export;
pub(crate) mod files;
mod messages;
mod meta;
mod outbox;
mod ratchet;
mod requests;
mod reserve;
mod rewrite;
mod search;
mod step;
mod writer;

use std::path::Path;

use zeroize::Zeroizing;

pub use contacts::{Contact, Discarded, REKEY_MARKS};
pub use crypt::{HistoryKey, HISTORY_KEY_LEN};
pub use files::{FileRecord, FileState, AUTO_DOWNLOAD_BYTES};
pub use messages::{Appended, Cursor, Delivery, Direction, Entry, Message};
pub use meta::RegistrationRecord;
pub use outbox::{OutboxItem, OutboxKey};
pub use ratchet::{SessionSlot, PREVIOUS_SESSIONS};
pub use requests::RequestSummary;
pub use reserve::RESERVE_AHEAD;

use crate::error::{Error, Result};
use crate::keystore::SecretBytes;
use crate::lock_order::{Rank, Ranked};
use crypt::Sealer;
use magpie_proto::{Session, Username};

/// sled's page cache bound. Its default (1 GiB) let a 1M-message history grow to 540 MB RSS; 16 MiB holds the
/// hot tail of every open chat, and older pages are read back from the OS page cache when scrolled to. (With
/// messages in blocks, opening a 1M-message history and paging through it stays at 14 MB RSS whether this is 4, 8
/// or 16 MiB: `benches/history.rs` with `MAGPIE_BENCH_CACHE_MB`.)
pub const CACHE_CAPACITY: u64 = 16 * 1024 * 1024;

const META: &str = "meta";
pub(crate) const CONTACTS: &str = "contacts";
const SESSIONS: &str = "sessions";
const HANDSHAKES: &str = "handshakes";
const FINISHED_HANDSHAKES: &str = "finished_handshakes";
/// How often [`History::finish_handshake`] forgets old ended handshakes.
pub const FINISHED_SWEEP_EVERY_SECS: u64 = 3600;
const MESSAGE_BLOCKS: &str = "message_blocks";
const MESSAGE_INDEX: &str = "message_index";
const OUTBOX: &str = "outbox";
const STEPS: &str = "steps";

/// The on-disk format this code reads and writes (see the module).
pub const HISTORY_FORMAT: u32 = 1;
const FORMAT: &[u8] = b"format";
const KEY_CHECK: &[u8] = b"key-check";
const KEY_CHECK_VALUE: &[u8] = b"magpie history v1";

/// An open, encrypted history. Cheap to share behind an `Arc`; all methods take `&self`. Calls block on disk I/O.
pub struct History {
    db: sled::Db,
    sealer: Sealer,
    meta: sled::Tree,
    outbox: sled::Tree,
    contacts: sled::Tree,
    sessions: sled::Tree,
    handshakes: sled::Tree,
    finished_handshakes: sled::Tree,
    /// Summaries of the incoming requests among `handshakes` (see [`requests`]).
    requests: sled::Tree,
    /// Where each file's transfer stands (see [`files`]).
    files: sled::Tree,
    blocks: sled::Tree,
    message_index: sled::Tree,
    steps: sled::Tree,
    /// Held by the step being worked out and committed: one at a time (see [`step`]).
    writing: Ranked<()>,
    /// This run's send-counter records (see [`reserve`]).
    reservations: Ranked<reserve::Reservations>,
    /// Each contact's `key_changed`, by chat id, as stored (see [`History::key_changed`]).
    key_changed: Ranked<std::collections::HashMap<[u8; 32], bool>>,
    /// When [`History::finish_handshake`] last looked for ended handshakes to forget (Unix seconds; 0: not yet).
    finished_swept_at: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History").finish_non_exhaustive()
    }
}

impl Drop for History {
    fn drop(&mut self) {
        if let Err(e) = self.release_reservations() {
            tracing::warn!(error = %e, "closing the history: send-counter records kept; the next run skips past them");
        }
    }
}

impl History {
    /// Opens (or creates) the history in `dir`. A key that does not open an existing history is
    /// [`Error::HistoryWrongKey`], checked up front rather than on the first message.
    pub fn open(dir: &Path, key: &HistoryKey) -> Result<Self> {
        Self::open_with_cache(dir, key, CACHE_CAPACITY)
    }

    /// [`History::open`] with another page-cache bound in bytes (benchmarks, memory-tight bots).
    pub fn open_with_cache(dir: &Path, key: &HistoryKey, cache_capacity: u64) -> Result<Self> {
        rewrite::recover(dir)?;
        let mut db = open_db(&sled::Config::new().path(dir).cache_capacity(cache_capacity))?;
        let sealer = Sealer::new(key)?;
        let mut meta = db.open_tree(META)?;
        match meta.get(KEY_CHECK)? {
            Some(sealed) => match sealer.open(META, KEY_CHECK, &sealed) {
                Ok(value) if value.as_slice() == KEY_CHECK_VALUE => {}
                _ => return Err(Error::HistoryWrongKey),
            },
            None => {
                meta.insert(KEY_CHECK, sealer.seal(META, KEY_CHECK, KEY_CHECK_VALUE)?)?;
            }
        }
        check_format(&meta, &sealer)?;
        // Messages were deleted since the last open: their values leave the files now (see `rewrite`).
        if meta.contains_key(rewrite::REWRITE_DUE)? {
            drop(meta);
            db = rewrite::rewrite(dir, db, cache_capacity)?;
            meta = db.open_tree(META)?;
        }
        let history = Self {
            contacts: db.open_tree(CONTACTS)?,
            sessions: db.open_tree(SESSIONS)?,
            handshakes: db.open_tree(HANDSHAKES)?,
            finished_handshakes: db.open_tree(FINISHED_HANDSHAKES)?,
            requests: db.open_tree(requests::REQUESTS)?,
            files: db.open_tree(files::FILES)?,
            blocks: db.open_tree(MESSAGE_BLOCKS)?,
            message_index: db.open_tree(MESSAGE_INDEX)?,
            outbox: db.open_tree(OUTBOX)?,
            steps: db.open_tree(STEPS)?,
            writing: Ranked::new(Rank::Writing, ()),
            reservations: Ranked::with_default(Rank::Reservations),
            key_changed: Ranked::with_default(Rank::KeyChanged),
            finished_swept_at: std::sync::atomic::AtomicU64::new(0),
            meta,
            sealer,
            db,
        };
        history.make_left_steps()?;
        Ok(history)
    }

    /// Writes everything to disk; returns the bytes flushed. sled also flushes on its own every 500 ms.
    pub fn flush(&self) -> Result<usize> {
        let covered = self.reserved_so_far()?;
        let flushed = self.db.flush()?;
        self.note_durable(covered)?;
        Ok(flushed)
    }

    /// [`History::flush`] without blocking the async worker. What the engine awaits before anything that
    /// depends on the write leaves the process: an ack to the relay, a handshake step. (A sealed message need not
    /// wait: its counter is reserved, see [`reserve`].)
    pub async fn flush_async(&self) -> Result<usize> {
        let covered = self.reserved_so_far()?;
        let flushed = self.db.flush_async().await?;
        self.note_durable(covered)?;
        Ok(flushed)
    }

    fn chat_id(&self, peer: &Username) -> Result<[u8; 32]> {
        self.sealer.index(b"chat", peer.as_str().as_bytes())
    }

    /// Stores the session with `peer`, replacing the previous one.
    pub fn save_session(&self, session: &Session) -> Result<()> {
        let key = self.chat_id(session.peer())?;
        let exported = session.export()?;
        let step = self.step()?;
        step.seal_put(step::Tree::Sessions, &key, exported.expose_secret())?;
        step.commit()
    }

    /// The stored session with `peer`, if any.
    pub fn load_session(&self, peer: &Username) -> Result<Option<Session>> {
        let key = self.chat_id(peer)?;
        let Some(sealed) = self.sessions.get(key)? else {
            return Ok(None);
        };
        let bytes = self.sealer.open(SESSIONS, &key, &sealed)?;
        let mut session = Session::import(&bytes)?;
        self.skip_past_reservation(&mut session, &key)?;
        Ok(Some(session))
    }

    /// Forgets the session with `peer`; `false` if there was none.
    pub fn remove_session(&self, peer: &Username) -> Result<bool> {
        let key = self.chat_id(peer)?;
        let step = self.step()?;
        let existed = step.get(step::Tree::Sessions, &key)?.is_some();
        step.remove(step::Tree::Sessions, &key);
        step.commit()?;
        Ok(existed)
    }

    /// Stores opaque handshake state under its request id, replacing what was there.
    pub fn save_handshake(&self, request_id: &str, state: &[u8]) -> Result<()> {
        let key = self.sealer.index(b"handshake", request_id.as_bytes())?;
        // The id goes inside the sealed value so pending handshakes can be listed after a restart.
        let id_len = u16::try_from(request_id.len()).map_err(|_| Error::Crypto("request id too long"))?;
        let mut plain = Zeroizing::new(Vec::with_capacity(2 + request_id.len() + state.len()));
        plain.extend_from_slice(&id_len.to_be_bytes());
        plain.extend_from_slice(request_id.as_bytes());
        plain.extend_from_slice(state);
        self.handshakes
            .insert(key, self.sealer.seal(HANDSHAKES, &key, &plain)?)?;
        Ok(())
    }

    /// The handshake state stored under `request_id`, if any.
    pub fn load_handshake(&self, request_id: &str) -> Result<Option<SecretBytes>> {
        let key = self.sealer.index(b"handshake", request_id.as_bytes())?;
        let Some(sealed) = self.handshakes.get(key)? else {
            return Ok(None);
        };
        let plain = self.sealer.open(HANDSHAKES, &key, &sealed)?;
        let (_, state) = split_handshake(&plain)?;
        Ok(Some(SecretBytes::new(Zeroizing::new(state.to_vec()))))
    }

    /// Every stored handshake: its request id and its state, opened once each.
    pub fn handshakes(&self) -> Result<Vec<(String, SecretBytes)>> {
        let mut out = Vec::new();
        for item in &self.handshakes {
            let (key, sealed) = item?;
            let plain = self.sealer.open(HANDSHAKES, &key, &sealed)?;
            let (id, state) = split_handshake(&plain)?;
            out.push((id, SecretBytes::new(Zeroizing::new(state.to_vec()))));
        }
        Ok(out)
    }

    /// Forgets a handshake; `false` if there was none.
    pub fn remove_handshake(&self, request_id: &str) -> Result<bool> {
        let key = self.sealer.index(b"handshake", request_id.as_bytes())?;
        Ok(self.handshakes.remove(key)?.is_some())
    }

    /// Remembers that the handshake `request_id` ended (established, failed or declined) at `now`, so a copy of
    /// its request that arrives later is not taken for a new one; forgets those that ended before `forget_before`
    /// (their requests are too old to be accepted anyway). That takes reading them all, so it is done on the first
    /// call of a run and then at most every [`FINISHED_SWEEP_EVERY_SECS`]: a chat that re-keys every few hundred
    /// messages ends hundreds of handshakes a week, and each re-key read them all on both sides.
    pub fn finish_handshake(&self, request_id: &str, now: u64, forget_before: u64) -> Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        let key = self.sealer.index(b"handshake", request_id.as_bytes())?;
        self.finished_handshakes.insert(key, &now.to_be_bytes())?;
        let swept_at = self.finished_swept_at.load(Relaxed);
        if swept_at != 0 && now.saturating_sub(swept_at) < FINISHED_SWEEP_EVERY_SECS {
            return Ok(());
        }
        self.finished_swept_at.store(now.max(1), Relaxed);
        for item in &self.finished_handshakes {
            let (key, at) = item?;
            let at: [u8; 8] = at.as_ref().try_into().map_err(|_| Error::HistoryCorrupt {
                tree: FINISHED_HANDSHAKES,
            })?;
            if u64::from_be_bytes(at) < forget_before {
                self.finished_handshakes.remove(key)?;
            }
        }
        Ok(())
    }

    /// Whether the handshake `request_id` ended already ([`History::finish_handshake`]).
    pub fn handshake_finished(&self, request_id: &str) -> Result<bool> {
        let key = self.sealer.index(b"handshake", request_id.as_bytes())?;
        Ok(self.finished_handshakes.contains_key(key)?)
    }
}

/// Writes [`HISTORY_FORMAT`] into a history that has none (a new one, or one written before the key existed, which
/// has this layout); refuses one a newer Magpie wrote.
fn check_format(meta: &sled::Tree, sealer: &Sealer) -> Result<()> {
    let Some(sealed) = meta.get(FORMAT)? else {
        meta.insert(FORMAT, sealer.seal(META, FORMAT, &HISTORY_FORMAT.to_be_bytes())?)?;
        return Ok(());
    };
    let plain = sealer.open(META, FORMAT, &sealed)?;
    let found = <[u8; 4]>::try_from(plain.as_slice())
        .map(u32::from_be_bytes)
        .map_err(|_| Error::HistoryCorrupt { tree: META })?;
    match found {
        HISTORY_FORMAT => Ok(()),
        _ => Err(Error::HistoryFormat { found }),
    }
}

/// sled releases its file lock from a background thread shortly after the last handle drops, so a close then reopen
/// in one process (switching profiles, tests) can briefly see "locked": retry for up to a second before giving up.
fn open_db(config: &sled::Config) -> Result<sled::Db> {
    let mut attempts = 0;
    loop {
        match config.open() {
            Err(sled::Error::Io(error)) if error.to_string().contains("could not acquire lock") => {
                attempts += 1;
                if attempts >= 50 {
                    return Err(Error::HistoryInUse);
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

fn split_handshake(plain: &[u8]) -> Result<(String, &[u8])> {
    let corrupt = || Error::HistoryCorrupt { tree: HANDSHAKES };
    let len_bytes: [u8; 2] = plain.get(..2).and_then(|b| b.try_into().ok()).ok_or_else(corrupt)?;
    let id_end = 2 + usize::from(u16::from_be_bytes(len_bytes));
    let id = plain.get(2..id_end).ok_or_else(corrupt)?;
    let id = String::from_utf8(id.to_vec()).map_err(|_| corrupt())?;
    Ok((id, plain.get(id_end..).ok_or_else(corrupt)?))
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_search;
#[cfg(test)]
mod tests_step;

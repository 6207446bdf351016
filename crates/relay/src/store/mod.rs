//! Storage behind a trait: users and certificates, login challenges, hashed tokens, mailboxes.
//!
//! Backends: [`LogStore`] (the relay's: mailboxes in an append-only log, the rest in a [`SledStore`]),
//! [`SledStore`] (everything in sled, a reference) and [`MemoryStore`] (unit tests). Every backend passes the same story test (`tests/store_story.rs`), so a later PostgreSQL backend has a spec to meet.
//! Methods are synchronous: each answers in microseconds, and the one slow operation, [`Store::flush`], is called
//! only from the group-commit thread ([`GroupCommit`]).

mod backend;
pub mod blobs;
mod commit;
mod intercept;
pub(crate) mod log;
mod memory;
#[cfg(feature = "postgres")]
mod pg;
mod sled;

use std::fmt;

use magpie_proto::EnvelopeKind;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use self::sled::{SledStore, SyncMode};
pub use backend::{Backend, Durable, Embedded, PendingInsert};
pub use commit::GroupCommit;
pub use intercept::Intercept;
pub use log::{LogStore, SEGMENT_BYTES, STORE_FORMAT};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use pg::{Announced, PgStore, SharedSettingsError};

/// How long the id of an acknowledged envelope is remembered, so a late retry is not delivered again.
pub const DEDUP_RETENTION_SECS: u64 = 7 * 24 * 3600;

/// A storage failure. Clone so one flush result can answer every request of a group commit.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (I/O, sled error).
    #[error("storage backend: {0}")]
    Backend(String),
    /// Stored bytes that do not decode.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The store says it has a layout this relay does not read (a newer relay wrote it).
    #[error("the store is in format {found}, and this relay reads format {supported}: run a relay that reads it")]
    Format {
        /// What the store says.
        found: u32,
        /// What this relay reads and writes.
        supported: u32,
    },
}

impl From<::sled::Error> for StoreError {
    fn from(e: ::sled::Error) -> Self {
        Self::Backend(e.to_string())
    }
}

/// Result alias of the store.
pub type StoreResult<T> = Result<T, StoreError>;

/// A registered user: the name is taken once, with the certificate the CA issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// Canonical username.
    pub username: String,
    /// The issued certificate, PEM.
    pub cert_pem: String,
    /// Registration time, Unix seconds.
    pub created_at: u64,
}

/// A pending login challenge, keyed by its nonce; single use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeRecord {
    /// Who asked for it.
    pub username: String,
    /// Unix seconds after which it is refused.
    pub expires_at: u64,
}

/// A bearer token, keyed by the SHA-256 of the token (the token itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Whose token.
    pub username: String,
    /// Unix seconds after which it is refused.
    pub expires_at: u64,
}

/// An envelope as submitted, before the store gives it a sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEnvelope {
    /// Sender-chosen id (UUID v4): the idempotency key.
    pub id: Uuid,
    /// Authenticated sender.
    pub from: String,
    /// Recipient.
    pub to: String,
    /// What the opaque body holds.
    pub kind: EnvelopeKind,
    /// The opaque body, base64 as received (validated by the API).
    pub body_b64: String,
    /// Receive time, Unix seconds.
    pub received_at: u64,
}

/// A stored envelope with its mailbox position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEnvelope {
    /// Position: increasing in insertion order across the whole store; the fetch cursor.
    pub seq: u64,
    /// Sender-chosen id.
    pub id: Uuid,
    /// Sender.
    pub from: String,
    /// Recipient.
    pub to: String,
    /// What the body holds.
    pub kind: EnvelopeKind,
    /// The opaque body, base64.
    pub body_b64: String,
    /// Receive time, Unix seconds.
    pub received_at: u64,
}

impl StoredEnvelope {
    fn new(seq: u64, e: NewEnvelope) -> Self {
        Self {
            seq,
            id: e.id,
            from: e.from,
            to: e.to,
            kind: e.kind,
            body_b64: e.body_b64,
            received_at: e.received_at,
        }
    }
}

/// The outcome of [`Store::insert_envelope`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// Newly stored.
    Stored(StoredEnvelope),
    /// The same sender already sent this id (a retry): nothing was written.
    Duplicate {
        /// Sequence number of the first copy.
        seq: u64,
    },
    /// Another sender already used this id: refused.
    IdTaken,
    /// The recipient's mailbox holds as much as its quota allows: nothing was written.
    MailboxFull,
}

/// How much one mailbox may hold waiting. Bytes are what the waiting envelopes take in the store (their bodies and a
/// little framing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxQuota {
    /// Envelopes waiting at most.
    pub envelopes: usize,
    /// Bytes waiting at most.
    pub bytes: u64,
}

impl MailboxQuota {
    /// No limit (tests, tools).
    pub const UNLIMITED: Self = Self {
        envelopes: usize::MAX,
        bytes: u64::MAX,
    };

    /// Whether a mailbox holding `envelopes` waiting in `bytes` has room for one more of `adding` bytes.
    pub fn has_room(&self, envelopes: usize, bytes: u64, adding: u64) -> bool {
        envelopes < self.envelopes && bytes.saturating_add(adding) <= self.bytes
    }
}

/// What the store keeps per envelope id, for idempotency (kept after ack until purged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct IdRecord {
    from: String,
    to: String,
    seq: u64,
    /// Unix seconds of the ack; `None` while the envelope waits in the mailbox.
    acked_at: Option<u64>,
}

/// A figure a backend reports at `GET /metrics` (a Prometheus gauge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreGauge {
    /// Metric name.
    pub name: &'static str,
    /// What it counts.
    pub help: &'static str,
    /// Its value now.
    pub value: u64,
}

/// Everything the relay persists. Implementations must be safe to call from many threads.
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Registers a user; `Ok(false)` when the name is already taken (first come, atomically).
    fn add_user(&self, user: &UserRecord) -> StoreResult<bool>;
    /// Looks a user up.
    fn user(&self, username: &str) -> StoreResult<Option<UserRecord>>;
    /// Whether the name is registered (on every send: cheaper than [`Store::user`]).
    fn has_user(&self, username: &str) -> StoreResult<bool>;

    /// Stores a login challenge under its nonce.
    fn put_challenge(&self, nonce: &[u8], challenge: &ChallengeRecord) -> StoreResult<()>;
    /// Removes and returns a challenge (single use, whatever the login's outcome).
    fn take_challenge(&self, nonce: &[u8]) -> StoreResult<Option<ChallengeRecord>>;

    /// Stores a token record under the token's SHA-256.
    fn put_token(&self, token_hash: &[u8; 32], token: &TokenRecord) -> StoreResult<()>;
    /// Looks a token up by its SHA-256 (expiry is the caller's check).
    fn token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<TokenRecord>>;

    /// Stores an envelope unless its id was seen (idempotent: a retry of a stored one is a duplicate even when the
    /// mailbox has filled since) or its recipient's mailbox is over `quota`, checked atomically with the insert.
    /// Not durable until [`Store::flush`].
    fn insert_envelope_within(&self, envelope: NewEnvelope, quota: MailboxQuota) -> StoreResult<Inserted>;
    /// [`Store::insert_envelope_within`] with no quota.
    fn insert_envelope(&self, envelope: NewEnvelope) -> StoreResult<Inserted> {
        self.insert_envelope_within(envelope, MailboxQuota::UNLIMITED)
    }
    /// `to`'s pending envelopes with `seq > after`, oldest first, at most `limit`.
    fn fetch(&self, to: &str, after: u64, limit: usize) -> StoreResult<Vec<StoredEnvelope>> {
        self.fetch_within(to, after, limit, usize::MAX)
    }
    /// [`Store::fetch`] that stops before the envelopes' bodies pass `budget` bytes (but takes at least one):
    /// what a page may hold is decided before anything is read.
    fn fetch_within(&self, to: &str, after: u64, limit: usize, budget: usize) -> StoreResult<Vec<StoredEnvelope>>;
    /// Deletes those of `ids` that wait in `to`'s mailbox; returns how many. Ids stay known for dedup.
    fn ack(&self, to: &str, ids: &[Uuid], now: u64) -> StoreResult<usize>;

    /// The recipients with envelopes waiting.
    fn mailboxes(&self) -> StoreResult<Vec<String>>;

    /// Drops expired challenges and tokens, and ids acknowledged more than [`DEDUP_RETENTION_SECS`] ago.
    fn purge_expired(&self, now: u64) -> StoreResult<usize>;
    /// Makes every write that returned before this call durable (see the crate docs for what sled's
    /// flush guarantees).
    fn flush(&self) -> StoreResult<()>;

    /// What the backend reports about itself at `GET /metrics` (nothing by default).
    fn gauges(&self) -> Vec<StoreGauge> {
        Vec::new()
    }
}

/// The envelopes of `page`, oldest first, until their bodies would pass `budget` bytes (at least one, however
/// large): what [`Store::fetch_within`] returns, for a backend that reads its page one envelope at a time.
pub(crate) fn within_budget(
    page: impl Iterator<Item = StoreResult<StoredEnvelope>>,
    budget: usize,
) -> StoreResult<Vec<StoredEnvelope>> {
    let mut taken: Vec<StoredEnvelope> = Vec::new();
    let mut bytes = 0usize;
    for e in page {
        let e = e?;
        bytes = bytes.saturating_add(e.body_b64.len());
        if !taken.is_empty() && bytes > budget {
            break;
        }
        taken.push(e);
    }
    Ok(taken)
}

/// An envelope kind as the stores write it (the log's records, PostgreSQL's rows).
pub(crate) fn kind_tag(kind: EnvelopeKind) -> u8 {
    match kind {
        EnvelopeKind::ChatRequest => 1,
        EnvelopeKind::ChatAccept => 2,
        EnvelopeKind::ChatDecline => 3,
        EnvelopeKind::KeyTransfer => 4,
        EnvelopeKind::KeyConfirm => 5,
        EnvelopeKind::Message => 6,
    }
}

/// [`kind_tag`] read back.
pub(crate) fn kind_from_tag(tag: u8) -> StoreResult<EnvelopeKind> {
    Ok(match tag {
        1 => EnvelopeKind::ChatRequest,
        2 => EnvelopeKind::ChatAccept,
        3 => EnvelopeKind::ChatDecline,
        4 => EnvelopeKind::KeyTransfer,
        5 => EnvelopeKind::KeyConfirm,
        6 => EnvelopeKind::Message,
        other => return Err(StoreError::Corrupt(format!("unknown envelope kind {other}"))),
    })
}

fn encode<T: Serialize>(value: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

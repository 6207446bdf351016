//! Blobs: the sealed bytes of files that users send each other, opaque to the relay. A blob is created with its
//! size and recipients, uploaded in parts (each part appended at the offset the relay holds, so an interrupted
//! upload resumes where it stopped), read in ranges once complete, and deleted when every recipient has released
//! it, when its uploader cancels it, or at expiry.
//!
//! Backends: [`FileBlobs`] (one file per blob under the data directory, with the embedded store), the PostgreSQL
//! backend (chunked rows, so every relay on the database serves every blob) and [`MemoryBlobs`] (tests). Every
//! backend passes the same story (`tests/blob_story.rs`).

mod file;
mod memory;

use std::fmt;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use file::FileBlobs;
pub use memory::MemoryBlobs;

use super::{StoreGauge, StoreResult};

/// What an upload is appended in, and a download read in, at most: the memory one transfer holds.
pub const BLOB_CHUNK: usize = 256 * 1024;

/// How long an upload may stay incomplete before it is deleted, seconds.
pub const INCOMPLETE_BLOB_SECS: u64 = 24 * 3600;

/// A blob to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBlob {
    /// Chosen by the relay, random.
    pub id: Uuid,
    /// The uploader.
    pub owner: String,
    /// Its size in bytes, declared before the upload.
    pub size: u64,
    /// Who may read it (besides the owner).
    pub recipients: Vec<String>,
    /// Unix seconds.
    pub created_at: u64,
}

/// A stored blob's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobInfo {
    /// Its id.
    pub id: Uuid,
    /// The uploader.
    pub owner: String,
    /// Declared size in bytes.
    pub size: u64,
    /// Bytes uploaded so far.
    pub received: u64,
    /// Who may read it (besides the owner).
    pub recipients: Vec<String>,
    /// The recipients that have released it.
    pub released: Vec<String>,
    /// Unix seconds.
    pub created_at: u64,
}

impl BlobInfo {
    /// The record of a blob just created.
    pub fn new(blob: NewBlob) -> Self {
        Self {
            id: blob.id,
            owner: blob.owner,
            size: blob.size,
            received: 0,
            recipients: blob.recipients,
            released: Vec::new(),
            created_at: blob.created_at,
        }
    }

    /// Whether every byte has been uploaded.
    pub fn complete(&self) -> bool {
        self.received == self.size
    }

    /// Where an append of `len` bytes at `offset` would end, or why it may not be made (see [`Blobs::append`]).
    pub(crate) fn append_end(&self, offset: u64, len: usize) -> Result<u64, Appended> {
        if self.received != offset {
            return Err(Appended::Mismatch {
                received: self.received,
            });
        }
        let end = offset.saturating_add(len as u64);
        if end > self.size {
            return Err(Appended::TooLong { size: self.size });
        }
        Ok(end)
    }

    /// Whether `user` may read it: its owner or one of its recipients.
    pub fn readable_by(&self, user: &str) -> bool {
        self.owner == user || self.recipients.iter().any(|r| r == user)
    }

    /// What a release by `user` does to this record: whom it leaves holding it, or `None` for a party that is not
    /// one. The owner's release (a cancel) and the last recipient's delete the blob.
    pub(crate) fn release(&mut self, user: &str) -> Released {
        if self.owner == user {
            return Released::Deleted;
        }
        if !self.recipients.iter().any(|r| r == user) {
            return Released::NotYours;
        }
        if !self.released.iter().any(|r| r == user) {
            self.released.push(user.to_owned());
        }
        if self.recipients.iter().all(|r| self.released.contains(r)) {
            Released::Deleted
        } else {
            Released::Kept
        }
    }
}

/// What a user's blobs may take at most, counted by their declared sizes from creation on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobQuota {
    /// Blobs at most.
    pub blobs: usize,
    /// Bytes at most.
    pub bytes: u64,
}

impl BlobQuota {
    /// No limit (tests, tools).
    pub const UNLIMITED: Self = Self {
        blobs: usize::MAX,
        bytes: u64::MAX,
    };

    /// Whether an owner holding `blobs` in `bytes` may create one more of `adding` bytes.
    pub fn has_room(&self, blobs: usize, bytes: u64, adding: u64) -> bool {
        blobs < self.blobs && bytes.saturating_add(adding) <= self.bytes
    }
}

/// The outcome of [`Blobs::create`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// Stored, empty.
    Created,
    /// The owner's blobs hold their quota: nothing was written.
    QuotaFull,
}

/// The outcome of [`Blobs::append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Appended: the blob now holds this many bytes.
    At(u64),
    /// The blob holds `received` bytes, not the offset given: nothing was written.
    Mismatch {
        /// What it holds.
        received: u64,
    },
    /// The bytes would pass the declared size: nothing was written.
    TooLong {
        /// The declared size.
        size: u64,
    },
    /// No such blob.
    Missing,
}

/// The outcome of [`Blobs::release`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    /// Recorded; other recipients still hold it.
    Kept,
    /// Deleted: its owner cancelled it, or its last recipient released it.
    Deleted,
    /// The user is neither its owner nor a recipient: nothing changed.
    NotYours,
    /// No such blob.
    Missing,
}

/// A blob's bytes as they are read, in pieces of at most [`BLOB_CHUNK`].
pub type BlobStream = Pin<Box<dyn Stream<Item = StoreResult<Bytes>> + Send + 'static>>;

/// Where the relay keeps blobs. Implementations must be safe to call from many tasks.
#[async_trait]
pub trait Blobs: Send + Sync + fmt::Debug + 'static {
    /// Creates an empty blob unless its owner's blobs would pass `quota`, checked atomically with the insert.
    async fn create(&self, blob: NewBlob, quota: BlobQuota) -> StoreResult<Created>;

    /// A blob's record.
    async fn blob(&self, id: Uuid) -> StoreResult<Option<BlobInfo>>;

    /// Appends `data` to the blob if it holds exactly `offset` bytes and `data` fits in its declared size, checked
    /// atomically with the write. Not durable until [`Blobs::sync`].
    async fn append(&self, id: Uuid, offset: u64, data: Bytes) -> StoreResult<Appended>;

    /// Makes what was appended to the blob durable.
    async fn sync(&self, id: Uuid) -> StoreResult<()>;

    /// The blob's bytes `start..end` (of those received), or `None` when there is no such blob.
    async fn read(&self, id: Uuid, start: u64, end: u64) -> StoreResult<Option<BlobStream>>;

    /// Records that `user` has let go of the blob (see [`Released`]).
    async fn release(&self, id: Uuid, user: &str) -> StoreResult<Released>;

    /// Deletes complete blobs created before `complete_before` and incomplete ones created before
    /// `incomplete_before`; returns how many.
    async fn expire(&self, complete_before: u64, incomplete_before: u64) -> StoreResult<usize>;

    /// What the backend reports at `GET /metrics`.
    fn gauges(&self) -> Vec<StoreGauge>;
}

/// The gauges every backend reports, from its count and bytes (declared sizes).
pub(crate) fn blob_gauges(blobs: usize, bytes: u64) -> Vec<StoreGauge> {
    vec![
        StoreGauge {
            name: "magpie_relay_blobs",
            help: "Blobs stored (complete or being uploaded).",
            value: u64::try_from(blobs).unwrap_or(u64::MAX),
        },
        StoreGauge {
            name: "magpie_relay_blob_bytes",
            help: "Bytes the stored blobs take, by their declared sizes.",
            value: bytes,
        },
    ]
}

/// Whether a blob created at `created_at` and `complete` or not is past the expiry given.
pub(crate) fn expired(info: &BlobInfo, complete_before: u64, incomplete_before: u64) -> bool {
    if info.complete() {
        info.created_at < complete_before
    } else {
        info.created_at < incomplete_before
    }
}

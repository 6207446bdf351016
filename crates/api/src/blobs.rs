//! Blobs: the sealed bytes of a file, uploaded in parts and read in ranges (`docs/PROTOCOL.md`, "Blobs").

use serde::{Deserialize, Serialize};
#[cfg(feature = "openapi")]
use utoipa::ToSchema;
use uuid::Uuid;

/// The request and response header holding how many bytes a blob holds: where the next part starts.
pub const UPLOAD_OFFSET: &str = "upload-offset";
/// The response header holding a blob's declared size.
pub const UPLOAD_LENGTH: &str = "upload-length";
/// The header of a 413 to `POST /v1/blobs`: the largest blob the relay takes, in bytes.
pub const UPLOAD_MAX_LENGTH: &str = "upload-max-length";
/// The content type of a part.
pub const PART_CONTENT_TYPE: &str = "application/offset+octet-stream";

/// `POST /v1/blobs`: a blob to upload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewBlobRequest {
    /// Its size in bytes (at least 1, at most the relay's `max_file_bytes`).
    pub size: u64,
    /// Registered users who may read it besides the caller (1 to 16, canonical names).
    pub recipients: Vec<String>,
}

/// `201` to `POST /v1/blobs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BlobCreated {
    /// Where to upload it: `PATCH /v1/blobs/{id}`.
    pub id: Uuid,
    /// Unix seconds after which an upload that has not completed is deleted.
    pub upload_by: u64,
    /// Unix seconds after which the complete blob is deleted, fetched or not; absent when the relay keeps it
    /// until its recipients release it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

/// Most recipients one blob names.
pub const MAX_BLOB_RECIPIENTS: usize = 16;

//! The relay's one error type. Every variant maps to a status and a stable `code`; the body is always
//! JSON `{code, message}`, and internal details are logged, never sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use magpie_api::{ApiError, ErrorCode};

use crate::store::StoreError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input that does not parse or validate.
    #[error("{0}")]
    BadRequest(String),
    /// A CSR that does not parse or whose self-signature, key or name is refused.
    #[error("bad certificate request: {0}")]
    BadCsr(String),
    /// A body, or an envelope, over its limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A JSON route called without `Content-Type: application/json`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The username is already registered.
    #[error("the name {0:?} is taken")]
    NameTaken(String),
    /// The recipient's mailbox holds as much as its quota allows (it empties as the recipient reads it).
    #[error("{0}'s mailbox is full")]
    MailboxFull(String),
    /// The envelope id was already used by another sender.
    #[error("envelope id already used")]
    IdTaken,
    /// A blob part that does not start where the blob ends.
    #[error("the blob holds {received} bytes: a part goes on from there")]
    OffsetMismatch {
        /// What the blob holds.
        received: u64,
    },
    /// A download of a blob still being uploaded.
    #[error("{0}")]
    BlobIncomplete(String),
    /// A `Range` that is not one span inside the blob.
    #[error("a range is one span inside the blob's {size} bytes")]
    RangeNotSatisfiable {
        /// The blob's size.
        size: u64,
    },
    /// A blob larger than the relay takes.
    #[error("a file of {size} bytes; this relay takes files of up to {limit} bytes")]
    FileTooLarge {
        /// The size asked for.
        size: u64,
        /// The most the relay takes.
        limit: u64,
    },
    /// The caller's blobs hold their quota.
    #[error("{0}")]
    FileQuotaFull(String),
    /// No token, an unknown or expired token, or a failed login.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Authenticated, but acting for someone else.
    #[error("{0}")]
    Forbidden(&'static str),
    /// No such user or route.
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A rate limit (per user for sending, per client address for login and registration); retry after the given
    /// seconds.
    #[error("too many requests")]
    RateLimited {
        /// Seconds until a retry can succeed.
        retry_after_secs: u64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else on our side.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// The HTTP status and the stable machine-readable code.
    pub fn status_code(&self) -> (StatusCode, ErrorCode) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, ErrorCode::BadRequest),
            Self::BadCsr(_) => (StatusCode::BAD_REQUEST, ErrorCode::BadCsr),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge),
            Self::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, ErrorCode::UnsupportedMediaType),
            Self::NameTaken(_) => (StatusCode::CONFLICT, ErrorCode::NameTaken),
            Self::IdTaken => (StatusCode::CONFLICT, ErrorCode::IdTaken),
            Self::MailboxFull(_) => (StatusCode::INSUFFICIENT_STORAGE, ErrorCode::MailboxFull),
            Self::OffsetMismatch { .. } => (StatusCode::CONFLICT, ErrorCode::OffsetMismatch),
            Self::BlobIncomplete(_) => (StatusCode::CONFLICT, ErrorCode::BlobIncomplete),
            Self::RangeNotSatisfiable { .. } => (StatusCode::RANGE_NOT_SATISFIABLE, ErrorCode::RangeNotSatisfiable),
            Self::FileTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge),
            Self::FileQuotaFull(_) => (StatusCode::INSUFFICIENT_STORAGE, ErrorCode::FileQuotaFull),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, ErrorCode::Forbidden),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, ErrorCode::MethodNotAllowed),
            Self::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited),
            Self::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::StorageUnavailable),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = self.status_code();
        let message = match &self {
            Self::Store(e) => {
                tracing::error!(error = %e, "store failure");
                "storage is unavailable, retry later".to_owned()
            }
            Self::Internal(e) => {
                tracing::error!(error = %e, "internal error");
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        let mut response = (status, Json(ApiError { code, message })).into_response();
        let headers = response.headers_mut();
        match &self {
            Self::RateLimited { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            Self::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::OffsetMismatch { received } => {
                headers.insert(magpie_api::UPLOAD_OFFSET, HeaderValue::from(*received));
            }
            Self::FileTooLarge { limit, .. } => {
                headers.insert(magpie_api::UPLOAD_MAX_LENGTH, HeaderValue::from(*limit));
            }
            Self::RangeNotSatisfiable { size } => {
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    headers.insert(header::CONTENT_RANGE, value);
                }
            }
            _ => {}
        }
        response
    }
}

/// Result alias of the relay.
pub type Result<T, E = Error> = std::result::Result<T, E>;

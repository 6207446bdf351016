//! The relay's one error type. Every variant maps to a status and a stable `code`; the body is always
//! JSON `{code, message}`, and internal details are logged, never sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

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

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: String,
}

impl Error {
    /// The HTTP status and the stable machine-readable code.
    pub fn status_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::BadCsr(_) => (StatusCode::BAD_REQUEST, "bad_csr"),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Self::NameTaken(_) => (StatusCode::CONFLICT, "name_taken"),
            Self::IdTaken => (StatusCode::CONFLICT, "id_taken"),
            Self::MailboxFull(_) => (StatusCode::INSUFFICIENT_STORAGE, "mailbox_full"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
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
        let mut response = (status, Json(Body { code, message })).into_response();
        let headers = response.headers_mut();
        match &self {
            Self::RateLimited { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            Self::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

/// Result alias of the relay.
pub type Result<T, E = Error> = std::result::Result<T, E>;

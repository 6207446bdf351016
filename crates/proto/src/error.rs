//! The crate's one error type, split by cause.

use crate::verify::Fingerprint;

/// Why a certificate (or chain) was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertProblem {
    /// The bytes are not a certificate.
    Unparsable,
    /// The chain does not lead to the pinned root (other CA, bad signature, CA flags).
    Untrusted(String),
    /// `notAfter` is before the given time.
    Expired,
    /// `notBefore` is after the given time.
    NotYetValid,
    /// The subject CN is not the expected username.
    WrongName {
        /// The username we expected.
        expected: String,
        /// The CN the certificate carries.
        found: String,
    },
    /// Wrong key type or size, wrong key usage, or the certificate is a CA.
    Unsuitable(String),
    /// The certificate does not belong to the given private key.
    KeyMismatch,
}

impl std::fmt::Display for CertProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unparsable => f.write_str("not a certificate"),
            Self::Untrusted(why) => write!(f, "untrusted: {why}"),
            Self::Expired => f.write_str("expired"),
            Self::NotYetValid => f.write_str("not yet valid"),
            Self::WrongName { expected, found } => write!(f, "issued to {found:?}, expected {expected:?}"),
            Self::Unsuitable(why) => write!(f, "unsuitable: {why}"),
            Self::KeyMismatch => f.write_str("does not match the private key"),
        }
    }
}

/// Every failure of the protocol crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A username outside `[a-z0-9._-]{3,32}`.
    #[error("invalid username {0:?}")]
    InvalidUsername(String),
    /// A certificate or chain was refused.
    #[error("bad certificate: {0}")]
    BadCertificate(CertProblem),
    /// A CSR was refused (bad self-signature, bad subject, weak key).
    #[error("bad certificate request: {0}")]
    BadCsr(String),
    /// A handshake signature did not verify.
    #[error("bad signature")]
    BadSignature,
    /// The KeyConfirm MAC did not match.
    #[error("key confirmation failed")]
    BadConfirm,
    /// Decryption or unwrapping failed. Deliberately without detail (no oracle).
    #[error("decryption failed")]
    Decrypt,
    /// A message number that was already received.
    #[error("replayed message")]
    Replay,
    /// A message older than the skipped-key window: its key is gone.
    #[error("message too old (outside the receive window)")]
    OutOfOrder,
    /// A message further ahead than the skipped-key window allows.
    #[error("message too far ahead")]
    TooFarAhead,
    /// A message from or to someone else than this handshake's or session's parties (includes reflection).
    #[error("message for another peer")]
    WrongPeer,
    /// A replaced session was asked to seal: it only opens late messages.
    #[error("this session was replaced and only opens late messages")]
    ReceiveOnly,
    /// A message that belongs to another handshake (request id) or session (session id).
    #[error("message for another handshake or session")]
    WrongSession,
    /// The peer's key differs from the pinned one.
    #[error("the peer's key changed (pinned {pinned}, presented {presented})")]
    KeyChanged {
        /// The pinned SPKI fingerprint.
        pinned: Fingerprint,
        /// The fingerprint just presented.
        presented: Fingerprint,
    },
    /// A request timestamp too far in the past or future.
    #[error("stale or future-dated message")]
    BadTimestamp,
    /// A protocol version we do not speak.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u32),
    /// Bytes that do not parse, or a field of the wrong size.
    #[error("malformed: {0}")]
    Malformed(String),
    /// OpenSSL failed on an operation not driven by peer input (e.g. key generation).
    #[error("crypto library failure: {0}")]
    Crypto(String),
}

impl From<openssl::error::ErrorStack> for Error {
    fn from(e: openssl::error::ErrorStack) -> Self {
        Self::Crypto(e.to_string())
    }
}

/// Result alias of the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn malformed(what: impl Into<String>) -> Error {
    Error::Malformed(what.into())
}

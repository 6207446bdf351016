//! magpie-core's one error type, split by cause. Messages are sentences a person can act on; none carries a secret.

/// Everything that can go wrong in the client engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No credential store answers at all (no Secret Service on the session bus, say).
    #[error("{0}")]
    CredentialStoreUnavailable(String),
    /// The store is there but locked, or refused us access.
    #[error("{0}")]
    CredentialStoreLocked(String),
    /// The store answered with an error of its own, or refused the value (too long, bad encoding).
    #[error("The credential store failed: {0}")]
    CredentialStore(String),
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

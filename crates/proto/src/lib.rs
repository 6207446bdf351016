//! Magpie's protocol: X.509/RSA-3072 identities issued by the relay's CA, a seven-step handshake with
//! forward secrecy (RSA-OAEP-wrapped secret combined with ephemeral X25519, RSA-PSS signatures over a
//! transcript), hash-ratcheted AES-256-GCM messages, and safety numbers. All cryptography is OpenSSL.
//!
//! The crate performs no I/O and never reads the clock: time is always a parameter.
//! See `docs/PROTOCOL.md` for the byte-level specification and test vectors.
#![warn(missing_docs)]

pub mod backup;
mod ca;
mod chain;
mod crypto;
pub mod encoding;
mod error;
pub mod file;
mod handshake;
mod identity;
pub mod keys;
pub mod login;
mod plaintext;
mod safety;
mod secret;
mod session;
mod symmetric;
mod verify;
mod wire;

pub use ca::{CertificateAuthority, BACKDATE_SECS, ROOT_CERT_DAYS, USER_CERT_DAYS};
pub use error::{CertProblem, Error, Result};
pub use handshake::{
    AwaitingAccept, AwaitingConfirm, AwaitingKeyTransfer, Declined, HandshakeReport, IncomingRequest, Initiator,
    KeyTransferInputs, Responder, MAX_CLOCK_SKEW_SECS, REQUEST_MAX_AGE_SECS,
};
pub use identity::{Csr, Identity, Username, RSA_BITS};
pub use plaintext::{
    padded_len, MessageKind, Plaintext, MAX_BODY_LEN, MAX_PADDED_LEN, MIN_PADDED_LEN, PLAINTEXT_FORMAT,
};
pub use safety::{SafetyNumber, QR_PREFIX, SAFETY_ITERATIONS, SAFETY_VERSION};
pub use secret::{ChainKey, ConfirmKey, FileKey, MessageKey, RootKey, SecretBytes, SessionSecret, SharedSecret};
pub use session::{
    Role, Session, MAX_SKIP, MAX_STATE_LEN, REKEY_AFTER_MESSAGES, REKEY_AFTER_SECS, SESSION_MAX_MESSAGES,
    SESSION_MAX_SECS,
};
pub use verify::{Certificate, Credential, Fingerprint, PinCheck, TrustAnchor, VerifiedPeer, MAX_CHAIN_LEN};
pub use wire::{
    ChatAccept, ChatDecline, ChatRequest, Envelope, EnvelopeKind, KeyConfirm, KeyTransfer, SealedMessage, MAX_WIRE_LEN,
    PROTOCOL_VERSION,
};

//! The handshake as consuming typestates. Initiator: [`Initiator::request`] → [`AwaitingAccept`] →
//! [`AwaitingConfirm`] → [`Session`]. Responder: [`Responder::on_request`] → [`IncomingRequest`] →
//! [`AwaitingKeyTransfer`] → [`Session`] (or a [`ChatDecline`]). Each step takes `self`, so no step runs
//! twice or out of order, and a failed step leaves nothing behind.

use std::fmt;
use std::time::SystemTime;

use openssl::pkey::{PKey, Private};
use openssl::sha::Sha256;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::crypto::{ct_eq, oaep_unwrap, oaep_wrap, random_array, sign_pss, verify_pss, x25519, x25519_from_private};
use crate::crypto::{x25519_generate, x25519_public_bytes};
use crate::encoding::{b64_bytes, b64_opt, Canon};
use crate::error::{malformed, Error, Result};
use crate::identity::Username;
use crate::keys::{confirm_mac, derive_session_keys};
use crate::secret::SessionSecret;
use crate::session::{Role, Session};
use crate::verify::MAX_CHAIN_LEN;
use crate::verify::{unix_secs, Certificate, Credential, Fingerprint, PinCheck, TrustAnchor, VerifiedPeer};
use crate::wire::{random_uuid, ChatAccept, ChatDecline, ChatRequest, KeyConfirm, KeyTransfer, PROTOCOL_VERSION};

/// A ChatRequest older than this is refused (it may wait in the relay's mailbox while B is offline).
pub const REQUEST_MAX_AGE_SECS: u64 = 7 * 24 * 3600;
/// A ChatRequest dated further than this into the future is refused.
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;
/// Upper bound on a wrapped key (RSA-3072 gives 384 bytes; larger moduli are allowed up to 8192 bits).
pub(crate) const MAX_WRAPPED_LEN: usize = 1024;

pub(crate) const SIG_ACCEPT: &str = "magpie v1 signature ChatAccept";
pub(crate) const SIG_DECLINE: &str = "magpie v1 signature ChatDecline";
pub(crate) const SIG_KEY_TRANSFER: &str = "magpie v1 signature KeyTransfer";

/// The public data of a handshake so far, for a UI to show step by step. Holds no secret. Serializes as JSON
/// (fingerprints in hex, other bytes in base64); every exported handshake state embeds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandshakeReport {
    /// The handshake's request id.
    pub request_id: Uuid,
    /// A, who asked.
    pub initiator: Username,
    /// B, who was asked.
    pub responder: Username,
    /// SHA-256 of A's SPKI.
    pub initiator_fingerprint: Option<Fingerprint>,
    /// SHA-256 of B's SPKI.
    pub responder_fingerprint: Option<Fingerprint>,
    /// A's signature on the ChatRequest.
    #[serde(with = "b64_bytes")]
    pub request_signature: Vec<u8>,
    /// `eB`.
    #[serde(with = "b64_opt")]
    pub responder_ephemeral: Option<[u8; 32]>,
    /// B's signature on the accept transcript.
    #[serde(with = "b64_opt")]
    pub accept_signature: Option<Vec<u8>>,
    /// `K` wrapped for B (RSA-OAEP).
    #[serde(with = "b64_opt")]
    pub wrapped_key: Option<Vec<u8>>,
    /// `eA`.
    #[serde(with = "b64_opt")]
    pub initiator_ephemeral: Option<[u8; 32]>,
    /// A's signature on the KeyTransfer transcript.
    #[serde(with = "b64_opt")]
    pub key_transfer_signature: Option<Vec<u8>>,
    /// The final transcript hash `T`.
    #[serde(with = "b64_opt")]
    pub transcript_hash: Option<[u8; 32]>,
    /// The KeyConfirm MAC.
    #[serde(with = "b64_opt")]
    pub confirm_mac: Option<[u8; 32]>,
    /// The session id both sides derived.
    #[serde(with = "b64_opt")]
    pub session_id: Option<[u8; 16]>,
}

impl HandshakeReport {
    pub(crate) fn new(request: &ChatRequest, initiator: Username, responder: Username) -> Self {
        Self {
            request_id: request.request_id,
            initiator,
            responder,
            initiator_fingerprint: None,
            responder_fingerprint: None,
            request_signature: request.signature.clone(),
            responder_ephemeral: None,
            accept_signature: None,
            wrapped_key: None,
            initiator_ephemeral: None,
            key_transfer_signature: None,
            transcript_hash: None,
            confirm_mac: None,
            session_id: None,
        }
    }
}

/// The running transcript: SHA-256 over length-prefixed items, starting with both SPKI fingerprints and the
/// whole ChatRequest.
#[derive(Clone)]
pub(crate) struct Transcript(Sha256);

impl Transcript {
    pub(crate) fn new(initiator: &Fingerprint, responder: &Fingerprint, request: &ChatRequest) -> Self {
        let mut t = Self(Sha256::new());
        t.absorb(b"magpie v1 transcript");
        t.absorb(initiator.as_bytes());
        t.absorb(responder.as_bytes());
        t.absorb(&request.canonical_bytes());
        t
    }

    pub(crate) fn absorb(&mut self, item: &[u8]) {
        let len = u32::try_from(item.len()).unwrap_or(u32::MAX);
        self.0.update(&len.to_be_bytes());
        self.0.update(item);
    }

    pub(crate) fn hash(&self) -> [u8; 32] {
        self.0.clone().finish()
    }
}

/// What a signature over a transcript hash covers: a context label, then the hash.
pub(crate) fn sig_input(context: &str, transcript: &[u8; 32]) -> Vec<u8> {
    let mut c = Canon::new(context);
    c.bytes(transcript);
    c.finish()
}

pub(crate) fn check_version(v: u32) -> Result<()> {
    if v == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(Error::UnsupportedVersion(v))
    }
}

pub(crate) fn check_parties(from: &str, to: &str, want_from: &Username, want_to: &Username) -> Result<()> {
    if from == want_from.as_str() && to == want_to.as_str() {
        Ok(())
    } else {
        Err(Error::WrongPeer)
    }
}

pub(crate) fn parse_chain(ders: &[Vec<u8>]) -> Result<Vec<Certificate>> {
    check_chain_len(ders)?;
    ders.iter().map(|d| Certificate::from_der(d)).collect()
}

/// The first certificate of a chain whose length [`parse_chain`] would take, the rest left unparsed.
pub(crate) fn parse_leaf(ders: &[Vec<u8>]) -> Result<Certificate> {
    check_chain_len(ders)?;
    let leaf = ders.first().ok_or_else(|| malformed("certificate chain length"))?;
    Certificate::from_der(leaf)
}

fn check_chain_len(ders: &[Vec<u8>]) -> Result<()> {
    match ders.is_empty() || ders.len() > MAX_CHAIN_LEN {
        true => Err(malformed("certificate chain length")),
        false => Ok(()),
    }
}

pub(crate) fn ephemeral_array(bytes: &[u8]) -> Result<[u8; 32]> {
    bytes
        .try_into()
        .map_err(|_| malformed("ephemeral key must be 32 bytes"))
}

/// Verifies the peer's chain for `expected` at `now` and applies the caller's pin.
pub(crate) fn verify_peer(
    trust: &TrustAnchor,
    chain: &[Certificate],
    expected: &Username,
    pinned: Option<&Fingerprint>,
    now: SystemTime,
) -> Result<(VerifiedPeer, PinCheck)> {
    let peer = trust.verify(chain, expected, now)?;
    let pin = PinCheck::check(pinned, &peer.fingerprint()).into_result()?;
    Ok((peer, pin))
}

/// An X25519 private half; OpenSSL clears it when the key is freed.
pub(crate) struct EphemeralSecret(pub(crate) PKey<Private>);

impl fmt::Debug for EphemeralSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EphemeralSecret(<redacted>)")
    }
}

mod initiator;
mod persist;
mod responder;

pub use initiator::{AwaitingAccept, AwaitingConfirm, Declined, Initiator, KeyTransferInputs};
pub use responder::{AwaitingKeyTransfer, IncomingRequest, Responder};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SharedSecret;

    #[test]
    fn debug_redacts_ephemeral_secret() {
        let key = EphemeralSecret(x25519_from_private(&[0xAB; 32]).unwrap());
        let raw = crate::encoding::hex(&key.0.raw_private_key().unwrap());
        let shown = format!("{key:?}");
        assert_eq!(shown, "EphemeralSecret(<redacted>)");
        assert!(!shown.contains(&raw[..8]));
    }

    #[test]
    fn debug_redacts_session_keys() {
        let keys = derive_session_keys(
            &SessionSecret::from_bytes([1; 32]),
            &SharedSecret::from_bytes([2; 32]),
            &[3; 32],
        )
        .unwrap();
        let shown = format!("{keys:?}");
        let chain = crate::encoding::hex(keys.initiator_chain.expose_secret());
        assert!(!shown.contains(&chain[..8]), "{shown}");
        assert!(shown.contains("RootKey(<redacted>)"), "{shown}");
    }
}

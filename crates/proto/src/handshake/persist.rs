//! What the four handshake states share when they are exported and imported: the JSON envelope, the size cap,
//! and the checks that tie a state to its owner's credential, its request and its report.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::*;
use crate::secret::SecretBytes;
use crate::session::MAX_STATE_LEN;

pub(super) const AWAITING_ACCEPT: &str = "awaiting_accept";
pub(super) const INCOMING_REQUEST: &str = "incoming_request";
pub(super) const AWAITING_KEY_TRANSFER: &str = "awaiting_key_transfer";
pub(super) const AWAITING_CONFIRM: &str = "awaiting_confirm";

/// Counts bytes so the real output buffer can be allocated once at its final size.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Serializes a state holding secrets. A first pass measures it, so the buffer never reallocates (which would
/// leave an unwiped copy of the secrets on the heap).
pub(super) fn to_secret_json<T: Serialize>(state: &T) -> Result<SecretBytes> {
    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, state).map_err(|e| malformed(e.to_string()))?;
    let mut out = Vec::with_capacity(counter.0);
    serde_json::to_writer(&mut out, state).map_err(|e| malformed(e.to_string()))?;
    Ok(SecretBytes::new(out))
}

/// Enough of a state to refuse another version or another state kind before its layout is parsed.
#[derive(Deserialize)]
struct Header {
    v: u32,
    state: String,
}

/// Parses a state of kind `kind`, checking the cap, the version and the kind first. Parse errors carry only
/// a position: the bytes may hold secrets.
pub(super) fn parse_state<T: DeserializeOwned>(bytes: &[u8], kind: &str) -> Result<T> {
    if bytes.len() > MAX_STATE_LEN {
        return Err(malformed("handshake state too large"));
    }
    let position =
        |e: serde_json::Error| malformed(format!("handshake state (line {}, column {})", e.line(), e.column()));
    let header: Header = serde_json::from_slice(bytes).map_err(position)?;
    check_version(header.v)?;
    if header.state != kind {
        return Err(malformed(format!("handshake state is not {kind}")));
    }
    serde_json::from_slice(bytes).map_err(position)
}

/// The state belongs to `cred`: same name, same key, and the report names the same two parties in `role`.
pub(super) fn check_owner(
    cred: &Credential,
    me: &Username,
    peer: &Username,
    report: &HandshakeReport,
    role: Role,
) -> Result<()> {
    if me != cred.username() {
        return Err(malformed("handshake state belongs to another user"));
    }
    if me == peer {
        return Err(malformed("handshake with oneself"));
    }
    let (mine, theirs, my_fingerprint) = match role {
        Role::Initiator => (&report.initiator, &report.responder, report.initiator_fingerprint),
        Role::Responder => (&report.responder, &report.initiator, report.responder_fingerprint),
    };
    if mine != me || theirs != peer {
        return Err(malformed("handshake report names other parties"));
    }
    // A state made with another key cannot finish: its transcript and wrapped key are bound to the old one.
    if my_fingerprint != Some(cred.fingerprint()) {
        return Err(malformed("handshake state was made with another key"));
    }
    Ok(())
}

/// The report's fingerprint of the peer is the one stored with the peer's certificate.
pub(super) fn check_peer_fingerprint(
    report: &HandshakeReport,
    role: Role,
    peer_fingerprint: &Fingerprint,
) -> Result<()> {
    let theirs = match role {
        Role::Initiator => report.responder_fingerprint,
        Role::Responder => report.initiator_fingerprint,
    };
    if theirs != Some(*peer_fingerprint) {
        return Err(malformed("peer fingerprint does not match the report"));
    }
    Ok(())
}

/// The stored ChatRequest is the one the report describes; returns its leaf certificate (A's), whose SPKI
/// must be the report's initiator fingerprint.
pub(super) fn check_request(request: &ChatRequest, report: &HandshakeReport) -> Result<Certificate> {
    check_version(request.v)?;
    if request.request_id != report.request_id
        || request.signature != report.request_signature
        || request.from != report.initiator.as_str()
        || request.to != report.responder.as_str()
    {
        return Err(malformed("stored request does not match the report"));
    }
    // The chain was verified when the request came; the stored state is sealed. Only the leaf is needed.
    let leaf = parse_leaf(&request.cert_chain).map_err(|_| malformed("stored request certificate chain"))?;
    if report.initiator_fingerprint != Some(leaf.spki_fingerprint()?) {
        return Err(malformed(
            "initiator fingerprint does not match the request's certificate",
        ));
    }
    Ok(leaf)
}

/// How [`PinCheck`] is stored; `Changed` never reaches a state.
#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum StoredPin {
    New,
    Same,
}

impl StoredPin {
    pub(super) fn from_check(pin: PinCheck) -> Result<Self> {
        match pin {
            PinCheck::New => Ok(Self::New),
            PinCheck::Same => Ok(Self::Same),
            PinCheck::Changed { .. } => Err(malformed("a changed key is never a pending request")),
        }
    }

    pub(super) fn to_check(self) -> PinCheck {
        match self {
            Self::New => PinCheck::New,
            Self::Same => PinCheck::Same,
        }
    }
}

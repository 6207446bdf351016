//! The initiator's states: request, key transfer, confirmation.

use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::persist::{check_owner, check_peer_fingerprint, check_request, parse_state, to_secret_json};
use super::persist::{AWAITING_ACCEPT, AWAITING_CONFIRM};
use super::*;
use crate::keys::session_keys_from_root;
use crate::secret::{KeyIn, RootKey, SecretB64, SecretBytes};

/// The initiator's entry point.
#[derive(Debug, Clone, Copy)]
pub struct Initiator;

impl Initiator {
    /// Step 1: a signed ChatRequest to `peer`, and the state that waits for the answer.
    pub fn request(me: &Credential, peer: &Username, now: SystemTime) -> Result<(AwaitingAccept, ChatRequest)> {
        if peer == me.username() {
            return Err(Error::WrongPeer);
        }
        let mut request = ChatRequest {
            v: PROTOCOL_VERSION,
            request_id: random_uuid()?,
            from: me.username().as_str().to_owned(),
            to: peer.as_str().to_owned(),
            sent_at: unix_secs(now),
            cert_chain: vec![me.certificate().to_der()?],
            signature: Vec::new(),
        };
        request.signature = sign_pss(me.identity().private_key(), &request.signed_bytes())?;
        let mut report = HandshakeReport::new(&request, me.username().clone(), peer.clone());
        report.initiator_fingerprint = Some(me.fingerprint());
        let state = AwaitingAccept {
            me: me.clone(),
            peer: peer.clone(),
            request: request.clone(),
            report,
        };
        Ok((state, request))
    }
}

/// A waits for B's ChatAccept or ChatDecline.
#[derive(Debug)]
pub struct AwaitingAccept {
    me: Credential,
    peer: Username,
    request: ChatRequest,
    report: HandshakeReport,
}

/// Deterministic inputs of the KeyTransfer step, for tests and vectors only.
#[doc(hidden)]
pub struct KeyTransferInputs {
    /// The session secret `K`.
    pub secret: SessionSecret,
    /// `eA`'s private half.
    pub ephemeral_private: Zeroizing<[u8; 32]>,
    /// Wrap `K` for this certificate's key instead of the peer's (to test a misdirected wrap).
    pub wrap_for: Option<Certificate>,
}

impl fmt::Debug for KeyTransferInputs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyTransferInputs(<redacted>)")
    }
}

impl AwaitingAccept {
    /// The handshake's request id.
    pub fn request_id(&self) -> Uuid {
        self.request.request_id
    }

    /// The peer asked.
    pub fn peer(&self) -> &Username {
        &self.peer
    }

    /// When the request was made, Unix seconds.
    pub fn sent_at(&self) -> u64 {
        self.request.sent_at
    }

    /// Public data so far.
    pub fn report(&self) -> &HandshakeReport {
        &self.report
    }

    /// Serializes the state (the request, the report) for the client to store until B answers. Our
    /// [`Credential`] is not included: [`AwaitingAccept::import`] takes it from the credential store.
    pub fn export(&self) -> Result<SecretBytes> {
        to_secret_json(&AcceptStateRef {
            v: PROTOCOL_VERSION,
            state: AWAITING_ACCEPT,
            me: self.me.username(),
            peer: &self.peer,
            request: &self.request,
            report: &self.report,
        })
    }

    /// Restores a state made by [`AwaitingAccept::export`] for `me`, checking it belongs to `me` (name and
    /// key) and that the request and the report agree.
    pub fn import(me: Credential, bytes: &[u8]) -> Result<Self> {
        let s: AcceptStateOwned = parse_state(bytes, AWAITING_ACCEPT)?;
        check_owner(&me, &s.me, &s.peer, &s.report, Role::Initiator)?;
        check_request(&s.request, &s.report)?;
        Ok(Self {
            me,
            peer: s.peer,
            request: s.request,
            report: s.report,
        })
    }

    /// Steps 3–5: verifies B's chain (from the directory) for the expected name and the pin, verifies B's
    /// accept signature, wraps a fresh `K` for B, makes `eA`, signs the transcript and derives the session
    /// keys (deleting `eA` at once). Returns the KeyTransfer to send.
    pub fn on_accept(
        self,
        accept: &ChatAccept,
        peer_chain: &[Certificate],
        trust: &TrustAnchor,
        pinned: Option<&Fingerprint>,
        now: SystemTime,
    ) -> Result<(AwaitingConfirm, KeyTransfer)> {
        let inputs = KeyTransferInputs {
            secret: SessionSecret::from_bytes(random_array()?),
            ephemeral_private: Zeroizing::new([0u8; 32]),
            wrap_for: None,
        };
        self.accept_inner(accept, peer_chain, trust, pinned, now, inputs, true)
    }

    /// [`AwaitingAccept::on_accept`] with given randomness. Not for production use.
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    pub fn on_accept_with(
        self,
        accept: &ChatAccept,
        peer_chain: &[Certificate],
        trust: &TrustAnchor,
        pinned: Option<&Fingerprint>,
        now: SystemTime,
        inputs: KeyTransferInputs,
    ) -> Result<(AwaitingConfirm, KeyTransfer)> {
        self.accept_inner(accept, peer_chain, trust, pinned, now, inputs, false)
    }

    #[allow(clippy::too_many_arguments)]
    fn accept_inner(
        self,
        accept: &ChatAccept,
        peer_chain: &[Certificate],
        trust: &TrustAnchor,
        pinned: Option<&Fingerprint>,
        now: SystemTime,
        inputs: KeyTransferInputs,
        fresh_ephemeral: bool,
    ) -> Result<(AwaitingConfirm, KeyTransfer)> {
        check_version(accept.v)?;
        if accept.request_id != self.request.request_id {
            return Err(Error::WrongSession);
        }
        check_parties(&accept.from, &accept.to, &self.peer, self.me.username())?;
        let (peer, _pin) = verify_peer(trust, peer_chain, &self.peer, pinned, now)?;
        let eb = ephemeral_array(&accept.ephemeral)?;

        let mut transcript = Transcript::new(&self.me.fingerprint(), &peer.fingerprint(), &self.request);
        transcript.absorb(&accept.signed_bytes());
        verify_pss(
            peer.public_key(),
            &sig_input(SIG_ACCEPT, &transcript.hash()),
            &accept.signature,
        )?;
        transcript.absorb(&accept.signature);

        let wrapped_key = match &inputs.wrap_for {
            Some(cert) => {
                let key = cert.public_key()?;
                oaep_wrap(&key, &inputs.secret)?
            }
            None => oaep_wrap(peer.public_key(), &inputs.secret)?,
        };
        let ea = EphemeralSecret(if fresh_ephemeral {
            x25519_generate()?
        } else {
            x25519_from_private(inputs.ephemeral_private.as_ref())?
        });
        let dh = x25519(&ea.0, &eb)?;
        let ea_public = x25519_public_bytes(&ea.0)?;
        drop(ea);

        let mut transfer = KeyTransfer {
            v: PROTOCOL_VERSION,
            request_id: self.request.request_id,
            from: self.me.username().as_str().to_owned(),
            to: self.peer.as_str().to_owned(),
            wrapped_key,
            ephemeral: ea_public.to_vec(),
            signature: Vec::new(),
        };
        transcript.absorb(&transfer.signed_bytes());
        transfer.signature = sign_pss(
            self.me.identity().private_key(),
            &sig_input(SIG_KEY_TRANSFER, &transcript.hash()),
        )?;
        transcript.absorb(&transfer.signature);
        let t = transcript.hash();

        let keys = derive_session_keys(&inputs.secret, &dh, &t)?;
        let expected_mac = confirm_mac(&keys.confirm, &t)?;

        let mut report = self.report;
        report.responder_fingerprint = Some(peer.fingerprint());
        report.responder_ephemeral = Some(eb);
        report.accept_signature = Some(accept.signature.clone());
        report.wrapped_key = Some(transfer.wrapped_key.clone());
        report.initiator_ephemeral = Some(ea_public);
        report.key_transfer_signature = Some(transfer.signature.clone());
        report.transcript_hash = Some(t);
        report.session_id = Some(keys.session_id);

        let state = AwaitingConfirm {
            me: self.me,
            peer,
            request_id: self.request.request_id,
            keys,
            expected_mac,
            report,
        };
        Ok((state, transfer))
    }

    /// B declined: verifies the decline's signature with B's chain (from the directory) and closes the
    /// request.
    pub fn on_decline(
        self,
        decline: &ChatDecline,
        peer_chain: &[Certificate],
        trust: &TrustAnchor,
        pinned: Option<&Fingerprint>,
        now: SystemTime,
    ) -> Result<Declined> {
        check_version(decline.v)?;
        if decline.request_id != self.request.request_id {
            return Err(Error::WrongSession);
        }
        check_parties(&decline.from, &decline.to, &self.peer, self.me.username())?;
        let (peer, _pin) = verify_peer(trust, peer_chain, &self.peer, pinned, now)?;
        let mut transcript = Transcript::new(&self.me.fingerprint(), &peer.fingerprint(), &self.request);
        transcript.absorb(&decline.signed_bytes());
        verify_pss(
            peer.public_key(),
            &sig_input(SIG_DECLINE, &transcript.hash()),
            &decline.signature,
        )?;
        Ok(Declined {
            request_id: self.request.request_id,
            peer: self.peer,
        })
    }
}

/// A signed decline, verified: the request is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declined {
    /// The declined request.
    pub request_id: Uuid,
    /// Who declined.
    pub peer: Username,
}

/// A has sent the KeyTransfer and waits for B's KeyConfirm.
pub struct AwaitingConfirm {
    me: Credential,
    peer: VerifiedPeer,
    request_id: Uuid,
    keys: crate::keys::SessionKeys,
    expected_mac: [u8; 32],
    report: HandshakeReport,
}

impl fmt::Debug for AwaitingConfirm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwaitingConfirm")
            .field("me", self.me.username())
            .field("peer", self.peer.username())
            .field("request_id", &self.request_id)
            .field("keys", &self.keys)
            .finish()
    }
}

impl AwaitingConfirm {
    /// Public data so far (everything but the confirm MAC).
    pub fn report(&self) -> &HandshakeReport {
        &self.report
    }

    /// The verified peer (its fingerprint is what to pin on first use).
    pub fn peer(&self) -> &VerifiedPeer {
        &self.peer
    }

    /// Serializes the state for the client to store until B confirms. The bytes are secret (they hold the
    /// session root key): they are returned in wiped memory. Our [`Credential`] is not included.
    pub fn export(&self) -> Result<SecretBytes> {
        let peer_certificate = self.peer.certificate().to_der()?;
        to_secret_json(&ConfirmStateRef {
            v: PROTOCOL_VERSION,
            state: AWAITING_CONFIRM,
            me: self.me.username(),
            peer: self.peer.username(),
            peer_fingerprint: self.peer.fingerprint(),
            peer_certificate: crate::encoding::b64(&peer_certificate),
            request_id: self.request_id,
            root_key: SecretB64(self.keys.root.expose_secret()),
            report: &self.report,
        })
    }

    /// Restores a state made by [`AwaitingConfirm::export`] for `me`. B's chain is not verified again (it was
    /// when the state was made), but the stored fingerprint must be its certificate's, and the keys derived
    /// from the stored root must give the report's session id.
    pub fn import(me: Credential, bytes: &[u8]) -> Result<Self> {
        let s: ConfirmStateOwned = parse_state(bytes, AWAITING_CONFIRM)?;
        check_owner(&me, &s.me, &s.peer, &s.report, Role::Initiator)?;
        check_peer_fingerprint(&s.report, Role::Initiator, &s.peer_fingerprint)?;
        if s.request_id != s.report.request_id {
            return Err(malformed("request id does not match the report"));
        }
        let der = crate::encoding::b64_decode(&s.peer_certificate).ok_or_else(|| malformed("peer certificate"))?;
        let certificate = Certificate::from_der(&der).map_err(|_| malformed("peer certificate"))?;
        let peer = VerifiedPeer::restore(s.peer, certificate, &s.peer_fingerprint)?;
        let t = s
            .report
            .transcript_hash
            .ok_or_else(|| malformed("handshake report lacks the transcript hash"))?;
        let keys = session_keys_from_root(s.root_key.0)?;
        if s.report.session_id != Some(keys.session_id) {
            return Err(malformed("root key does not match the report's session id"));
        }
        // The expected MAC is derived again rather than stored: one secret fewer in the state.
        let expected_mac = confirm_mac(&keys.confirm, &t)?;
        Ok(Self {
            me,
            peer,
            request_id: s.request_id,
            keys,
            expected_mac,
            report: s.report,
        })
    }

    /// Step 7: checks B's confirm MAC (constant time); the session starts at `now`.
    pub fn on_confirm(self, confirm: &KeyConfirm, now: SystemTime) -> Result<Session> {
        check_version(confirm.v)?;
        if confirm.request_id != self.request_id {
            return Err(Error::WrongSession);
        }
        check_parties(&confirm.from, &confirm.to, self.peer.username(), self.me.username())?;
        if !ct_eq(&confirm.mac, &self.expected_mac) {
            return Err(Error::BadConfirm);
        }
        let mut report = self.report;
        report.confirm_mac = Some(self.expected_mac);
        Ok(Session::new(
            &self.keys,
            Role::Initiator,
            self.me.username().clone(),
            self.peer.username().clone(),
            self.peer.fingerprint(),
            now,
            report,
        ))
    }
}

#[derive(Serialize)]
struct AcceptStateRef<'a> {
    v: u32,
    state: &'static str,
    me: &'a Username,
    peer: &'a Username,
    request: &'a ChatRequest,
    report: &'a HandshakeReport,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptStateOwned {
    #[serde(rename = "v")]
    _v: u32,
    #[serde(rename = "state")]
    _state: String,
    me: Username,
    peer: Username,
    request: ChatRequest,
    report: HandshakeReport,
}

#[derive(Serialize)]
struct ConfirmStateRef<'a> {
    v: u32,
    state: &'static str,
    me: &'a Username,
    peer: &'a Username,
    peer_fingerprint: Fingerprint,
    peer_certificate: String,
    request_id: Uuid,
    root_key: SecretB64<'a>,
    report: &'a HandshakeReport,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfirmStateOwned {
    #[serde(rename = "v")]
    _v: u32,
    #[serde(rename = "state")]
    _state: String,
    me: Username,
    peer: Username,
    peer_fingerprint: Fingerprint,
    peer_certificate: String,
    request_id: Uuid,
    root_key: KeyIn<RootKey>,
    report: HandshakeReport,
}

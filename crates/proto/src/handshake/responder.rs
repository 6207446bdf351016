//! The responder's states: verify the request, accept or decline, answer the key transfer.

use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::persist::{check_owner, check_peer_fingerprint, check_request, parse_state, to_secret_json, StoredPin};
use super::persist::{AWAITING_KEY_TRANSFER, INCOMING_REQUEST};
use super::*;
use crate::secret::{KeyIn, SecretB64, SecretBytes};

/// The responder's entry point.
#[derive(Debug, Clone, Copy)]
pub struct Responder;

impl Responder {
    /// Step 1 on B: checks the request is for `me`, fresh, from a certificate that chains to the root with
    /// the claimed name (and the pin, if any), and signed by it. Only then may the UI show it.
    pub fn on_request(
        me: &Credential,
        trust: &TrustAnchor,
        request: &ChatRequest,
        pinned: Option<&Fingerprint>,
        now: SystemTime,
    ) -> Result<IncomingRequest> {
        check_version(request.v)?;
        if request.to != me.username().as_str() {
            return Err(Error::WrongPeer);
        }
        let from = Username::canonical(&request.from)?;
        if &from == me.username() {
            return Err(Error::WrongPeer);
        }
        let now_secs = unix_secs(now);
        if request.sent_at > now_secs.saturating_add(MAX_CLOCK_SKEW_SECS)
            || now_secs.saturating_sub(request.sent_at) > REQUEST_MAX_AGE_SECS
        {
            return Err(Error::BadTimestamp);
        }
        let chain = parse_chain(&request.cert_chain)?;
        let (peer, pin) = verify_peer(trust, &chain, &from, pinned, now)?;
        verify_pss(peer.public_key(), &request.signed_bytes(), &request.signature)?;

        let mut report = HandshakeReport::new(request, from, me.username().clone());
        report.initiator_fingerprint = Some(peer.fingerprint());
        report.responder_fingerprint = Some(me.fingerprint());
        Ok(IncomingRequest {
            me: me.clone(),
            peer,
            pin,
            request: request.clone(),
            report,
        })
    }
}

/// A verified ChatRequest waiting for the user to accept or decline.
#[derive(Debug)]
pub struct IncomingRequest {
    me: Credential,
    peer: VerifiedPeer,
    pin: PinCheck,
    request: ChatRequest,
    report: HandshakeReport,
}

impl IncomingRequest {
    /// Who asks (verified).
    pub fn from(&self) -> &Username {
        self.peer.username()
    }

    /// The asker's verified certificate and fingerprint.
    pub fn peer(&self) -> &VerifiedPeer {
        &self.peer
    }

    /// `New` (pin it on accept) or `Same`.
    pub fn pin_check(&self) -> PinCheck {
        self.pin
    }

    /// The request id.
    pub fn request_id(&self) -> Uuid {
        self.request.request_id
    }

    /// When A says it sent the request, Unix seconds.
    pub fn sent_at(&self) -> u64 {
        self.request.sent_at
    }

    /// Public data so far.
    pub fn report(&self) -> &HandshakeReport {
        &self.report
    }

    /// Serializes the verified request for the client to store until the user decides. Our [`Credential`] is
    /// not included: [`IncomingRequest::import`] takes it from the credential store.
    pub fn export(&self) -> Result<SecretBytes> {
        to_secret_json(&IncomingStateRef {
            v: PROTOCOL_VERSION,
            state: INCOMING_REQUEST,
            me: self.me.username(),
            peer: self.peer.username(),
            peer_fingerprint: self.peer.fingerprint(),
            pin: StoredPin::from_check(self.pin)?,
            request: &self.request,
            report: &self.report,
        })
    }

    /// Restores a state made by [`IncomingRequest::export`] for `me`. A's chain is not verified again (it was
    /// in [`Responder::on_request`]), but the stored fingerprint must be that of the request's certificate.
    pub fn import(me: Credential, bytes: &[u8]) -> Result<Self> {
        let s: IncomingStateOwned = parse_state(bytes, INCOMING_REQUEST)?;
        let peer = restore_responder_peer(&me, &s.me, s.peer, &s.peer_fingerprint, &s.request, &s.report)?;
        Ok(Self {
            me,
            peer,
            pin: s.pin.to_check(),
            request: s.request,
            report: s.report,
        })
    }

    /// Step 2: a fresh `eB`, signed over the transcript.
    pub fn accept(self) -> Result<(AwaitingKeyTransfer, ChatAccept)> {
        let eb = EphemeralSecret(x25519_generate()?);
        self.accept_with_ephemeral(eb)
    }

    /// [`IncomingRequest::accept`] with a given `eB` private half. Not for production use.
    #[doc(hidden)]
    pub fn accept_with(self, ephemeral_private: &[u8; 32]) -> Result<(AwaitingKeyTransfer, ChatAccept)> {
        let eb = EphemeralSecret(x25519_from_private(ephemeral_private)?);
        self.accept_with_ephemeral(eb)
    }

    fn accept_with_ephemeral(self, eb: EphemeralSecret) -> Result<(AwaitingKeyTransfer, ChatAccept)> {
        let eb_public = x25519_public_bytes(&eb.0)?;
        let mut accept = ChatAccept {
            v: PROTOCOL_VERSION,
            request_id: self.request.request_id,
            from: self.me.username().as_str().to_owned(),
            to: self.peer.username().as_str().to_owned(),
            ephemeral: eb_public.to_vec(),
            signature: Vec::new(),
        };
        let mut transcript = Transcript::new(&self.peer.fingerprint(), &self.me.fingerprint(), &self.request);
        transcript.absorb(&accept.signed_bytes());
        accept.signature = sign_pss(
            self.me.identity().private_key(),
            &sig_input(SIG_ACCEPT, &transcript.hash()),
        )?;
        transcript.absorb(&accept.signature);

        let mut report = self.report;
        report.responder_ephemeral = Some(eb_public);
        report.accept_signature = Some(accept.signature.clone());
        let state = AwaitingKeyTransfer {
            me: self.me,
            peer: self.peer,
            request: self.request,
            eb,
            transcript,
            report,
        };
        Ok((state, accept))
    }

    /// Step 2 (alternative): a signed decline; the request is closed.
    pub fn decline(self) -> Result<ChatDecline> {
        let mut decline = ChatDecline {
            v: PROTOCOL_VERSION,
            request_id: self.request.request_id,
            from: self.me.username().as_str().to_owned(),
            to: self.peer.username().as_str().to_owned(),
            signature: Vec::new(),
        };
        let mut transcript = Transcript::new(&self.peer.fingerprint(), &self.me.fingerprint(), &self.request);
        transcript.absorb(&decline.signed_bytes());
        decline.signature = sign_pss(
            self.me.identity().private_key(),
            &sig_input(SIG_DECLINE, &transcript.hash()),
        )?;
        Ok(decline)
    }
}

/// B has sent ChatAccept and waits for A's KeyTransfer.
pub struct AwaitingKeyTransfer {
    me: Credential,
    peer: VerifiedPeer,
    // Kept (not only its id) so an exported state can rebuild the transcript: a running SHA-256 cannot be saved.
    request: ChatRequest,
    eb: EphemeralSecret,
    transcript: Transcript,
    report: HandshakeReport,
}

impl fmt::Debug for AwaitingKeyTransfer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwaitingKeyTransfer")
            .field("me", self.me.username())
            .field("peer", self.peer.username())
            .field("request_id", &self.request.request_id)
            .field("eb", &self.eb)
            .finish()
    }
}

impl AwaitingKeyTransfer {
    /// Public data so far.
    pub fn report(&self) -> &HandshakeReport {
        &self.report
    }

    /// A, verified when the request arrived.
    pub fn peer(&self) -> &VerifiedPeer {
        &self.peer
    }

    /// Serializes the state for the client to store until A's KeyTransfer arrives. The bytes are secret
    /// (they hold `eB`'s private half): they are returned in wiped memory. Our [`Credential`] is not included.
    pub fn export(&self) -> Result<SecretBytes> {
        let raw = Zeroizing::new(self.eb.0.raw_private_key()?);
        let eb: &[u8; 32] = raw
            .as_slice()
            .try_into()
            .map_err(|_| Error::Crypto("X25519 private key length".into()))?;
        to_secret_json(&KeyTransferStateRef {
            v: PROTOCOL_VERSION,
            state: AWAITING_KEY_TRANSFER,
            me: self.me.username(),
            peer: self.peer.username(),
            peer_fingerprint: self.peer.fingerprint(),
            request: &self.request,
            ephemeral_private: SecretB64(eb),
            report: &self.report,
        })
    }

    /// Restores a state made by [`AwaitingKeyTransfer::export`] for `me`. The transcript is rebuilt from the
    /// request and our ChatAccept as the report records it; `eB` must be the report's.
    pub fn import(me: Credential, bytes: &[u8]) -> Result<Self> {
        let s: KeyTransferStateOwned = parse_state(bytes, AWAITING_KEY_TRANSFER)?;
        let peer = restore_responder_peer(&me, &s.me, s.peer, &s.peer_fingerprint, &s.request, &s.report)?;
        let eb = EphemeralSecret(x25519_from_private(s.ephemeral_private.0.as_ref())?);
        let (Some(eb_public), Some(signature)) = (s.report.responder_ephemeral, s.report.accept_signature.clone())
        else {
            return Err(malformed("handshake report lacks the accept"));
        };
        if x25519_public_bytes(&eb.0)? != eb_public {
            return Err(malformed("ephemeral key does not match the report"));
        }
        // The ChatAccept we sent, rebuilt exactly as accept_with_ephemeral made it.
        let accept = ChatAccept {
            v: PROTOCOL_VERSION,
            request_id: s.request.request_id,
            from: me.username().as_str().to_owned(),
            to: peer.username().as_str().to_owned(),
            ephemeral: eb_public.to_vec(),
            signature,
        };
        let mut transcript = Transcript::new(&peer.fingerprint(), &me.fingerprint(), &s.request);
        transcript.absorb(&accept.signed_bytes());
        transcript.absorb(&accept.signature);
        Ok(Self {
            me,
            peer,
            request: s.request,
            eb,
            transcript,
            report: s.report,
        })
    }

    /// Step 6: verifies A's signature over the transcript, unwraps `K`, computes `dh`, derives the keys,
    /// deletes `eB`, and returns the session and the KeyConfirm to send.
    pub fn on_key_transfer(self, transfer: &KeyTransfer, now: SystemTime) -> Result<(Session, KeyConfirm)> {
        check_version(transfer.v)?;
        if transfer.request_id != self.request.request_id {
            return Err(Error::WrongSession);
        }
        check_parties(&transfer.from, &transfer.to, self.peer.username(), self.me.username())?;
        let ea = ephemeral_array(&transfer.ephemeral)?;
        if transfer.wrapped_key.len() > MAX_WRAPPED_LEN {
            return Err(malformed("wrapped key too large"));
        }
        let mut transcript = self.transcript;
        transcript.absorb(&transfer.signed_bytes());
        verify_pss(
            self.peer.public_key(),
            &sig_input(SIG_KEY_TRANSFER, &transcript.hash()),
            &transfer.signature,
        )?;
        transcript.absorb(&transfer.signature);
        let t = transcript.hash();

        let k = oaep_unwrap(self.me.identity().private_key(), &transfer.wrapped_key)?;
        let dh = x25519(&self.eb.0, &ea)?;
        drop(self.eb);
        let keys = derive_session_keys(&k, &dh, &t)?;
        let mac = confirm_mac(&keys.confirm, &t)?;

        let mut report = self.report;
        report.wrapped_key = Some(transfer.wrapped_key.clone());
        report.initiator_ephemeral = Some(ea);
        report.key_transfer_signature = Some(transfer.signature.clone());
        report.transcript_hash = Some(t);
        report.confirm_mac = Some(mac);
        report.session_id = Some(keys.session_id);

        let confirm = KeyConfirm {
            v: PROTOCOL_VERSION,
            request_id: self.request.request_id,
            from: self.me.username().as_str().to_owned(),
            to: self.peer.username().as_str().to_owned(),
            mac: mac.to_vec(),
        };
        let session = Session::new(
            &keys,
            Role::Responder,
            self.me.username().clone(),
            self.peer.username().clone(),
            self.peer.fingerprint(),
            now,
            report,
        );
        Ok((session, confirm))
    }
}

/// The checks both responder states share on import; returns A as verified when the state was made.
fn restore_responder_peer(
    cred: &Credential,
    me: &Username,
    peer: Username,
    peer_fingerprint: &Fingerprint,
    request: &ChatRequest,
    report: &HandshakeReport,
) -> Result<VerifiedPeer> {
    check_owner(cred, me, &peer, report, Role::Responder)?;
    check_peer_fingerprint(report, Role::Responder, peer_fingerprint)?;
    let leaf = check_request(request, report)?;
    VerifiedPeer::restore(peer, leaf, peer_fingerprint)
}

#[derive(Serialize)]
struct IncomingStateRef<'a> {
    v: u32,
    state: &'static str,
    me: &'a Username,
    peer: &'a Username,
    peer_fingerprint: Fingerprint,
    pin: StoredPin,
    request: &'a ChatRequest,
    report: &'a HandshakeReport,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IncomingStateOwned {
    #[serde(rename = "v")]
    _v: u32,
    #[serde(rename = "state")]
    _state: String,
    me: Username,
    peer: Username,
    peer_fingerprint: Fingerprint,
    pin: StoredPin,
    request: ChatRequest,
    report: HandshakeReport,
}

#[derive(Serialize)]
struct KeyTransferStateRef<'a> {
    v: u32,
    state: &'static str,
    me: &'a Username,
    peer: &'a Username,
    peer_fingerprint: Fingerprint,
    request: &'a ChatRequest,
    ephemeral_private: SecretB64<'a>,
    report: &'a HandshakeReport,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyTransferStateOwned {
    #[serde(rename = "v")]
    _v: u32,
    #[serde(rename = "state")]
    _state: String,
    me: Username,
    peer: Username,
    peer_fingerprint: Fingerprint,
    request: ChatRequest,
    ephemeral_private: KeyIn<Zeroizing<[u8; 32]>>,
    report: HandshakeReport,
}

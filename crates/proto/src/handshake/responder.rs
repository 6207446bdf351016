//! The responder's states: verify the request, accept or decline, answer the key transfer.

use std::fmt;
use std::time::SystemTime;

use uuid::Uuid;

use super::*;

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
            request_id: self.request.request_id,
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
    request_id: Uuid,
    eb: EphemeralSecret,
    transcript: Transcript,
    report: HandshakeReport,
}

impl fmt::Debug for AwaitingKeyTransfer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwaitingKeyTransfer")
            .field("me", self.me.username())
            .field("peer", self.peer.username())
            .field("request_id", &self.request_id)
            .field("eb", &self.eb)
            .finish()
    }
}

impl AwaitingKeyTransfer {
    /// Public data so far.
    pub fn report(&self) -> &HandshakeReport {
        &self.report
    }

    /// Step 6: verifies A's signature over the transcript, unwraps `K`, computes `dh`, derives the keys,
    /// deletes `eB`, and returns the session and the KeyConfirm to send.
    pub fn on_key_transfer(self, transfer: &KeyTransfer, now: SystemTime) -> Result<(Session, KeyConfirm)> {
        check_version(transfer.v)?;
        if transfer.request_id != self.request_id {
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
            request_id: self.request_id,
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

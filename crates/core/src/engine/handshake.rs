//! The handshake driver: the seven steps of the protocol across the relay, one state per step kept in history.

use crate::store::prelude::*;
use std::time::{Duration, Instant, SystemTime};

use magpie_proto::{
    AwaitingAccept, Certificate, ChatAccept, ChatDecline, ChatRequest, Envelope, EnvelopeKind, Fingerprint,
    HandshakeReport, Initiator, KeyConfirm, KeyTransfer, PinCheck, Responder, Session, Username,
};
use uuid::Uuid;

use super::events::{Discard, Event, HandshakeStep};
use super::handshake_state::HandshakeState;
use super::inbox::Disposition;
use super::{now_secs, Client};
use crate::error::{Error, Result};
use crate::history::{Contact, OutboxItem};

/// How long a chain the directory gave [`Client::check_key`] stands in for the lookup B's answer needs.
const RECENT_CHAIN: Duration = Duration::from_secs(30);

/// What A checks B's answer (accept or decline) with.
struct AnswerCheck {
    state: AwaitingAccept,
    peer: Username,
    chain: Vec<Certificate>,
    pinned: Option<Fingerprint>,
    /// `chain` is the one fetched before the request, not a new lookup: on a failed check, look up and check again.
    recent: bool,
}

impl<H: Home> Client<H> {
    /// Step 1 (A): asks `peer` for an encrypted chat. The peer must exist in the relay's directory.
    pub async fn request(&self, peer: &Username) -> Result<Uuid> {
        if peer == self.username() {
            return Err(Error::UnknownUser(format!("{peer} (yourself)")));
        }
        // The directory lookup and the request's RSA signature take about as long each: neither waits for the other.
        let credential = self.inner.credential.clone();
        let to = peer.clone();
        let sign = tokio::task::spawn_blocking(move || Initiator::request(&credential, &to, SystemTime::now()));
        let (checked, signed) = tokio::join!(self.check_key(peer), sign);
        checked?;
        let (state, request) = signed.map_err(|_| Error::Crypto("signing the request stopped"))??;
        let _step = self.inner.handshakes.lock().await;
        let envelope = self.envelope(peer, EnvelopeKind::ChatRequest, request.to_json()?);
        let pending = HandshakeState::AwaitingAccept(state);
        pending.save(self.store())?;
        self.queue(envelope)?;
        if let HandshakeState::AwaitingAccept(state) = &pending {
            self.step(HandshakeStep::RequestSent, peer, state.report());
        }
        Ok(request.request_id)
    }

    /// Handshakes we started that wait for the peer, as (peer, request id).
    pub fn outgoing_requests(&self) -> Result<Vec<(Username, Uuid)>> {
        Ok(HandshakeState::under_way(self.store(), &self.inner.credential)?
            .into_iter()
            .map(|p| (p.peer().clone(), p.request_id()))
            .collect())
    }

    /// Whether a handshake with `peer` is under way (one that could end with a session we do not have yet).
    pub(super) fn handshake_pending_with(&self, peer: &Username) -> Result<bool> {
        Ok(HandshakeState::under_way(self.store(), &self.inner.credential)?
            .iter()
            .any(|p| p.peer() == peer))
    }

    /// Step 2 (B): accepts the request `request_id`, whose key the user saw as `shown`. Refused with
    /// [`Error::FingerprintMismatch`] if that is not the request's key, and with [`Error::KeyChanged`] (raising the
    /// key change; the request stays) if the key is not the one pinned for its sender now.
    pub async fn accept(&self, request_id: Uuid, shown: &Fingerprint) -> Result<()> {
        let _step = self.inner.handshakes.lock().await;
        let request = self.incoming(request_id)?;
        let peer = request.from().clone();
        let presented = request.peer().fingerprint();
        super::trust::check_shown(&peer, shown, Some(presented))?;
        // Judged against the pin as it is now, not as it was when the request came.
        if let PinCheck::Changed { old, new } = self.pin_check(&peer, &presented)? {
            let certificate = request.peer().certificate().clone();
            self.flag_key_change(&peer, old, new, Some(&certificate))?;
            tracing::info!(%peer, %request_id, "accept refused: key changed");
            return Err(Error::KeyChanged(peer.to_string()));
        }
        let (state, accept) = request.accept()?;
        let envelope = self.envelope(&peer, EnvelopeKind::ChatAccept, accept.to_json()?);
        self.step(HandshakeStep::AcceptSent, &peer, state.report());
        HandshakeState::AwaitingKeyTransfer(state).save(self.store())?;
        self.queue(envelope)?;
        tracing::debug!(%peer, %request_id, "accepted");
        Ok(())
    }

    /// Declines the request `request_id` (signed, so the peer knows it was really us).
    pub async fn decline(&self, request_id: Uuid) -> Result<()> {
        let _step = self.inner.handshakes.lock().await;
        let request = self.incoming(request_id)?;
        let peer = request.from().clone();
        let decline = request.decline()?;
        HandshakeState::finish(self.store(), request_id)?;
        self.queue(self.envelope(&peer, EnvelopeKind::ChatDecline, decline.to_json()?))?;
        Ok(())
    }

    fn incoming(&self, request_id: Uuid) -> Result<magpie_proto::IncomingRequest> {
        match HandshakeState::load(self.store(), &self.inner.credential, request_id)? {
            Some(HandshakeState::Incoming(request))
                if now_secs().saturating_sub(request.sent_at()) <= super::requests::REQUEST_KEPT_SECS =>
            {
                Ok(request)
            }
            _ => Err(Error::RequestGone(request_id)),
        }
    }

    /// Step 1 on B: verify and keep the request; a re-key from a peer we already have a session with, with the
    /// same pinned key, is accepted at once. A request with another key than the pinned one is kept too, and
    /// raises the key change: the user sees both.
    pub(super) async fn on_chat_request(&self, envelope: &Envelope) -> Result<Disposition> {
        let request = ChatRequest::from_json(&envelope.body)?;
        let peer = Username::canonical(&request.from)?;
        let _step = self.inner.handshakes.lock().await;
        // A second copy (pushed, then fetched again by a catch-up) of a request under way or already answered.
        if HandshakeState::load(self.store(), &self.inner.credential, request.request_id)?.is_some()
            || HandshakeState::finished(self.store(), request.request_id)?
        {
            tracing::debug!(%peer, request_id = %request.request_id, "request seen already");
            return Ok(Disposition::Done);
        }
        // Chain, name, freshness and signature; the pin is judged here, so that a changed key is shown, not dropped.
        let incoming = Responder::on_request(
            &self.inner.credential,
            &self.inner.trust,
            &request,
            None,
            SystemTime::now(),
        )?;
        self.step(HandshakeStep::RequestVerified, &peer, incoming.report());
        let fingerprint = incoming.peer().fingerprint();
        let pin = self.pin_check(&peer, &fingerprint)?;
        let rekey = pin == PinCheck::Same && self.has_session(&peer)? && self.may_auto_accept(&peer)?;
        if rekey {
            match self.crossing_rekey(&peer)? {
                super::rekey::Crossing::Ours => {
                    tracing::debug!(%peer, request_id = %request.request_id, "crossing re-key: ours goes on");
                    HandshakeState::finish(self.store(), request.request_id)?;
                    return Ok(Disposition::Done);
                }
                super::rekey::Crossing::Theirs(ours) => {
                    tracing::debug!(%peer, %ours, "crossing re-key: theirs goes on");
                }
                super::rekey::Crossing::None => {}
            }
            let (state, accept) = incoming.accept()?;
            let reply = self.envelope(&peer, EnvelopeKind::ChatAccept, accept.to_json()?);
            self.step(HandshakeStep::AcceptSent, &peer, state.report());
            HandshakeState::AwaitingKeyTransfer(state).save(self.store())?;
            self.queue(reply)?;
            return Ok(Disposition::Done);
        }
        let request_id = incoming.request_id();
        let certificate = incoming.peer().certificate().clone();
        HandshakeState::Incoming(incoming).save(self.store())?;
        self.bound_requests()?;
        if let PinCheck::Changed { old, new } = pin {
            tracing::info!(%peer, %request_id, "request with a changed key kept");
            self.flag_key_change(&peer, old, new, Some(&certificate))?;
        }
        self.emit(Event::RequestReceived {
            peer: peer.to_string(),
            fingerprint: fingerprint.to_hex(),
            request_id,
            key_changed: matches!(pin, PinCheck::Changed { .. }),
        });
        Ok(Disposition::Done)
    }

    /// Loads A's waiting request and B's chain, to check B's answer against: the chain [`Client::check_key`]
    /// fetched just before the request if `recent_ok` and there is one, else a new directory lookup.
    /// `Err(disposition)` when there is nothing to check: an unknown request, the directory down (retry later),
    /// or B gone from it (the handshake fails).
    async fn answer_check(
        &self,
        envelope: &Envelope,
        request_id: Uuid,
        recent_ok: bool,
    ) -> Result<Result<AnswerCheck, Disposition>> {
        let Some(HandshakeState::AwaitingAccept(state)) =
            HandshakeState::load(self.store(), &self.inner.credential, request_id)?
        else {
            return self.step_without_handshake(envelope, request_id).map(Err);
        };
        let peer = state.peer().clone();
        let recent = if recent_ok { self.take_recent_chain(&peer) } else { None };
        let (chain, recent) = match recent {
            Some(chain) => (chain, true),
            None => match self.look_up(&peer).await {
                Ok(chain) => (chain, false),
                Err(e) if e.is_transient() => return Ok(Err(Disposition::Retry)),
                Err(e) => return self.fail_handshake(&peer, request_id, &e).map(Err),
            },
        };
        let pinned = self.store().contact(&peer)?.map(|c| c.fingerprint);
        Ok(Ok(AnswerCheck {
            state,
            peer,
            chain,
            pinned,
            recent,
        }))
    }

    pub(super) fn remember_chain(&self, peer: &Username, chain: &[Certificate]) {
        if let Ok(mut recent) = self.inner.recent_chains.lock() {
            recent.retain(|_, (at, _)| at.elapsed() < RECENT_CHAIN);
            recent.insert(peer.clone(), (Instant::now(), chain.to_vec()));
        }
    }

    /// The chain [`Client::check_key`] fetched for `peer` less than [`RECENT_CHAIN`] ago; used once.
    fn take_recent_chain(&self, peer: &Username) -> Option<Vec<Certificate>> {
        let (at, chain) = self.inner.recent_chains.lock().ok()?.remove(peer)?;
        (at.elapsed() < RECENT_CHAIN).then_some(chain)
    }

    /// Steps 3–5 on A: fetch B's certificate, verify it and the accept, send the KeyTransfer.
    pub(super) async fn on_chat_accept(&self, envelope: &Envelope) -> Result<Disposition> {
        let accept = ChatAccept::from_json(&envelope.body)?;
        let _step = self.inner.handshakes.lock().await;
        let mut recent_ok = true;
        loop {
            let AnswerCheck {
                state,
                peer,
                chain,
                pinned,
                recent,
            } = match self.answer_check(envelope, accept.request_id, recent_ok).await? {
                Ok(check) => check,
                Err(disposition) => return Ok(disposition),
            };
            match state.on_accept(&accept, &chain, &self.inner.trust, pinned.as_ref(), SystemTime::now()) {
                // B's key may have changed since that chain was fetched: judge by a new lookup.
                Err(_) if recent => recent_ok = false,
                checked => return self.after_accept_check(&accept, &peer, &chain, checked),
            }
        }
    }

    fn after_accept_check(
        &self,
        accept: &ChatAccept,
        peer: &Username,
        chain: &[Certificate],
        checked: std::result::Result<(magpie_proto::AwaitingConfirm, KeyTransfer), magpie_proto::Error>,
    ) -> Result<Disposition> {
        match checked {
            Ok((state, transfer)) => {
                self.step(HandshakeStep::DirectoryChecked, peer, state.report());
                let reply = self.envelope(peer, EnvelopeKind::KeyTransfer, transfer.to_json()?);
                self.step(HandshakeStep::KeyTransferSent, peer, state.report());
                HandshakeState::AwaitingConfirm(state).save(self.store())?;
                self.queue(reply)?;
                Ok(Disposition::Done)
            }
            Err(magpie_proto::Error::KeyChanged { pinned, presented }) => {
                self.flag_key_change(peer, pinned, presented, chain.first())?;
                self.fail_handshake(peer, accept.request_id, &Error::KeyChanged(peer.to_string()))
            }
            Err(e) => self.fail_unverified(peer, accept.request_id, e),
        }
    }

    /// B declined (A side): verify the signature, close the request.
    pub(super) async fn on_chat_decline(&self, envelope: &Envelope) -> Result<Disposition> {
        let decline = ChatDecline::from_json(&envelope.body)?;
        let _step = self.inner.handshakes.lock().await;
        let AnswerCheck {
            state,
            peer,
            chain,
            pinned,
            ..
        } = match self.answer_check(envelope, decline.request_id, false).await? {
            Ok(check) => check,
            Err(disposition) => return Ok(disposition),
        };
        match state.on_decline(&decline, &chain, &self.inner.trust, pinned.as_ref(), SystemTime::now()) {
            Ok(declined) => {
                HandshakeState::finish(self.store(), declined.request_id)?;
                self.emit(Event::RequestDeclined {
                    peer: peer.to_string(),
                    request_id: declined.request_id,
                });
                Ok(Disposition::Done)
            }
            // A forged decline must not cancel a real request: drop it, keep waiting.
            Err(e) => Ok(self.discard(
                peer.as_str(),
                Discard::Step,
                &format!("a decline that does not verify was ignored: {e}"),
            )),
        }
    }

    /// Step 6 on B: verify, unwrap, derive the session, send the KeyConfirm.
    pub(super) async fn on_key_transfer(&self, envelope: &Envelope) -> Result<Disposition> {
        let transfer = KeyTransfer::from_json(&envelope.body)?;
        let _step = self.inner.handshakes.lock().await;
        let Some(HandshakeState::AwaitingKeyTransfer(state)) =
            HandshakeState::load(self.store(), &self.inner.credential, transfer.request_id)?
        else {
            return self.step_without_handshake(envelope, transfer.request_id);
        };
        let peer = state.report().initiator.clone();
        let report = state.report().clone();
        let certificate = state.peer().certificate().clone();
        match state.on_key_transfer(&transfer, SystemTime::now()) {
            Ok((session, _)) if !self.pin_allows(&session, transfer.request_id, &certificate)? => Ok(Disposition::Done),
            Ok((session, confirm)) => {
                let reply = self.envelope(&peer, EnvelopeKind::KeyConfirm, confirm.to_json()?);
                let report = session.handshake_report().cloned().unwrap_or(report);
                self.step(HandshakeStep::KeyTransferVerified, &peer, &report);
                self.queue(reply)?;
                self.install_session(session, transfer.request_id, &certificate)?;
                Ok(Disposition::Done)
            }
            Err(e) => self.fail_unverified(&peer, transfer.request_id, e),
        }
    }

    /// Step 7 on A: check the confirm MAC; the session is established.
    pub(super) async fn on_key_confirm(&self, envelope: &Envelope) -> Result<Disposition> {
        let confirm = KeyConfirm::from_json(&envelope.body)?;
        let _step = self.inner.handshakes.lock().await;
        let Some(HandshakeState::AwaitingConfirm(state)) =
            HandshakeState::load(self.store(), &self.inner.credential, confirm.request_id)?
        else {
            return self.step_without_handshake(envelope, confirm.request_id);
        };
        let peer = state.peer().username().clone();
        let certificate = state.peer().certificate().clone();
        match state.on_confirm(&confirm, SystemTime::now()) {
            Ok(session) => {
                if let Some(report) = session.handshake_report() {
                    self.step(HandshakeStep::ConfirmVerified, &peer, report);
                }
                self.install_session(session, confirm.request_id, &certificate)?;
                Ok(Disposition::Done)
            }
            Err(e) => self.fail_unverified(&peer, confirm.request_id, e),
        }
    }

    /// Makes `session` the current one with its peer (keeping the one it replaces for late messages), pins the
    /// peer on first contact, and forgets the handshake. A session with another key than the pinned one is never
    /// installed (see [`Client::pin_allows`]).
    fn install_session(&self, session: Session, request_id: Uuid, certificate: &Certificate) -> Result<()> {
        let peer = session.peer().clone();
        let presented = session.peer_fingerprint();
        tracing::debug!(%peer, session = %magpie_proto::encoding::hex(session.session_id()), "installing session");
        let certificate_pem = super::pem_string(certificate)?;
        // The pin check and the pin (on first contact) in one contacts write: nothing moves the pin in between.
        let pinned_other = self.store().update_contact(&peer, |slot| {
            let contact = slot.get_or_insert_with(|| Contact::new(peer.clone(), presented));
            if contact.fingerprint != presented {
                return Ok(Some(contact.fingerprint));
            }
            contact.last_activity = Some(now_secs());
            contact.certificate_pem = Some(certificate_pem);
            contact.rehandshake = false;
            Ok(None)
        })?;
        if let Some(old) = pinned_other {
            return self.refuse_other_key(&peer, old, presented, request_id, certificate);
        }
        let rekey = {
            let mut sessions = self.sessions()?;
            let previous = match sessions.remove(&peer) {
                Some(previous) => Some(previous),
                None => self.store().load_session(&peer)?,
            };
            let rekey = previous.is_some();
            if let Some(previous) = previous {
                // Kept to open late messages only: it seals nothing more.
                self.store().save_previous_session(&previous.into_receive_only())?;
            }
            self.store().save_session(&session)?;
            sessions.insert(peer.clone(), session);
            rekey
        };
        if rekey {
            let position = self.store().mark_position()?;
            self.store().update_contact(&peer, |slot| {
                if let Some(contact) = slot {
                    contact.mark_rekey(position);
                }
                Ok(())
            })?;
        }
        HandshakeState::finish(self.store(), request_id)?;
        if !rekey {
            self.resolve_other_first_contacts(&peer, &presented)?;
        }
        tracing::debug!(%peer, %request_id, rekey, "session established");
        self.rekey_done(&peer);
        self.send_waiting(&peer)?;
        // Messages parked in the mailbox for these keys can open now. (Reading it again for nothing cost each side
        // of every re-key an HTTP fetch.)
        if self.inner.parked.swap(false, std::sync::atomic::Ordering::Relaxed) {
            self.inner.resync.notify_one();
        }
        self.emit(Event::SessionEstablished {
            peer: peer.to_string(),
            rekey,
        });
        Ok(())
    }

    /// Whether `session`'s key is the one pinned for its peer (or none is pinned). If not, the pin moved while the
    /// handshake ran (a session with another key was set up first, or the user accepted another key): the key
    /// change is raised, the handshake fails, and the engine never re-pins by itself.
    fn pin_allows(&self, session: &Session, request_id: Uuid, certificate: &Certificate) -> Result<bool> {
        let peer = session.peer();
        match self.pin_check(peer, &session.peer_fingerprint())? {
            PinCheck::Changed { old, new } => {
                self.refuse_other_key(peer, old, new, request_id, certificate)?;
                Ok(false)
            }
            _ => Ok(true),
        }
    }

    fn refuse_other_key(
        &self,
        peer: &Username,
        pinned: Fingerprint,
        presented: Fingerprint,
        request_id: Uuid,
        certificate: &Certificate,
    ) -> Result<()> {
        tracing::info!(%peer, %request_id, "session with another key than the pinned one refused");
        self.flag_key_change(peer, pinned, presented, Some(certificate))?;
        self.fail_handshake(peer, request_id, &Error::KeyChanged(peer.to_string()))?;
        Ok(())
    }

    /// After the first session with `peer` (key `pinned`): their other requests with that key are answered by it
    /// and dropped; handshakes under way with another key fail (the key change they would be is raised when they
    /// come back); requests with another key stay, listed as a key change.
    fn resolve_other_first_contacts(&self, peer: &Username, pinned: &Fingerprint) -> Result<()> {
        for request in self.store().requests()? {
            if &request.peer == peer && &request.fingerprint == pinned {
                HandshakeState::finish(self.store(), request.request_id)?;
            }
        }
        for pending in HandshakeState::under_way(self.store(), &self.inner.credential)? {
            let key = match &pending {
                HandshakeState::AwaitingKeyTransfer(state) => state.peer().fingerprint(),
                HandshakeState::AwaitingConfirm(state) => state.peer().fingerprint(),
                HandshakeState::AwaitingAccept(_) | HandshakeState::Incoming(_) => continue,
            };
            if pending.peer() == peer && &key != pinned {
                let reason = Error::KeyChanged(peer.to_string());
                self.fail_handshake(peer, pending.request_id(), &reason)?;
            }
        }
        Ok(())
    }

    /// A step of the handshake `request_id` did not verify (a bad signature or MAC, a certificate that does not
    /// chain): it is discarded and counted, and the handshake fails.
    fn fail_unverified(&self, peer: &Username, request_id: Uuid, error: magpie_proto::Error) -> Result<Disposition> {
        self.discard(peer.as_str(), Discard::Step, &error.to_string());
        self.fail_handshake(peer, request_id, &error.into())
    }

    fn fail_handshake(&self, peer: &Username, request_id: Uuid, error: &Error) -> Result<Disposition> {
        HandshakeState::finish(self.store(), request_id)?;
        self.rekey_done(peer);
        self.fail_waiting(peer)?;
        tracing::info!(%peer, %request_id, %error, "handshake failed");
        self.emit(Event::HandshakeFailed {
            peer: peer.to_string(),
            request_id,
            reason: error.to_string(),
        });
        Ok(Disposition::Done)
    }

    pub(super) fn envelope(&self, peer: &Username, kind: EnvelopeKind, body: Vec<u8>) -> Envelope {
        Envelope {
            id: Uuid::new_v4(),
            from: self.username().to_string(),
            to: peer.to_string(),
            kind,
            body,
        }
    }

    pub(super) fn queue(&self, envelope: Envelope) -> Result<()> {
        self.store().queue_envelope(&OutboxItem {
            envelope,
            message_id: None,
        })?;
        self.inner.outbox_wake.notify_one();
        Ok(())
    }

    fn step(&self, step: HandshakeStep, peer: &Username, report: &HandshakeReport) {
        self.emit(Event::Handshake {
            step,
            peer: peer.to_string(),
            data: Box::new(report.into()),
        });
    }
}

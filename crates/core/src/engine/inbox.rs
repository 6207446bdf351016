//! Receiving: each envelope is verified or decrypted and stored before the relay is told to delete it.

use crate::store::prelude::*;
use std::collections::HashMap;
use std::time::SystemTime;

use magpie_proto::{Envelope, EnvelopeKind, MessageKind, Plaintext, SealedMessage, Session, Username};
use uuid::Uuid;

use super::events::{Discard, Event, MessageView};
use super::{now_secs, Client};
use crate::error::{Error, Result};
use crate::history::{Appended, Delivery, Direction, Message, OutboxItem, SessionSlot};

/// What to do with an envelope after handling it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Stored or deliberately dropped: acknowledge it to the relay.
    Done,
    /// A transient failure (the relay's directory did not answer): keep it in the mailbox, try again later.
    Retry,
}

impl<H: Home> Client<H> {
    /// Handles one envelope from our mailbox. Bad input (tampered, forged, malformed, from a stranger) is counted
    /// and reported as an [`Event::Rejected`] and dropped (see `discard.rs`); only storage failures are errors.
    pub async fn handle_envelope(&self, envelope: &Envelope) -> Result<Disposition> {
        if envelope.to != self.username().as_str() {
            return Ok(self.discard_envelope(envelope, "an envelope addressed to someone else"));
        }
        let outcome = match envelope.kind {
            EnvelopeKind::Message => self.on_message(envelope),
            EnvelopeKind::ChatRequest => self.on_chat_request(envelope).await,
            EnvelopeKind::ChatAccept => self.on_chat_accept(envelope).await,
            EnvelopeKind::ChatDecline => self.on_chat_decline(envelope).await,
            EnvelopeKind::KeyTransfer => self.on_key_transfer(envelope).await,
            EnvelopeKind::KeyConfirm => self.on_key_confirm(envelope).await,
        };
        match outcome {
            Ok(disposition) => Ok(disposition),
            Err(Error::Proto(e)) => Ok(self.discard_envelope(envelope, &e.to_string())),
            Err(e) => Err(e),
        }
    }

    /// Handles envelopes in the order they came, but each sender's run of messages sealed with its current session
    /// in one step: one history step for them all, and one receipt answering all their texts. (A run forms
    /// when envelopes arrive faster than they are handled, so it costs nothing when they do not.)
    pub async fn handle_envelopes(&self, envelopes: &[Envelope]) -> Result<Vec<Disposition>> {
        let mut dispositions = vec![Disposition::Done; envelopes.len()];
        let mut runs: Vec<(Username, Vec<(usize, SealedMessage)>)> = Vec::new();
        for (at, envelope) in envelopes.iter().enumerate() {
            let current = match envelope.kind {
                EnvelopeKind::Message if envelope.to == self.username().as_str() => {
                    self.in_current_session(envelope)?
                }
                _ => None,
            };
            let Some((peer, sealed)) = current else {
                // Handshake steps and everything else keep their place: what came before them is handled first.
                self.handle_runs(std::mem::take(&mut runs), envelopes, &mut dispositions)?;
                dispositions[at] = self.handle_envelope(envelope).await?;
                continue;
            };
            let run_len = match runs.iter_mut().find(|(p, _)| *p == peer) {
                Some((_, run)) => {
                    run.push((at, sealed));
                    run.len()
                }
                None => {
                    runs.push((peer, vec![(at, sealed)]));
                    1
                }
            };
            if run_len == RUN_LIMIT {
                self.handle_runs(std::mem::take(&mut runs), envelopes, &mut dispositions)?;
            }
        }
        self.handle_runs(runs, envelopes, &mut dispositions)?;
        if dispositions.contains(&Disposition::Retry) {
            self.inner.parked.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(dispositions)
    }

    /// The sender and the message, if `envelope` is a well-formed message sealed with our current session with
    /// its sender (what [`Client::handle_envelopes`] handles in runs).
    pub(super) fn in_current_session(&self, envelope: &Envelope) -> Result<Option<(Username, SealedMessage)>> {
        let Ok(sealed) = SealedMessage::from_json(&envelope.body) else {
            return Ok(None);
        };
        let Ok(peer) = Username::canonical(&sealed.from) else {
            return Ok(None);
        };
        if sealed.from != envelope.from {
            return Ok(None);
        }
        let current = self.with_session(
            &peer,
            |session| Ok(session.session_id().as_slice() == sealed.session_id),
        )?;
        Ok(current.unwrap_or(false).then_some((peer, sealed)))
    }

    fn handle_runs(
        &self,
        runs: Vec<(Username, Vec<(usize, SealedMessage)>)>,
        envelopes: &[Envelope],
        dispositions: &mut [Disposition],
    ) -> Result<()> {
        for (peer, run) in runs {
            let (places, sealed): (Vec<usize>, Vec<SealedMessage>) = run.into_iter().unzip();
            tracing::debug!(%peer, messages = sealed.len(), "run");
            let opened = match self.with_session(&peer, |session| {
                let still_current = sealed
                    .first()
                    .is_some_and(|first| session.session_id().as_slice() == first.session_id);
                match still_current {
                    true => self.open_and_store(session, SessionSlot::Current, &sealed).map(Some),
                    false => Ok(None),
                }
            }) {
                Ok(Some(Some(opened))) => opened,
                // The session changed since the run was formed (the user accepted a new key, say): one by one.
                Ok(_) => {
                    for place in places {
                        dispositions[place] = self.handle_alone(&envelopes[place])?;
                    }
                    continue;
                }
                // Nothing of the run was stored (sealing its receipt failed, say): refused like a bad message.
                Err(Error::Proto(e)) => {
                    for place in places {
                        dispositions[place] = self.discard(peer.as_str(), Discard::Message, &e.to_string());
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            for ((place, sealed), outcome) in places.into_iter().zip(&sealed).zip(opened) {
                dispositions[place] = self.after_open(&peer, sealed, envelopes[place].id, outcome)?;
            }
        }
        Ok(())
    }

    /// [`Client::handle_envelope`] for a message, which needs no waiting.
    fn handle_alone(&self, envelope: &Envelope) -> Result<Disposition> {
        match self.on_message(envelope) {
            Err(Error::Proto(e)) => Ok(self.discard_envelope(envelope, &e.to_string())),
            other => other,
        }
    }

    fn on_message(&self, envelope: &Envelope) -> Result<Disposition> {
        let sealed = SealedMessage::from_json(&envelope.body)?;
        if sealed.from != envelope.from {
            return Ok(self.discard_envelope(envelope, "the message's sender differs from the envelope's"));
        }
        let peer = Username::canonical(&sealed.from)?;
        let run = std::slice::from_ref(&sealed);
        let opened = self.with_session(&peer, |session| {
            if session.session_id().as_slice() == sealed.session_id.as_slice() {
                return Ok(Some(self.open_and_store(session, SessionSlot::Current, run)?));
            }
            Ok(None)
        })?;
        let outcome = match opened.flatten() {
            Some(mut outcomes) => outcomes.pop().unwrap_or(Opened::Other),
            // Sealed before a re-key that has since replaced its session.
            None => match self.store().load_previous_session(&peer, &sealed.session_id)? {
                // Its step is kept with it, where it was: the current session stays as it is.
                Some(mut previous) => {
                    let mut outcomes = self.open_and_store(&mut previous, SessionSlot::Previous, run)?;
                    self.receipt_for_late(&peer, &outcomes)?;
                    outcomes.pop().unwrap_or(Opened::Other)
                }
                _ => {
                    tracing::debug!(%peer, session = %magpie_proto::encoding::hex(&sealed.session_id), n = sealed.n, "unknown session");
                    // Sealed with keys a handshake under way is about to give us (its confirm was delayed, say):
                    // leave it in the mailbox; the catch-up after the session is installed opens it.
                    if self.handshake_pending_with(&peer)? {
                        return Ok(Disposition::Retry);
                    }
                    return Ok(self.discard_envelope(envelope, "a message for a session we do not have"));
                }
            },
        };
        self.after_open(&peer, &sealed, envelope.id, outcome)
    }

    fn after_open(
        &self,
        peer: &Username,
        sealed: &SealedMessage,
        envelope: Uuid,
        outcome: Opened,
    ) -> Result<Disposition> {
        if matches!(outcome, Opened::Text(..) | Opened::Other) {
            self.recently_opened()?.note(&sealed.session_id, sealed.n, envelope);
        }
        match outcome {
            Opened::Text(message, appended) => self.after_receive(message, appended),
            Opened::Other => {}
            Opened::Failed(magpie_proto::Error::Replay) => {
                let first = self.recently_opened()?.replayed(&sealed.session_id, sealed.n, envelope);
                if let Some(first) = first {
                    let reason = format!(
                        "message {} of this session was opened already (envelope {first}); it came again in envelope \
                         {envelope}: the relay (or the sender) sent it again",
                        sealed.n
                    );
                    return Ok(self.discard(peer.as_str(), Discard::Message, &reason));
                }
                // A redelivery (we had not acknowledged it yet) or a retry: at-least-once delivery.
                tracing::debug!(%peer, n = sealed.n, "duplicate message dropped");
            }
            // Older than the skip window: its key is gone. An old copy, or a message that arrived too late to open.
            Opened::Failed(magpie_proto::Error::OutOfOrder) => {
                tracing::info!(%peer, n = sealed.n, "message older than the skip window dropped");
            }
            Opened::Failed(e) => return Ok(self.discard(peer.as_str(), Discard::Message, &e.to_string())),
        }
        Ok(Disposition::Done)
    }

    /// Opens a run of messages sealed with `session` and stores the advanced session with what they carried in one
    /// step: their texts together with one encrypted receipt answering them all. The session moves on only if that
    /// step is stored; a message that does not open leaves it where it was and is reported as [`Opened::Failed`].
    fn open_and_store(&self, session: &mut Session, slot: SessionSlot, run: &[SealedMessage]) -> Result<Vec<Opened>> {
        // Working on a copy: if storing fails, the live session must not be ahead of the history.
        let mut next = session.clone();
        let peer = next.peer().clone();
        // `None` holds the place of a text until it is stored.
        let mut outcomes: Vec<Option<Opened>> = Vec::with_capacity(run.len());
        let (mut texts, mut delivered) = (Vec::new(), Vec::new());
        for sealed in run {
            let plaintext = match next.open(sealed) {
                Ok(plaintext) => plaintext,
                Err(e) => {
                    outcomes.push(Some(Opened::Failed(e)));
                    continue;
                }
            };
            match plaintext.kind {
                // A file message is stored like a text, its download recorded with it (see `files.rs`).
                MessageKind::File if magpie_proto::file::FileDescriptor::from_body(&plaintext.body).is_err() => {
                    outcomes.push(Some(Opened::Failed(magpie_proto::Error::Malformed(
                        "a file message that does not describe a file".into(),
                    ))));
                }
                kind @ (MessageKind::Text | MessageKind::File) => {
                    outcomes.push(None);
                    texts.push(Message {
                        id: plaintext.id,
                        peer: peer.clone(),
                        direction: Direction::Incoming,
                        kind,
                        body: plaintext.body.clone(),
                        sent_at: plaintext.sent_at,
                        received_at: Some(now_secs()),
                        delivery: Delivery::Received,
                    });
                }
                MessageKind::Receipt => {
                    delivered.extend(receipt_ids(&plaintext.body));
                    outcomes.push(Some(Opened::Other));
                }
                _ => outcomes.push(Some(Opened::Other)),
            }
        }
        if outcomes.iter().all(|o| matches!(o, Some(Opened::Failed(_)))) {
            return Ok(outcomes.into_iter().flatten().collect());
        }
        // A replaced session seals nothing (its sending chain is gone): its texts' receipt goes with the current
        // one (`receipt_for_late`).
        let receipt = match texts.is_empty() || slot == SessionSlot::Previous {
            true => None,
            false => {
                let ids: Vec<String> = texts.iter().map(|m| m.id.to_string()).collect();
                let receipt = Plaintext::new(MessageKind::Receipt, ids.join(","), SystemTime::now())?;
                self.store().reserve_send(&next)?;
                Some(OutboxItem {
                    envelope: self.envelope(&peer, EnvelopeKind::Message, next.seal(&receipt)?.to_json()?),
                    message_id: None,
                })
            }
        };
        let (appended, deliveries) =
            self.store()
                .record_steps_delivering(&next, slot, &texts, receipt.as_ref(), &delivered)?;
        if receipt.is_some() {
            self.inner.outbox_wake.notify_one();
        }
        *session = next;
        // Once per step, however many texts it stored.
        if appended.iter().any(|a| matches!(a, Appended::New(_))) {
            self.note_activity(&peer)?;
        }
        self.announce_deliveries(&peer, &delivered, deliveries);
        let mut texts = texts.into_iter().zip(appended);
        Ok(outcomes
            .into_iter()
            .map(|outcome| {
                outcome.unwrap_or_else(|| {
                    texts
                        .next()
                        .map_or(Opened::Other, |(message, appended)| Opened::Text(message, appended))
                })
            })
            .collect())
    }

    /// Answers texts a replaced session opened with a receipt sealed with the current session; without one (a
    /// re-key under way after a restore, say) they stay unanswered, and the peer sees them as sent, not delivered.
    fn receipt_for_late(&self, peer: &Username, outcomes: &[Opened]) -> Result<()> {
        let ids: Vec<String> = outcomes
            .iter()
            .filter_map(|outcome| match outcome {
                Opened::Text(message, _) => Some(message.id.to_string()),
                _ => None,
            })
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let receipt = Plaintext::new(MessageKind::Receipt, ids.join(","), SystemTime::now())?;
        match self.seal_and_queue(peer, &receipt, None).map(|(sealed, _)| sealed) {
            Ok(_) => Ok(()),
            Err(Error::NoSession(_)) => {
                tracing::debug!(%peer, texts = ids.len(), "late texts left unanswered: no current session");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Moves the chat's last activity (whole seconds) to now. Within a second that is stored already the contact is
    /// neither read nor written: a burst of texts costs one write, not one each.
    pub(super) fn note_activity(&self, peer: &Username) -> Result<()> {
        let now = now_secs();
        let stored_already = self.activity_noted()?.get(peer) == Some(&now);
        if stored_already {
            return Ok(());
        }
        self.store().update_contact(peer, |slot| {
            if let Some(contact) = slot {
                contact.last_activity = Some(now);
            }
            Ok(())
        })?;
        self.activity_noted()?.insert(peer.clone(), now);
        Ok(())
    }

    fn recently_opened(&self) -> Result<crate::lock_order::Guard<'_, super::replays::RecentlyOpened>> {
        self.inner.recently_opened.lock().map_err(|_| Error::Poisoned)
    }

    fn activity_noted(&self) -> Result<crate::lock_order::Guard<'_, HashMap<Username, u64>>> {
        self.inner.activity_noted.lock().map_err(|_| Error::Poisoned)
    }

    /// The delivery state each of `ids` (ours, answered by a receipt) ended in, for the UI.
    fn announce_deliveries(&self, peer: &Username, ids: &[Uuid], states: Vec<Option<Delivery>>) {
        for (id, state) in ids.iter().zip(states) {
            if let Some(delivery) = state {
                self.emit(Event::DeliveryChanged {
                    peer: peer.to_string(),
                    id: *id,
                    delivery,
                });
            }
        }
    }

    /// After a text arrived and was stored: tell the UI.
    fn after_receive(&self, message: Message, appended: Appended) {
        if message.kind == MessageKind::File {
            self.inner.transfers_wake.notify_one();
        }
        if let Appended::New(cursor) = appended {
            let mut view = MessageView::from(&message);
            view.cursor = Some(cursor.value());
            self.emit(Event::MessageReceived { message: view });
        }
    }

    /// Seals `plaintext` with the session to `peer` and commits the session, the message (if given) and the
    /// envelope in one step; with the message's place in its chat.
    pub(super) fn seal_and_queue(
        &self,
        peer: &Username,
        plaintext: &Plaintext,
        message: Option<&Message>,
    ) -> Result<(SealedMessage, Option<Appended>)> {
        let sealed = self
            .with_session(peer, |session| {
                let mut next = session.clone();
                self.store().reserve_send(&next)?;
                let sealed = next.seal(plaintext)?;
                let envelope = self.envelope(peer, magpie_proto::EnvelopeKind::Message, sealed.to_json()?);
                let item = OutboxItem {
                    envelope,
                    message_id: message.map(|m| m.id),
                };
                let appended = self.store().record_step(&next, message, Some(&item))?;
                *session = next;
                Ok((sealed, appended))
            })?
            .ok_or_else(|| Error::NoSession(peer.to_string()))?;
        self.inner.outbox_wake.notify_one();
        Ok(sealed)
    }
}

/// Most messages of one sender handled in one step: their receipt lists every id (37 bytes each), within a
/// plaintext's 32 KiB.
pub(super) const RUN_LIMIT: usize = 256;

/// What one message of a run came to.
enum Opened {
    /// A text, stored (or found stored already).
    Text(Message, Appended),
    /// A receipt or typing notice: it moved the session and changed delivery states.
    Other,
    /// It did not open: a duplicate, a forgery, a bit flipped.
    Failed(magpie_proto::Error),
}

/// The message ids a receipt answers: comma-separated (one, from peers that answer each message alone).
fn receipt_ids(body: &str) -> impl Iterator<Item = Uuid> + '_ {
    body.split(',').filter_map(|id| Uuid::parse_str(id.trim()).ok())
}

//! Receiving: each envelope is verified or decrypted and stored before the relay is told to delete it.

use std::time::SystemTime;

use magpie_proto::{Envelope, EnvelopeKind, MessageKind, Plaintext, SealedMessage, Session, Username};
use uuid::Uuid;

use super::events::{Event, MessageView};
use super::{now_secs, Client};
use crate::error::{Error, Result};
use crate::history::{Appended, Delivery, Direction, Message, OutboxItem};

/// What to do with an envelope after handling it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Stored or deliberately dropped: acknowledge it to the relay.
    Done,
    /// A transient failure (the relay's directory did not answer): keep it in the mailbox, try again later.
    Retry,
}

impl Client {
    /// Handles one envelope from our mailbox. Bad input (tampered, forged, malformed, from a stranger) is reported
    /// as an [`Event::Rejected`] and dropped; only storage failures are errors.
    pub async fn handle_envelope(&self, envelope: &Envelope) -> Result<Disposition> {
        if envelope.to != self.username().as_str() {
            return Ok(self.reject(&envelope.from, "an envelope addressed to someone else"));
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
            Err(Error::Proto(e)) => Ok(self.reject(&envelope.from, &e.to_string())),
            Err(e) => Err(e),
        }
    }

    fn reject(&self, from: &str, reason: &str) -> Disposition {
        tracing::info!(%from, %reason, "envelope rejected");
        self.emit(Event::Rejected {
            peer: from.to_owned(),
            reason: reason.to_owned(),
        });
        Disposition::Done
    }

    fn on_message(&self, envelope: &Envelope) -> Result<Disposition> {
        let sealed = SealedMessage::from_json(&envelope.body)?;
        if sealed.from != envelope.from {
            return Ok(self.reject(&envelope.from, "the message's sender differs from the envelope's"));
        }
        let peer = Username::canonical(&sealed.from)?;
        let opened = self.with_session(&peer, |session| {
            if session.session_id().as_slice() == sealed.session_id.as_slice() {
                return Ok(Some(self.open_and_store(session, &sealed)));
            }
            Ok(None)
        })?;
        let outcome = match opened.flatten() {
            Some(outcome) => outcome,
            // Sealed before a re-key that has since replaced its session.
            None => match self.history().load_previous_session(&peer, &sealed.session_id)? {
                Some(mut previous) => {
                    let outcome = self.open_and_store(&mut previous, &sealed);
                    if outcome.is_ok() {
                        self.history().save_previous_session(&previous)?;
                    }
                    outcome
                }
                _ => {
                    tracing::debug!(%peer, session = %magpie_proto::encoding::hex(&sealed.session_id), n = sealed.n, "unknown session");
                    // Sealed with keys a handshake under way is about to give us (its confirm was delayed, say):
                    // leave it in the mailbox; the catch-up after the session is installed opens it.
                    if self.handshake_pending_with(&peer)? {
                        return Ok(Disposition::Retry);
                    }
                    return Ok(self.reject(&envelope.from, "a message for a session we do not have"));
                }
            },
        };
        match outcome {
            Ok(Some((message, appended))) => {
                self.after_receive(&peer, message, appended)?;
                Ok(Disposition::Done)
            }
            Ok(None) => Ok(Disposition::Done),
            // A second copy of something already received: the relay or we crashed before the ack.
            Err(Error::Proto(magpie_proto::Error::Replay | magpie_proto::Error::OutOfOrder)) => {
                tracing::debug!(%peer, n = sealed.n, "duplicate message dropped");
                Ok(Disposition::Done)
            }
            Err(e) => Err(e),
        }
    }

    /// Opens `sealed` and stores the advanced session with what it carried in one step: a text together with
    /// the encrypted receipt that answers it. Returns the text (with whether it was new); receipts and typing
    /// update state and return `None`.
    fn open_and_store(&self, session: &mut Session, sealed: &SealedMessage) -> Result<Option<(Message, Appended)>> {
        // Working on a copy: if storing fails, the live session must not be ahead of the history.
        let mut next = session.clone();
        let plaintext = next.open(sealed)?;
        let peer = next.peer().clone();
        let stored = match plaintext.kind {
            MessageKind::Text => {
                let message = Message {
                    id: plaintext.id,
                    peer: peer.clone(),
                    direction: Direction::Incoming,
                    kind: MessageKind::Text,
                    body: plaintext.body.clone(),
                    sent_at: plaintext.sent_at,
                    received_at: Some(now_secs()),
                    delivery: Delivery::Received,
                };
                let receipt = Plaintext::new(MessageKind::Receipt, plaintext.id.to_string(), SystemTime::now())?;
                let receipt = self.envelope(&peer, EnvelopeKind::Message, next.seal(&receipt)?.to_json()?);
                let item = OutboxItem {
                    envelope: receipt,
                    message_id: None,
                };
                let appended = self.history().record_step(&next, Some(&message), Some(&item))?;
                self.inner.outbox_wake.notify_one();
                appended.map(|a| (message, a))
            }
            MessageKind::Receipt => {
                self.history().record_step(&next, None, None)?;
                if let Ok(id) = Uuid::parse_str(&plaintext.body) {
                    self.mark_delivered(&peer, id)?;
                }
                None
            }
            _ => {
                self.history().record_step(&next, None, None)?;
                None
            }
        };
        *session = next;
        Ok(stored)
    }

    fn mark_delivered(&self, peer: &Username, id: Uuid) -> Result<()> {
        if let Some(state) = self.history().update_delivery(id, Delivery::Delivered)? {
            self.emit(Event::DeliveryChanged {
                peer: peer.to_string(),
                id,
                delivery: state,
            });
        }
        Ok(())
    }

    /// After a text arrived and was stored: tell the UI, touch the contact.
    fn after_receive(&self, peer: &Username, message: Message, appended: Appended) -> Result<()> {
        if let Appended::New(cursor) = appended {
            let mut view = MessageView::from(&message);
            view.cursor = Some(cursor.value());
            self.emit(Event::MessageReceived { message: view });
            if let Some(mut contact) = self.history().contact(peer)? {
                contact.last_activity = Some(now_secs());
                self.history().put_contact(&contact)?;
            }
        }
        Ok(())
    }

    /// Seals `plaintext` with the session to `peer` and commits the session, the message (if given) and the
    /// envelope in one step.
    pub(super) fn seal_and_queue(
        &self,
        peer: &Username,
        plaintext: &Plaintext,
        message: Option<&Message>,
    ) -> Result<SealedMessage> {
        let sealed = self
            .with_session(peer, |session| {
                let mut next = session.clone();
                let sealed = next.seal(plaintext)?;
                let envelope = self.envelope(peer, magpie_proto::EnvelopeKind::Message, sealed.to_json()?);
                let item = OutboxItem {
                    envelope,
                    message_id: message.map(|m| m.id),
                };
                self.history().record_step(&next, message, Some(&item))?;
                *session = next;
                Ok(sealed)
            })?
            .ok_or_else(|| Error::NoSession(peer.to_string()))?;
        self.inner.outbox_wake.notify_one();
        Ok(sealed)
    }
}

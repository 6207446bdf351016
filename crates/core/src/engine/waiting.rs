//! Texts written while the session with a peer is being set up: kept as "waiting", unsealed, and sealed in order once
//! the session exists (a session is installed only with a key that passed every check of the trust policy). If the
//! handshake fails or the peer's key changes instead, they fail visibly; sending one again is the user's choice.

use crate::store::prelude::*;
use std::time::SystemTime;

use magpie_proto::{EnvelopeKind, MessageKind, Plaintext, Username};

use super::events::{Event, MessageView};
use super::handshake_state::HandshakeState;
use super::Client;
use crate::error::Result;
use crate::history::{Appended, Delivery, Direction, Entry, Message, OutboxItem};

/// Whether texts to each peer wait; held from deciding how a text goes until it is sealed or kept, so that
/// texts to one peer are sealed in the order they were written.
pub(super) type WaitingGuard<'a> = crate::lock_order::Guard<'a, std::collections::HashMap<Username, bool>>;

/// How many messages [`Client::waiting_texts`] reads at a time.
const WAITING_PAGE: usize = 500;

impl<H: Home> Client<H> {
    /// Whether a session with `peer` is on its way: a handshake the peer has accepted (ours waits for their
    /// confirm, or theirs for their key transfer), or one a restore made due. (Before the peer accepts, sending is
    /// refused: a request may wait for days, or be declined.)
    pub fn session_coming(&self, peer: &Username) -> Result<bool> {
        let accepted = HandshakeState::under_way(self.store(), &self.inner.credential)?
            .iter()
            .any(|p| p.peer() == peer && !matches!(p, HandshakeState::AwaitingAccept(_)));
        Ok(accepted || self.store().contact(peer)?.is_some_and(|c| c.rehandshake))
    }

    /// Keeps `message` as waiting for the session with its peer (what `send_text` does when there is no usable
    /// session, or texts wait already, so that it does not overtake them). With `usable`, the session is there
    /// and the waiting texts, this one last, are sealed at once, in order.
    pub(super) fn keep_waiting(
        &self,
        mut waiting: WaitingGuard<'_>,
        mut message: Message,
        usable: bool,
    ) -> Result<MessageView> {
        message.delivery = Delivery::Waiting;
        let appended = self.store().append_message(&message)?;
        waiting.insert(message.peer.clone(), true);
        let mut view = MessageView::from(&message);
        if let Appended::New(cursor) = appended {
            view.cursor = Some(cursor.value());
        }
        tracing::debug!(peer = %message.peer, id = %message.id, "text waits for the session");
        self.emit(Event::MessageWaiting { message: view.clone() });
        if usable {
            self.seal_waiting(&mut waiting, &message.peer)?;
        }
        Ok(view)
    }

    /// Seals and queues, in order, the texts that waited for the session just installed with `peer`.
    pub(super) fn send_waiting(&self, peer: &Username) -> Result<()> {
        // Files uploaded while there was no usable session are sent now too (see `files/`).
        self.inner.transfers_wake.notify_one();
        let mut waiting = self.waiting_texts_lock()?;
        self.seal_waiting(&mut waiting, peer)
    }

    fn seal_waiting(&self, waiting: &mut WaitingGuard<'_>, peer: &Username) -> Result<()> {
        if !self.has_waiting(waiting, peer)? {
            return Ok(());
        }
        for entry in self.waiting_texts(peer)? {
            let message = &entry.message;
            if !self.seal_stored(message)? {
                // No usable session (yet): the rest keeps waiting, in order.
                self.inner.outbox_wake.notify_one();
                return Ok(());
            }
            self.emit(Event::DeliveryChanged {
                peer: peer.to_string(),
                id: message.id,
                delivery: Delivery::Sending,
            });
        }
        waiting.insert(peer.clone(), false);
        self.inner.outbox_wake.notify_one();
        Ok(())
    }

    /// Seals and queues `message`, stored unsealed (a text that waited, a file now uploaded), with the session in
    /// use, moving it to "sending" in the same step; `false` when there is no usable session.
    pub(super) fn seal_stored(&self, message: &Message) -> Result<bool> {
        let plaintext = Plaintext {
            id: message.id,
            kind: message.kind,
            body: message.body.clone(),
            sent_at: message.sent_at,
        };
        let sealed = self.with_session(&message.peer, |session| {
            if session.exhausted(SystemTime::now()) {
                return Ok(false);
            }
            let mut next = session.clone();
            self.store().reserve_send(&next)?;
            let sealed = next.seal(&plaintext)?;
            let item = OutboxItem {
                envelope: self.envelope(&message.peer, EnvelopeKind::Message, sealed.to_json()?),
                message_id: Some(message.id),
            };
            self.store().record_waiting_sealed(&next, &item, message.id)?;
            *session = next;
            Ok(true)
        })?;
        Ok(sealed.unwrap_or(false))
    }

    /// The handshake that `peer`'s waiting texts were for ended without a session (or the key changed): they
    /// fail, unless another handshake with the peer is still under way.
    pub(super) fn fail_waiting(&self, peer: &Username) -> Result<()> {
        if self.has_session(peer)? || self.handshake_pending_with(peer)? {
            return Ok(());
        }
        self.fail_all_waiting(peer)
    }

    /// Every waiting text to `peer` fails (its key changed: nothing is sealed for a new key unasked).
    pub(super) fn fail_all_waiting(&self, peer: &Username) -> Result<()> {
        let mut waiting = self.waiting_texts_lock()?;
        if !self.has_waiting(&mut waiting, peer)? {
            return Ok(());
        }
        let ids: Vec<_> = self.waiting_texts(peer)?.iter().map(|e| e.message.id).collect();
        waiting.insert(peer.clone(), false);
        if ids.is_empty() {
            return Ok(());
        }
        tracing::info!(%peer, texts = ids.len(), "texts that waited for the session failed");
        let states = self.store().update_deliveries(&ids, Delivery::Failed)?;
        for (id, state) in ids.into_iter().zip(states) {
            if let Some(delivery) = state {
                self.emit(Event::DeliveryChanged {
                    peer: peer.to_string(),
                    id,
                    delivery,
                });
            }
        }
        Ok(())
    }

    /// Which peers have texts waiting (read from the history the first time a peer is asked about in a run).
    pub(super) fn waiting_texts_lock(&self) -> Result<WaitingGuard<'_>> {
        self.inner.waiting.lock().map_err(|_| crate::error::Error::Poisoned)
    }

    /// Whether texts to `peer` wait.
    pub(super) fn has_waiting(&self, waiting: &mut WaitingGuard<'_>, peer: &Username) -> Result<bool> {
        if let Some(known) = waiting.get(peer) {
            return Ok(*known);
        }
        let stored = !self.waiting_texts(peer)?.is_empty();
        waiting.insert(peer.clone(), stored);
        Ok(stored)
    }

    /// The texts to `peer` that wait, oldest first. They are the newest outgoing texts (a text written after a
    /// waiting one waits too, and they are sealed oldest first): read back page by page to the first outgoing
    /// text that does not wait.
    fn waiting_texts(&self, peer: &Username) -> Result<Vec<Entry>> {
        let mut found = Vec::new();
        let mut page = self.store().last_messages(peer, WAITING_PAGE)?;
        while let Some(oldest) = page.first().map(|e| e.cursor) {
            let full = page.len() == WAITING_PAGE;
            for entry in page.into_iter().rev() {
                // Files wait for their upload, not for the session: they are sent on their own (see `files.rs`).
                if entry.message.direction != Direction::Outgoing || entry.message.kind != MessageKind::Text {
                    continue;
                }
                if entry.message.delivery != Delivery::Waiting {
                    found.reverse();
                    return Ok(found);
                }
                found.push(entry);
            }
            if !full {
                break;
            }
            page = self.store().messages_before(peer, oldest, WAITING_PAGE)?;
        }
        found.reverse();
        Ok(found)
    }
}

/// The message `send_text` stores for `text` to `peer`.
pub(super) fn outgoing_text(peer: &Username, text: &str) -> Result<(Plaintext, Message)> {
    let plaintext = Plaintext::new(MessageKind::Text, text, SystemTime::now())?;
    let message = Message {
        id: plaintext.id,
        peer: peer.clone(),
        direction: Direction::Outgoing,
        kind: MessageKind::Text,
        body: plaintext.body.clone(),
        sent_at: plaintext.sent_at,
        received_at: None,
        delivery: Delivery::Sending,
    };
    Ok((plaintext, message))
}

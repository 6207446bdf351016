//! Sending: a message is stored as "sending" with its envelope in the outbox before anything goes out; the outbox
//! posts in order and retries until the relay's 202.

use crate::store::prelude::*;
use std::time::{Duration, SystemTime};

use magpie_api::ErrorCode;
use magpie_proto::{encoding::hex, EnvelopeKind, Username};
use uuid::Uuid;

use super::events::{Event, MessageView, Refusal};
use super::Client;
use crate::error::{Error, Result};
use crate::history::{Delivery, OutboxItem, OutboxKey};
use crate::relay::Outgoing;

/// Ciphertext bytes shown in [`Event::MessageSent`].
const PREVIEW_BYTES: usize = 32;

/// What one pass over the outbox did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flushed {
    /// Envelopes the relay accepted over HTTP.
    pub sent: usize,
    /// Envelopes handed to the open socket; the relay answers each once it is durable.
    pub pipelined: usize,
    /// Envelopes the relay refused for good (their messages are "failed").
    pub failed: usize,
}

/// An envelope sent on the socket, waiting for the relay's answer.
#[derive(Clone, Debug)]
pub(super) struct InFlight {
    key: OutboxKey,
    message_id: Option<Uuid>,
    peer: String,
}

impl<H: Home> Client<H> {
    /// Sends a text to `peer`: sealed, stored as "sending" and queued in one step; the outbox posts it. While a
    /// session is being set up, it is kept as "waiting" and sealed once the session exists (see `waiting.rs`).
    /// Refused while the peer's key is changed (until the user accepts it or verifies again), or when no session
    /// exists nor is on its way.
    pub fn send_text(&self, peer: &Username, text: &str) -> Result<MessageView> {
        if self.store().key_changed(peer)? {
            return Err(Error::KeyChanged(peer.to_string()));
        }
        let (plaintext, message) = super::waiting::outgoing_text(peer, text)?;
        // Held until the text is sealed or kept: texts to one peer keep their order (see `waiting.rs`).
        let mut waiting = self.waiting_texts_lock()?;
        let usable = self.with_session(peer, |s| Ok(!s.exhausted(SystemTime::now())))?;
        if usable != Some(true) || self.has_waiting(&mut waiting, peer)? {
            if usable == Some(false) {
                // Past twice the re-key point: the text waits for the new session.
                self.maybe_rekey(peer);
            } else if usable.is_none() && !self.session_coming(peer)? {
                return Err(Error::NoSession(peer.to_string()));
            }
            return self.keep_waiting(waiting, message, usable == Some(true));
        }
        let (sealed, appended) = self.seal_and_queue(peer, &plaintext, Some(&message))?;
        drop(waiting);
        let mut view = MessageView::from(&message);
        // Its place in the chat, so a window puts later messages (a reply) after it.
        if let Some(crate::history::Appended::New(cursor)) = appended {
            view.cursor = Some(cursor.value());
        }
        self.emit(Event::MessageSent {
            message: view.clone(),
            ciphertext_len: sealed.ciphertext.len(),
            ciphertext_preview: hex(sealed.ciphertext.get(..PREVIEW_BYTES).unwrap_or(&sealed.ciphertext)),
        });
        self.maybe_rekey(peer);
        Ok(view)
    }

    /// Sends everything in the outbox, oldest first: pipelined on the socket when connected (answers arrive
    /// through [`Client::on_socket_answer`]), else one HTTP request each, stopping with the error at the first
    /// transient failure (the rest waits for the next pass). An envelope the relay refuses for good fails its
    /// message.
    pub async fn flush_outbox(&self) -> Result<Flushed> {
        let _only_one = self.inner.outbox_running.lock().await;
        let mut flushed = Flushed::default();
        let socket_open = self.inner.socket.lock().map_err(|_| Error::Poisoned)?.is_some();
        let after = self.scan_start(socket_open)?;
        let items = self.store().outbox_after(after)?;
        if items.is_empty() {
            return Ok(flushed);
        }
        // What goes out must be on disk first when it claims something about it: a handshake step, a receipt
        // ("stored"). Our own texts need not wait: their counters are reserved (see `history::reserve`), so they
        // leave at once and the flush after them makes them durable while the relay works. (A crash in between
        // loses our copy of a text the peer may get; its counter is never used again.)
        let own_texts_only = items
            .iter()
            .all(|(_, item)| item.envelope.kind == EnvelopeKind::Message && item.message_id.is_some());
        if !own_texts_only {
            self.store().flush_async().await?;
        }
        let Some(items) = self.pipeline(after, items, &mut flushed)? else {
            return Ok(flushed);
        };
        if own_texts_only {
            self.store().flush_async().await?;
        }
        for (key, item) in items {
            let mut result = self.inner.relay.send(&item.envelope).await;
            if result.as_ref().is_err_and(|e| matches!(e, Error::NotLoggedIn)) {
                // Before the connection has logged in (the outbox starts first): the kept token may do.
                self.resume_login().await?;
                result = self.inner.relay.send(&item.envelope).await;
            }
            if result.as_ref().is_err_and(Error::is_unauthorized) {
                self.login().await?;
                result = self.inner.relay.send(&item.envelope).await;
            }
            match result {
                Ok(()) => {
                    self.store().remove_outbox(key)?;
                    flushed.sent += 1;
                    if let Some(id) = item.message_id {
                        self.set_delivery(&item.envelope.to, id, Delivery::Sent)?;
                    }
                }
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, to = %item.envelope.to, "envelope refused for good");
                    self.store().remove_outbox(key)?;
                    flushed.failed += 1;
                    if let Some(id) = item.message_id {
                        let code = match &e {
                            Error::Relay { code, .. } => *code,
                            _ => ErrorCode::Unknown,
                        };
                        self.refused(&item.envelope.to, id, Refusal::from_code(code))?;
                    }
                }
            }
        }
        Ok(flushed)
    }

    /// Hands `items` to the open socket, recording each as in flight; without a socket, gives them back to be
    /// posted over HTTP. If the connection changed since `items` were read, sends nothing and asks for another
    /// pass.
    fn pipeline(
        &self,
        after: Option<OutboxKey>,
        items: Vec<(OutboxKey, OutboxItem)>,
        flushed: &mut Flushed,
    ) -> Result<Option<Vec<(OutboxKey, OutboxItem)>>> {
        // The connection may have dropped or been replaced during the flush. Deciding under the socket's lock
        // (which the reconnect takes to clear what was in flight) means nothing is recorded as in flight on a
        // socket that is already gone, where it would wait for an answer that never comes.
        let socket_slot = self.inner.socket.lock().map_err(|_| Error::Poisoned)?;
        if self.scan_start(socket_slot.is_some())? != after {
            // Reading again here could pick up envelopes queued since the flush, a handshake step among them that
            // must not leave before it is on disk. The next pass reads and flushes afresh.
            self.inner.outbox_wake.notify_one();
            return Ok(None);
        }
        if let Some(socket) = socket_slot.as_ref() {
            let mut in_flight = self.inner.in_flight.lock().map_err(|_| Error::Poisoned)?;
            let mut pipelined_up_to = self.inner.pipelined_up_to.lock().map_err(|_| Error::Poisoned)?;
            for (key, item) in items {
                *pipelined_up_to = Some(key);
                let id = item.envelope.id;
                if in_flight.contains_key(&id) {
                    continue;
                }
                let peer = item.envelope.to.clone();
                if socket.send(Outgoing::Send(item.envelope)).is_err() {
                    // The socket just closed: the next pass goes over HTTP or after the reconnect.
                    break;
                }
                in_flight.insert(
                    id,
                    InFlight {
                        key,
                        message_id: item.message_id,
                        peer,
                    },
                );
                flushed.pipelined += 1;
            }
            return Ok(None);
        }
        Ok(Some(items))
    }

    /// Sends the outbox until it is empty or `patience` runs out (a face that is about to exit). Returns how
    /// many envelopes are still waiting.
    pub async fn drain_outbox(&self, patience: Duration) -> Result<usize> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let flushed = self.flush_outbox().await;
            let waiting = self.store().outbox()?.len();
            if waiting == 0 || tokio::time::Instant::now() >= deadline {
                return flushed.map(|_| waiting);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The relay answered an envelope sent on the socket.
    pub(super) fn on_socket_answer(&self, id: Uuid, refusal: Option<(ErrorCode, &str)>) -> Result<()> {
        let Some(sent) = self.inner.in_flight.lock().map_err(|_| Error::Poisoned)?.remove(&id) else {
            return Ok(());
        };
        match refusal {
            None => {
                self.store().remove_outbox(sent.key)?;
                if let Some(message) = sent.message_id {
                    self.set_delivery(&sent.peer, message, Delivery::Sent)?;
                }
            }
            Some((code, _)) if code.is_transient() => {
                // Still in the outbox: try again shortly, with a full pass.
                self.restart_outbox_scan();
                let client = self.clone();
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        client.inner.outbox_wake.notify_one();
                    });
                }
            }
            Some((code, reason)) => {
                tracing::warn!(%code, %reason, to = %sent.peer, "envelope refused for good");
                self.store().remove_outbox(sent.key)?;
                if let Some(message) = sent.message_id {
                    self.refused(&sent.peer, message, Refusal::from_code(code))?;
                }
            }
        }
        Ok(())
    }

    /// Where a pass starts: on the socket, after what was already pipelined (the rest is in flight or answered;
    /// items refused for a while, and everything after a reconnect, are picked up by a full pass); over HTTP,
    /// at the start.
    fn scan_start(&self, socket_open: bool) -> Result<Option<OutboxKey>> {
        match socket_open {
            true => Ok(*self.inner.pipelined_up_to.lock().map_err(|_| Error::Poisoned)?),
            false => Ok(None),
        }
    }

    /// The next pass reads the whole outbox again (after a reconnect or a refusal to retry).
    pub(super) fn restart_outbox_scan(&self) {
        if let Ok(mut up_to) = self.inner.pipelined_up_to.lock() {
            *up_to = None;
        }
    }

    /// The relay will not take message `id` to `peer`: it is failed, and the face is told why.
    fn refused(&self, peer: &str, id: Uuid, reason: Refusal) -> Result<()> {
        self.set_delivery(peer, id, Delivery::Failed)?;
        self.emit(Event::SendRefused {
            peer: peer.to_owned(),
            id,
            reason,
        });
        Ok(())
    }

    fn set_delivery(&self, peer: &str, id: Uuid, delivery: Delivery) -> Result<()> {
        if let Some(state) = self.store().update_delivery(id, delivery)? {
            self.emit(Event::DeliveryChanged {
                peer: peer.to_owned(),
                id,
                delivery: state,
            });
        }
        Ok(())
    }

    /// Posts the outbox whenever something is queued, retrying with backoff (up to a minute) while the relay is
    /// unreachable. Runs until the client is dropped by every owner but this task.
    pub(super) async fn outbox_loop(&self) {
        let mut backoff = Duration::from_millis(250);
        loop {
            match self.flush_outbox().await {
                Ok(_) => {
                    backoff = Duration::from_millis(250);
                    self.inner.outbox_wake.notified().await;
                }
                Err(e) => {
                    tracing::info!(error = %e, retry_in = ?backoff, "outbox waiting");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = self.inner.outbox_wake.notified() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
            }
        }
    }
}

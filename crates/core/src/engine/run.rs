//! Staying connected: log in, catch up on the mailbox, then follow the push socket; reconnect with backoff.

use crate::store::prelude::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::FutureExt as _;
use magpie_proto::{Fingerprint, TrustAnchor, Username};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::events::{ConnectionState, Event};
use super::handshake_worker::HandshakeWorker;
use super::inbox::{Disposition, RUN_LIMIT};
use super::Client;
use crate::error::{Error, Result};
use crate::relay::{Outgoing, PushEvent, PushReceiver, PushSender};

/// Longest wait between reconnection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A kept token this close to expiry is not reused: a fresh login costs less than a 401 halfway through.
const TOKEN_MARGIN_SECS: u64 = 300;

/// How long received envelopes wait to be acknowledged together: one history flush and one frame for all that
/// arrive meanwhile, instead of a flush (a device sync) each. The relay keeps them that much longer; nothing waits
/// for an ack.
const ACK_LINGER: Duration = Duration::from_millis(10);

/// Writes queued frames to the socket, as many per write as are waiting.
async fn write_frames(mut sender: PushSender, mut frames: mpsc::UnboundedReceiver<Outgoing>) {
    let mut batch = Vec::new();
    while frames.recv_many(&mut batch, 256).await > 0 {
        for frame in batch.drain(..) {
            if let Err(e) = sender.feed(&frame).await {
                tracing::info!(error = %e, "socket write failed");
                return;
            }
        }
        if let Err(e) = sender.flush().await {
            tracing::info!(error = %e, "socket write failed");
            return;
        }
    }
    sender.close().await;
}

/// Aborts a background task when its owner goes away.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What one catch-up did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Synced {
    /// Envelopes handled and acknowledged.
    pub handled: usize,
    /// Envelopes left in the mailbox for a later try (a transient failure while handling them).
    pub deferred: usize,
}

impl<H: Home> Client<H> {
    /// Logs in afresh: checks the relay still serves the CA pinned at registration, then signs its challenge. The
    /// token is kept, sealed in the history, for the next run.
    pub async fn login(&self) -> Result<()> {
        let pinned = self.check_relay_ca().await?;
        self.fresh_login(&pinned).await
    }

    /// Reuses the token kept from an earlier run while it has a while left, else logs in. One-shot commands run
    /// back to back (a script calling `magpie send` in a loop) would otherwise hit the relay's login limit.
    pub(super) async fn resume_login(&self) -> Result<()> {
        let pinned = self.check_relay_ca().await?;
        if let Some((token, expires_at)) = self.store().relay_login()? {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            if expires_at > now.saturating_add(TOKEN_MARGIN_SECS) {
                self.inner.relay.resume(token);
                return Ok(());
            }
        }
        self.fresh_login(&pinned).await
    }

    /// The directory's chain for `peer`, logged in first (the directory answers logged-in users only); a token
    /// the relay no longer takes is renewed once.
    pub(super) async fn look_up(&self, peer: &Username) -> Result<Vec<magpie_proto::Certificate>> {
        if !self.inner.relay.is_logged_in() {
            self.resume_login().await?;
        }
        match self.inner.relay.directory(peer).await {
            Err(e) if e.is_unauthorized() => {
                self.login().await?;
                self.inner.relay.directory(peer).await
            }
            other => other,
        }
    }

    async fn check_relay_ca(&self) -> Result<Fingerprint> {
        let ca = self.inner.relay.ca().await?;
        let presented = TrustAnchor::new(ca)?.fingerprint()?;
        let pinned = self.inner.trust.fingerprint()?;
        if presented != pinned {
            return Err(Error::RelayCaChanged {
                pinned: pinned.to_hex(),
                presented: presented.to_hex(),
            });
        }
        Ok(pinned)
    }

    async fn fresh_login(&self, pinned: &Fingerprint) -> Result<()> {
        // The new token replaces the old one only once it is issued: requests under way (the outbox, a catch-up)
        // keep theirs meanwhile instead of finding none.
        let expires_at = self.inner.relay.login(self.inner.credential.identity(), pinned).await?;
        if let Some(token) = self.inner.relay.token() {
            self.store().set_relay_login(&token, expires_at)?;
        }
        Ok(())
    }

    /// Fetches and handles everything in our mailbox, acknowledging what was stored; then posts the outbox.
    /// What a one-shot command (the CLI) runs before and after its work.
    pub async fn sync(&self) -> Result<Synced> {
        if !self.inner.relay.is_logged_in() {
            self.resume_login().await?;
        }
        let mut synced = Synced::default();
        let mut after = 0;
        loop {
            let page = match self.inner.relay.fetch(after).await {
                Err(e) if e.is_unauthorized() => {
                    self.login().await?;
                    self.inner.relay.fetch(after).await?
                }
                other => other?,
            };
            if page.envelopes.is_empty() {
                break;
            }
            let mut done = Vec::with_capacity(page.envelopes.len());
            for (envelope, disposition) in page.envelopes.iter().zip(self.handle_envelopes(&page.envelopes).await?) {
                match disposition {
                    Disposition::Done => done.push(envelope.id),
                    Disposition::Retry => synced.deferred += 1,
                }
            }
            // Stored durably before the relay may forget it.
            self.store().flush_async().await?;
            self.inner.relay.ack(&done).await?;
            synced.handled += done.len();
            after = page.cursor;
        }
        if let Err(e) = self.handshakes_due().await {
            tracing::info!(error = %e, "handshakes due wait for the next catch-up");
        }
        self.flush_outbox().await?;
        Ok(synced)
    }

    /// Starts the handshakes that are due: with each contact whose session a restore set aside
    /// (`History::set_sessions_aside`), unless one is under way (until it ends, nothing is sealed for that
    /// contact), and the re-keys due (so that an unanswered one is retried even when nothing is sent).
    async fn handshakes_due(&self) -> Result<()> {
        let mut due = Vec::new();
        for contact in self.store().contacts()? {
            match contact.rehandshake {
                true => due.push(contact.username),
                false => self.maybe_rekey(&contact.username),
            }
        }
        if due.is_empty() {
            return Ok(());
        }
        let under_way = self.outgoing_requests()?;
        for peer in due {
            if under_way.iter().any(|(asked, _)| asked == &peer) {
                continue;
            }
            match self.request(&peer).await {
                Ok(request_id) => tracing::info!(%peer, %request_id, "new handshake after a restore"),
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => tracing::info!(%peer, error = %e, "no new handshake after a restore"),
            }
        }
        Ok(())
    }

    /// Stays connected until the returned future is dropped: logs in, follows the push socket, catches up after
    /// every (re)connect, posts the outbox, and reports [`Event::Connection`] changes. Errors that retrying cannot
    /// fix (the relay's CA changed, the history failed) end it.
    pub async fn run(&self) -> Result<()> {
        let client = self.clone();
        // Dropping `run` (the face closes the profile) must stop the outbox too: it holds the client.
        let _outbox = AbortOnDrop(tokio::spawn(async move { client.outbox_loop().await }));
        let client = self.clone();
        let _transfers = AbortOnDrop(tokio::spawn(async move { client.transfer_loop().await }));
        self.connection_loop().await
    }

    async fn connection_loop(&self) -> Result<()> {
        let mut backoff = Duration::from_millis(250);
        loop {
            self.emit(Event::Connection {
                state: ConnectionState::Connecting,
            });
            match self.follow_push().await {
                Ok(()) => backoff = Duration::from_millis(250),
                Err(e) if e.is_transient() => tracing::info!(error = %e, "relay connection lost"),
                Err(e) => {
                    self.emit(Event::Connection {
                        state: ConnectionState::Offline,
                    });
                    return Err(e);
                }
            }
            self.emit(Event::Connection {
                state: ConnectionState::Offline,
            });
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One connection: returns when the relay closes the socket (or fails transiently).
    async fn follow_push(&self) -> Result<()> {
        self.resume_login().await?;
        // Open the socket before catching up, so nothing stored in between is missed.
        let push = match self.inner.relay.push().await {
            Err(e) if e.is_unauthorized() => {
                self.login().await?;
                self.inner.relay.push().await
            }
            other => other,
        };
        let (sender, mut receiver) = push?.split();
        let (frames, frame_rx) = mpsc::unbounded_channel();
        let writer = AbortOnDrop(tokio::spawn(write_frames(sender, frame_rx)));
        *self.inner.socket.lock().map_err(|_| Error::Poisoned)? = Some(frames);
        let result = self.read_socket(&mut receiver).await;
        // Whatever was in flight is resent (same ids: the relay de-duplicates) after the reconnect. All under the
        // socket's lock, which a pass of the outbox holds while it pipelines.
        if let Ok(mut socket) = self.inner.socket.lock() {
            *socket = None;
            if let Ok(mut in_flight) = self.inner.in_flight.lock() {
                in_flight.clear();
            }
            self.restart_outbox_scan();
        }
        drop(writer);
        result
    }

    async fn read_socket(&self, receiver: &mut PushReceiver) -> Result<()> {
        self.sync().await?;
        self.emit(Event::Connection {
            state: ConnectionState::Online,
        });
        if let Err(e) = self.check_keys().await {
            tracing::info!(error = %e, "directory check after connecting failed");
        }
        let (acks, ack_rx) = mpsc::unbounded_channel::<Uuid>();
        let acker = {
            let client = self.clone();
            tokio::spawn(async move { client.ack_loop(ack_rx).await })
        };
        let worker = HandshakeWorker::start(self, acks.clone());
        // An event read while gathering envelopes, handled next.
        let mut read_ahead = None;
        let result = loop {
            let next = match read_ahead.take() {
                Some(next) => next,
                None => tokio::select! {
                    next = receiver.next() => next,
                    () = self.inner.resync.notified() => {
                        if let Err(e) = self.sync().await {
                            break Err(e);
                        }
                        continue;
                    }
                },
            };
            match next {
                Ok(Some(PushEvent::Envelope { envelope, .. })) => {
                    // Whatever else has arrived already is handled with it, in runs (one step per sender).
                    let mut envelopes = vec![envelope];
                    while envelopes.len() < RUN_LIMIT {
                        match receiver.next().now_or_never() {
                            Some(Ok(Some(PushEvent::Envelope { envelope, .. }))) => envelopes.push(envelope),
                            Some(other) => {
                                read_ahead = Some(other);
                                break;
                            }
                            None => break,
                        }
                    }
                    let in_line = worker.in_line().await;
                    let envelopes = match worker.split(self, envelopes) {
                        Ok(envelopes) => envelopes,
                        Err(e) => break Err(e),
                    };
                    let handled = self.handle_envelopes(&envelopes).await;
                    drop(in_line);
                    match handled {
                        Ok(dispositions) => {
                            for (envelope, disposition) in envelopes.iter().zip(dispositions) {
                                // One left for later stays in the mailbox; the next catch-up retries it.
                                if disposition == Disposition::Done {
                                    let _ = acks.send(envelope.id);
                                }
                            }
                        }
                        Err(e) => break Err(e),
                    }
                }
                Ok(Some(PushEvent::Accepted { id })) => {
                    if let Err(e) = self.on_socket_answer(id, None) {
                        break Err(e);
                    }
                }
                Ok(Some(PushEvent::Refused { id, code, message })) => {
                    let Some(id) = id else {
                        break Err(Error::RelayProtocol(format!("the relay refused a frame: {message}")));
                    };
                    if let Err(e) = self.on_socket_answer(id, Some((code, &message))) {
                        break Err(e);
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        worker.finish().await;
        drop(acks);
        let _ = acker.await;
        result
    }

    /// Acknowledges handled envelopes in batches: whatever arrives within [`ACK_LINGER`] of the first, on the
    /// socket (over HTTP if it just closed).
    async fn ack_loop(&self, mut ids: mpsc::UnboundedReceiver<Uuid>) {
        let limit = crate::relay::FETCH_LIMIT;
        let mut batch = Vec::new();
        while ids.recv_many(&mut batch, limit).await > 0 {
            let linger = tokio::time::sleep(ACK_LINGER);
            tokio::pin!(linger);
            while batch.len() < limit {
                let room = limit - batch.len();
                tokio::select! {
                    () = &mut linger => break,
                    more = ids.recv_many(&mut batch, room) => if more == 0 { break },
                }
            }
            // Stored durably before the relay may forget it; on failure, leave them in the mailbox.
            if let Err(e) = self.store().flush_async().await {
                tracing::warn!(error = %e, "history flush failed; not acknowledging");
                batch.clear();
                continue;
            }
            let ids = Outgoing::Ack(std::mem::take(&mut batch));
            let socket = self.inner.socket.lock().ok().and_then(|socket| socket.clone());
            let unsent = match socket {
                Some(frames) => frames.send(ids).err().map(|unsent| unsent.0),
                None => Some(ids),
            };
            if let Some(Outgoing::Ack(ids)) = unsent {
                if let Err(e) = self.inner.relay.ack(&ids).await {
                    // Not fatal: unacknowledged envelopes come again and are dropped as duplicates.
                    tracing::info!(error = %e, "ack failed");
                }
            }
        }
    }
}

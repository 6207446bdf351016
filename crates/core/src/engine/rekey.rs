//! Re-keys: a fresh handshake with a contact when the session has carried [`REKEY_AFTER_MESSAGES`] messages or
//! lasted [`REKEY_AFTER_SECS`]. The rules:
//! - either side starts one when due (so a chat where only one side talks still rotates its keys), one at a time
//!   per peer; messages keep flowing on the old keys meanwhile;
//! - when both sides ask at once, the request of the side whose name sorts first goes on and the other is dropped
//!   on both sides (see [`Client::crossing_rekey`]);
//! - a request the peer has not answered within the retry time ([`REKEY_RETRY_AFTER`]) is dropped and a new one
//!   sent (the first may have been lost);
//! - a session past twice the re-key point ([`magpie_proto::Session::exhausted`]) seals no more texts: they wait
//!   for the new session (see `waiting.rs`).
//!
//! [`REKEY_AFTER_MESSAGES`]: magpie_proto::REKEY_AFTER_MESSAGES
//! [`REKEY_AFTER_SECS`]: magpie_proto::REKEY_AFTER_SECS

use crate::store::prelude::*;
use std::time::{Duration, Instant, SystemTime};

use magpie_proto::Username;
use uuid::Uuid;

use super::handshake_state::HandshakeState;
use super::{now_secs, Client};
use crate::error::Result;

/// How long a re-key request may go unanswered before a new one replaces it.
pub const REKEY_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// What to do with a re-key request from a contact.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Crossing {
    /// No request of ours crosses it: answer it.
    None,
    /// Ours goes on: drop theirs.
    Ours,
    /// Theirs goes on: ours (this id) was dropped.
    Theirs(Uuid),
}

impl<H: Home> Client<H> {
    /// Starts a re-key with `peer` if one is due and none is under way (or the one under way went unanswered past
    /// the retry time).
    pub(super) fn maybe_rekey(&self, peer: &Username) {
        let due = self.with_session(peer, |s| Ok(s.needs_rekey(SystemTime::now())));
        if !matches!(due, Ok(Some(true))) {
            return;
        }
        let retry_after = self.rekey_retry_after();
        // Marked before anything is awaited: a thousand sends a second must not start a thousand handshakes.
        let first = self.inner.rekeying.lock().is_ok_and(|mut started| {
            let now = Instant::now();
            match started.get(peer) {
                Some(at) if now.saturating_duration_since(*at) < retry_after => false,
                _ => {
                    started.insert(peer.clone(), now);
                    true
                }
            }
        });
        if !first {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.rekey_done(peer);
            return;
        };
        match self.outstanding_request(peer) {
            // One is on its way (maybe started before a restart) and young enough: its end clears the mark.
            Ok(Some((_, sent_at))) if now_secs().saturating_sub(sent_at) < retry_after.as_secs() => return,
            Ok(Some((request_id, _))) => {
                tracing::info!(%peer, %request_id, "re-key request unanswered: a new one replaces it");
                if let Err(e) = HandshakeState::finish(self.store(), request_id) {
                    tracing::warn!(%peer, error = %e, "could not drop the unanswered re-key request");
                    return;
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(%peer, error = %e, "re-key not started");
                self.rekey_done(peer);
                return;
            }
        }
        let client = self.clone();
        let peer = peer.clone();
        runtime.spawn(async move {
            if let Err(e) = client.request(&peer).await {
                tracing::info!(%peer, error = %e, "re-key request failed");
                client.rekey_done(&peer);
            }
        });
    }

    /// A re-key with `peer` ended (established or failed): the next may start when due.
    pub(super) fn rekey_done(&self, peer: &Username) {
        if let Ok(mut rekeying) = self.inner.rekeying.lock() {
            rekeying.remove(peer);
        }
    }

    /// A re-key request from `peer` arrived: whether one of ours crosses it, and which goes on. Ours goes on if
    /// the peer accepted it already (we wait for their confirm), or if our name sorts first; else ours is dropped
    /// here, as the peer drops theirs when ours arrives.
    pub(super) fn crossing_rekey(&self, peer: &Username) -> Result<Crossing> {
        let ours = HandshakeState::under_way(self.store(), &self.inner.credential)?
            .into_iter()
            .find(|p| {
                p.peer() == peer
                    && matches!(
                        p,
                        HandshakeState::AwaitingAccept(_) | HandshakeState::AwaitingConfirm(_)
                    )
            });
        let Some(ours) = ours else {
            return Ok(Crossing::None);
        };
        if matches!(ours, HandshakeState::AwaitingAccept(_)) && self.username() > peer {
            let dropped = ours.request_id();
            HandshakeState::finish(self.store(), dropped)?;
            return Ok(Crossing::Theirs(dropped));
        }
        Ok(Crossing::Ours)
    }

    /// How long a re-key request may go unanswered (see [`REKEY_RETRY_AFTER`]).
    pub fn rekey_retry_after(&self) -> Duration {
        Duration::from_millis(self.inner.rekey_retry_ms.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Changes [`Client::rekey_retry_after`] (tests, and bots on links that lose requests).
    pub fn set_rekey_retry_after(&self, after: Duration) {
        let ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
        self.inner
            .rekey_retry_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// Our own request to `peer` that waits for their answer, and when it was made (Unix seconds).
    fn outstanding_request(&self, peer: &Username) -> Result<Option<(Uuid, u64)>> {
        Ok(HandshakeState::under_way(self.store(), &self.inner.credential)?
            .into_iter()
            .find_map(|p| match p {
                HandshakeState::AwaitingAccept(state) if state.peer() == peer => {
                    Some((state.request_id(), state.sent_at()))
                }
                _ => None,
            }))
    }
}

//! Incoming chat requests: listed from their summaries, and bounded, so that neither a peer nor the relay can grow
//! them (or make us sign) without limit. The rules:
//! - a peer keeps at most its newest [`MAX_REQUESTS_PER_PEER`] requests, and all peers together the newest
//!   [`MAX_INCOMING_REQUESTS`]; a request is dropped once older than a request may be when it arrives;
//! - a re-key from a contact (the pinned key, a session exists) is accepted without asking, at most
//!   [`AUTO_ACCEPT_BURST`] at once and [`AUTO_ACCEPTS_PER_SEC`] a second after that; beyond, it waits for the user
//!   like any request.

use crate::store::prelude::*;
use std::collections::HashMap;
use std::time::Instant;

use magpie_proto::{Fingerprint, PinCheck, Username, MAX_CLOCK_SKEW_SECS, REQUEST_MAX_AGE_SECS};
use uuid::Uuid;

use super::handshake_state::HandshakeState;
use super::{now_secs, Client};
use crate::error::{Error, Result};
use crate::history::RequestSummary;

/// The most requests one peer can have waiting: a few (a reinstall, a retry), not an inbox to fill.
pub const MAX_REQUESTS_PER_PEER: usize = 3;
/// The most requests waiting from everyone together.
pub const MAX_INCOMING_REQUESTS: usize = 1000;
/// A stored request is dropped this long after it says it was sent (no older one is taken on arrival either).
pub const REQUEST_KEPT_SECS: u64 = REQUEST_MAX_AGE_SECS + MAX_CLOCK_SKEW_SECS;
/// Re-keys a contact may have accepted without asking at once...
pub const AUTO_ACCEPT_BURST: f64 = 20.0;
/// ...and a second after that (a contact re-keys once per 1,000 messages: ten a second is far beyond any chat).
pub const AUTO_ACCEPTS_PER_SEC: f64 = 10.0;

/// A chat request as the UI lists it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RequestView {
    /// Who asks.
    pub peer: String,
    /// Their key's fingerprint (hex in JSON), verified against the relay's CA: pass it back to [`Client::accept`].
    pub fingerprint: Fingerprint,
    /// The request.
    pub request_id: Uuid,
    /// When they sent it, Unix seconds (their clock).
    pub sent_at: u64,
    /// Their key differs from the one pinned for this name (compared with the pin as it is now).
    pub key_changed: bool,
}

/// Automatic acceptances left for each contact (a token bucket).
#[derive(Debug, Default)]
pub(super) struct AutoAccepts(HashMap<Username, (f64, Instant)>);

impl AutoAccepts {
    /// Takes one acceptance for `peer` if any is left.
    fn take(&mut self, peer: &Username, now: Instant) -> bool {
        let (tokens, at) = self.0.entry(peer.clone()).or_insert((AUTO_ACCEPT_BURST, now));
        let refilled = *tokens + now.saturating_duration_since(*at).as_secs_f64() * AUTO_ACCEPTS_PER_SEC;
        *at = now;
        *tokens = refilled.min(AUTO_ACCEPT_BURST);
        if *tokens < 1.0 {
            return false;
        }
        *tokens -= 1.0;
        true
    }
}

impl<H: Home> Client<H> {
    /// Chat requests waiting for the user, oldest first. Read from their summaries (no certificate is parsed);
    /// `key_changed` compares each with the pin as it is now.
    pub fn incoming_requests(&self) -> Result<Vec<RequestView>> {
        self.index_requests()?;
        let now = now_secs();
        let mut pins = HashMap::new();
        let mut out = Vec::new();
        for request in self.store().requests()? {
            if expired(&request, now) {
                continue;
            }
            let pinned = match pins.get(&request.peer) {
                Some(pinned) => *pinned,
                None => {
                    let pinned = self.store().contact(&request.peer)?.map(|c| c.fingerprint);
                    pins.insert(request.peer.clone(), pinned);
                    pinned
                }
            };
            let key_changed = matches!(
                PinCheck::check(pinned.as_ref(), &request.fingerprint),
                PinCheck::Changed { .. }
            );
            out.push(RequestView {
                peer: request.peer.to_string(),
                fingerprint: request.fingerprint,
                request_id: request.request_id,
                sent_at: request.sent_at,
                key_changed,
            });
        }
        out.sort_by_key(|r| (r.sent_at, r.request_id));
        Ok(out)
    }

    /// The one request from `peer` that waits for the user: [`Error::NoRequest`] if none,
    /// [`Error::SeveralRequests`] if more than one (then the caller must choose by id).
    pub fn sole_request_from(&self, peer: &Username) -> Result<RequestView> {
        let mut from: Vec<_> = self
            .incoming_requests()?
            .into_iter()
            .filter(|r| r.peer == peer.as_str())
            .collect();
        match from.len() {
            0 => Err(Error::NoRequest(peer.to_string())),
            1 => Ok(from.remove(0)),
            count => Err(Error::SeveralRequests {
                peer: peer.to_string(),
                count,
            }),
        }
    }

    /// Brings the stored requests back within bounds after one was added (see the module's rules). A dropped
    /// request is remembered as ended, so a copy delivered again is not taken for a new one.
    pub(super) fn bound_requests(&self) -> Result<()> {
        self.index_requests()?;
        for request_id in requests_to_drop(self.store().requests()?, now_secs()) {
            tracing::info!(%request_id, "chat request dropped: over the limits or too old");
            HandshakeState::finish(self.store(), request_id)?;
        }
        Ok(())
    }

    /// Whether a re-key from `peer` may be accepted without asking now (see [`AUTO_ACCEPTS_PER_SEC`]).
    pub(super) fn may_auto_accept(&self, peer: &Username) -> Result<bool> {
        let mut accepts = self.inner.auto_accepts.lock().map_err(|_| Error::Poisoned)?;
        Ok(accepts.take(peer, Instant::now()))
    }

    /// Gives every incoming request stored before summaries existed its summary, once per history.
    fn index_requests(&self) -> Result<()> {
        if self.store().requests_indexed()? {
            return Ok(());
        }
        for pending in HandshakeState::all(self.store(), &self.inner.credential)? {
            if matches!(pending, HandshakeState::Incoming(_)) {
                pending.save(self.store())?;
            }
        }
        self.store().mark_requests_indexed()
    }
}

fn expired(request: &RequestSummary, now: u64) -> bool {
    now.saturating_sub(request.sent_at) > REQUEST_KEPT_SECS
}

/// Which of the `stored` requests to drop at `now`: the expired, each peer's beyond its newest
/// [`MAX_REQUESTS_PER_PEER`], and everyone's beyond the newest [`MAX_INCOMING_REQUESTS`].
pub(super) fn requests_to_drop(mut stored: Vec<RequestSummary>, now: u64) -> Vec<Uuid> {
    // Newest first; the id breaks ties so the choice does not depend on the stored order.
    stored.sort_by_key(|r| std::cmp::Reverse((r.sent_at, r.request_id)));
    let mut per_peer: HashMap<&Username, usize> = HashMap::new();
    let mut kept = 0;
    let mut drop = Vec::new();
    for request in &stored {
        let from_peer = per_peer.entry(&request.peer).or_default();
        if expired(request, now) || *from_peer >= MAX_REQUESTS_PER_PEER || kept >= MAX_INCOMING_REQUESTS {
            drop.push(request.request_id);
            continue;
        }
        *from_peer += 1;
        kept += 1;
    }
    drop
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests say what must hold by panicking")]
    use super::*;

    fn request(peer: &str, sent_at: u64) -> RequestSummary {
        RequestSummary {
            request_id: Uuid::new_v4(),
            peer: Username::canonical(peer).unwrap(),
            fingerprint: Fingerprint::from_bytes([1; 32]),
            sent_at,
        }
    }

    #[test]
    fn a_peer_keeps_its_newest_few_requests() {
        let now = 1_800_000_000;
        let stored: Vec<_> = (0..5).map(|i| request("carol", now - 10 + i)).collect();
        let oldest: Vec<_> = stored[..2].iter().map(|r| r.request_id).collect();
        let mut dropped = requests_to_drop(stored, now);
        dropped.sort();
        let mut expected = oldest;
        expected.sort();
        assert_eq!(dropped, expected);
    }

    #[test]
    fn everyone_together_keeps_the_newest_thousand() {
        let now = 1_800_000_000;
        let stored: Vec<_> = (0..MAX_INCOMING_REQUESTS as u64 + 7)
            .map(|i| request(&format!("user{i}"), now - 100_000 + i))
            .collect();
        let oldest: std::collections::HashSet<_> = stored[..7].iter().map(|r| r.request_id).collect();
        let dropped: std::collections::HashSet<_> = requests_to_drop(stored, now).into_iter().collect();
        assert_eq!(dropped, oldest);
    }

    #[test]
    fn a_request_older_than_a_request_may_be_is_dropped() {
        let now = 1_800_000_000;
        let fresh = request("dave", now - REQUEST_KEPT_SECS);
        let stale = request("erin", now - REQUEST_KEPT_SECS - 1);
        let stale_id = stale.request_id;
        assert_eq!(requests_to_drop(vec![fresh, stale], now), [stale_id]);
    }

    #[test]
    fn automatic_acceptances_run_out_and_come_back_at_the_stated_rate() {
        let mut accepts = AutoAccepts::default();
        let peer = Username::canonical("bob").unwrap();
        let start = Instant::now();
        let granted = (0..100).filter(|_| accepts.take(&peer, start)).count();
        assert_eq!(granted, AUTO_ACCEPT_BURST as usize);
        let later = start + std::time::Duration::from_millis(500);
        let granted = (0..100).filter(|_| accepts.take(&peer, later)).count();
        assert_eq!(granted, (0.5 * AUTO_ACCEPTS_PER_SEC) as usize);
        let other = Username::canonical("carol").unwrap();
        assert!(accepts.take(&other, later), "each contact has its own");
    }
}

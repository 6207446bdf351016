//! Push across relays on one PostgreSQL database: an envelope stored through one relay reaches its recipient's
//! push sockets on every other. Each relay listens for the others' announcements (`LISTEN`, one per stored
//! envelope, delivered in commit order) and, for a recipient connected to it, reads the envelope and pushes it as
//! its own. Push is a hint: when the listening connection is lost, announcements made meanwhile are lost with it,
//! so the relay ends its push connections, whose clients reconnect and fetch what they missed.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use crate::api::{AppState, PushEvent};
use crate::store::{Backend as _, PgStore};

/// Pushes what other relays on `store`'s database store, until the relay shuts down.
pub fn spawn(store: Arc<PgStore>, state: AppState) {
    tokio::spawn(async move {
        let mut shutdown = state.shutdown.subscribe();
        let mut backoff = Duration::from_millis(100);
        loop {
            match store.announcements().await {
                Ok(mut announcements) => {
                    backoff = Duration::from_millis(100);
                    tracing::info!("listening for envelopes stored through other relays");
                    loop {
                        tokio::select! {
                            next = announcements.next() => match next {
                                Some((to, seq)) => push(&store, &state, &to, seq).await,
                                None => break,
                            },
                            _ = shutdown.changed() => return,
                        }
                    }
                    tracing::warn!("lost the database's announcements; closing push connections so they catch up");
                }
                Err(e) => tracing::warn!(error = %e, "cannot listen for other relays' envelopes"),
            }
            state.hub.disconnect_all();
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    });
}

async fn push(store: &PgStore, state: &AppState, to: &str, seq: u64) {
    if state.hub.connections_of(to) == 0 {
        return;
    }
    match store.fetch_within(to, seq.saturating_sub(1), 1, usize::MAX).await {
        Ok(page) => {
            // Gone already (acknowledged through another relay): nothing to push.
            if let Some(stored) = page.first().filter(|e| e.seq == seq) {
                let pushed = state.hub.publish(to, &PushEvent::envelope(stored));
                state.metrics.envelopes_pushed.fetch_add(pushed, Relaxed);
            }
        }
        Err(e) => tracing::warn!(error = %e, to, "cannot read an envelope another relay stored"),
    }
}

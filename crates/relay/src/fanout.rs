//! Push across relays on one PostgreSQL database: an envelope stored through one relay reaches its recipient's
//! push sockets on every other. Each relay listens for the others' announcements (`LISTEN`, one entry per stored
//! envelope, delivered in commit order) and reads those of recipients connected to it, a batch of announcements
//! with one query, and pushes them as its own. Push is a hint: when the listening connection is lost,
//! announcements made meanwhile are lost with it, so the relay ends its push connections, whose clients reconnect
//! and fetch what they missed.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use crate::api::{AppState, PushEvent};
use crate::store::PgStore;

/// Announcements handled together, with one query.
const MOST_AT_ONCE: usize = 512;

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
                            next = announcements.next_batch(MOST_AT_ONCE) => match next {
                                Some(batch) => push(&store, &state, batch).await,
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

/// Pushes the announced envelopes whose recipients are connected here, read in one query.
async fn push(store: &PgStore, state: &AppState, mut announced: Vec<(String, u64)>) {
    announced.retain(|(to, _)| state.hub.connections_of(to) > 0);
    if announced.is_empty() {
        return;
    }
    match store.announced(&announced).await {
        // Those acknowledged meanwhile through another relay are not in it: nothing to push.
        Ok(envelopes) => {
            for stored in &envelopes {
                let pushed = state.hub.publish(&stored.to, &PushEvent::envelope(stored));
                state.metrics.envelopes_pushed.fetch_add(pushed, Relaxed);
            }
        }
        Err(e) => tracing::warn!(error = %e, envelopes = announced.len(), "cannot read envelopes other relays stored"),
    }
}

//! Push on one PostgreSQL database: an envelope stored through any relay reaches its recipient's push sockets on
//! every relay, this one included. Each relay listens for the announcements (`LISTEN`, one entry per stored
//! envelope, delivered in commit order) and pushes those of recipients connected to it, in that order: a
//! recipient's envelopes commit in seq order, so its sockets get them in the order they were stored, whichever
//! relay stored each (see `store/pg/held.rs`). Push is a hint: when the listening connection is lost,
//! announcements made meanwhile are lost with it, so the relay ends its push connections, whose clients reconnect
//! and fetch what they missed.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use crate::api::{AppState, PushEvent};
use crate::store::{Announced, PgStore};

/// Announcements handled together, with at most one query.
const MOST_AT_ONCE: usize = 512;

/// Pushes what the relays on `store`'s database store, until the relay shuts down.
pub fn spawn(store: Arc<PgStore>, state: AppState) {
    tokio::spawn(async move {
        let mut shutdown = state.shutdown.subscribe();
        let mut backoff = Duration::from_millis(100);
        loop {
            match store.announcements().await {
                Ok(mut announcements) => {
                    backoff = Duration::from_millis(100);
                    tracing::info!("listening for stored envelopes");
                    loop {
                        tokio::select! {
                            next = announcements.next_batch(MOST_AT_ONCE) => match next {
                                Some(batch) => push(&store, &state, &batch).await,
                                None => break,
                            },
                            _ = shutdown.changed() => return,
                        }
                    }
                    tracing::warn!("lost the database's announcements; closing push connections so they catch up");
                }
                Err(e) => tracing::warn!(error = %e, "cannot listen for stored envelopes"),
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

/// Pushes the announced envelopes whose recipients are connected here.
async fn push(store: &PgStore, state: &AppState, announced: &[Announced]) {
    let connected = |to: &str| state.hub.connections_of(to) > 0;
    match store.to_push(announced, connected).await {
        // Those acknowledged meanwhile through another relay are not in it: nothing to push.
        Ok(envelopes) => {
            for stored in &envelopes {
                let pushed = state.hub.publish(&stored.to, &PushEvent::envelope(stored));
                state.metrics.envelopes_pushed.fetch_add(pushed, Relaxed);
            }
        }
        Err(e) => {
            // Pushing the rest would let them overtake the unread ones: these recipients catch up instead.
            let recipients: BTreeSet<&str> = announced.iter().map(|(to, _)| to.as_str()).collect();
            tracing::warn!(error = %e, envelopes = announced.len(), "cannot read stored envelopes; closing their recipients' push connections");
            for to in recipients {
                state.hub.disconnect(to);
            }
        }
    }
}

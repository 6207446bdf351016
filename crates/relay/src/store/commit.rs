//! Group commit: many requests waiting for durability share one [`Store::flush`].
//!
//! A request writes its envelope, then calls [`GroupCommit::durable`]. One flusher thread takes every
//! waiter queued so far, flushes once, and answers them all; requests arriving during that flush form the
//! next group. Every waiter's write happened before it queued, and its group's flush starts after it
//! queued, so the flush covers the write. At most one flush runs at a time, so under load the number of
//! flushes per second is bounded by the disk, not by the request rate.
//!
//! Under load a flush covering 3 requests costs nearly what one covering 300 does (each is a
//! `sync_file_range` and a device doorbell, expensive in a VM), so when the previous group had company
//! the thread lingers `delay` before draining the queue: a little latency for much bigger groups. A lone
//! request on an idle relay never waits.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::{Store, StoreError, StoreResult};
use crate::metrics::Metrics;

type Waiter = oneshot::Sender<StoreResult<()>>;

/// A handle to the flusher thread; cheap to clone. The thread ends when the last handle is dropped.
#[derive(Debug, Clone)]
pub struct GroupCommit {
    queue: mpsc::UnboundedSender<Waiter>,
}

impl GroupCommit {
    /// Starts the flusher thread for `store`. The thread holds it weakly, so dropping the relay's state
    /// closes the database at once (a restart in the same process can reopen it).
    pub fn start(store: &Arc<dyn Store>, metrics: Arc<Metrics>, delay: Duration) -> std::io::Result<Self> {
        let (queue, rx) = mpsc::unbounded_channel();
        let store = Arc::downgrade(store);
        std::thread::Builder::new()
            .name("magpie-flush".into())
            .spawn(move || flusher(store, metrics, rx, delay))?;
        Ok(Self { queue })
    }

    /// Resolves once every write made before this call is durable.
    pub async fn durable(&self) -> StoreResult<()> {
        self.durable_later().await
    }

    /// Joins the queue now and returns the wait: what was written before this call is covered, so a caller can
    /// register several writes in order and await them in that order without extra flushes.
    pub fn durable_later(&self) -> impl std::future::Future<Output = StoreResult<()>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let queued = self
            .queue
            .send(tx)
            .map_err(|_| StoreError::Backend("flusher stopped".into()));
        async move {
            queued?;
            rx.await.map_err(|_| StoreError::Backend("flusher stopped".into()))?
        }
    }
}

fn flusher(store: Weak<dyn Store>, metrics: Arc<Metrics>, mut rx: mpsc::UnboundedReceiver<Waiter>, delay: Duration) {
    let mut group = Vec::new();
    let mut busy = false;
    while let Some(first) = rx.blocking_recv() {
        group.push(first);
        if busy && !delay.is_zero() {
            std::thread::sleep(delay);
        }
        while let Ok(more) = rx.try_recv() {
            group.push(more);
        }
        let started = Instant::now();
        let result = match store.upgrade() {
            Some(store) => store.flush(),
            None => Err(StoreError::Backend("store closed".into())),
        };
        metrics.record_flush(started.elapsed(), group.len());
        busy = group.len() > 1;
        if let Err(e) = &result {
            tracing::error!(error = %e, waiters = group.len(), "store flush failed");
        }
        for waiter in group.drain(..) {
            // A waiter whose request was cancelled has gone; nothing to tell it.
            let _ = waiter.send(result.clone());
        }
    }
}

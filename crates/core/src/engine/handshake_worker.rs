//! Handshake steps off the push path. A step costs an RSA signature or decryption (about 0.75 ms each here), and a
//! re-key comes every 1,000 messages: handled in line, each held up the texts that arrived behind it. Pushed steps go
//! to a task of their own, in order, while messages sealed with the sender's current session go on being handled. What
//! else comes from that sender meanwhile (a text for the session the step is setting up, another step) queues
//! behind the step, and once a message of theirs is queued so is all that follows: per sender, nothing that depends on
//! a step is handled before it, and messages never overtake messages: a message set aside waits until the envelopes
//! handled in line before it (`HandshakeWorker::in_line`) are done, so a text of the old session read just before it is not
//! handled after it.

use std::collections::HashMap;
use std::sync::Arc;

use crate::lock_order::{Rank, Ranked};
use crate::store::Home;

use magpie_proto::{Envelope, EnvelopeKind};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::inbox::Disposition;
use super::Client;
use crate::error::{Error, Result};

/// Envelopes set aside and not handled yet, by sender.
type Waiting = Arc<Ranked<HashMap<String, Counts>>>;

#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    steps: usize,
    messages: usize,
}

/// The task handling steps set aside; it ends (or is stopped) with the connection.
pub(super) struct HandshakeWorker {
    queue: mpsc::UnboundedSender<Envelope>,
    waiting: Waiting,
    task: tokio::task::JoinHandle<()>,
    /// Held while envelopes are handled in line; a message set aside takes it before it is handled.
    in_line: InLine,
}

/// Held by whoever handles messages: the connection, for what it handles in line, or the task, for one set aside.
type InLine = Arc<tokio::sync::Mutex<()>>;

impl Drop for HandshakeWorker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HandshakeWorker {
    /// Starts the task; what it handles is acknowledged through `acks`.
    pub(super) fn start<H: Home>(client: &Client<H>, acks: mpsc::UnboundedSender<Uuid>) -> Self {
        let (queue, steps) = mpsc::unbounded_channel();
        let waiting = Arc::new(Ranked::with_default(Rank::WorkerCounts));
        let in_line = InLine::default();
        let task = {
            let (client, waiting, in_line) = (client.clone(), waiting.clone(), in_line.clone());
            tokio::spawn(async move { handle_steps(client, steps, acks, waiting, in_line).await })
        };
        Self {
            queue,
            waiting,
            task,
            in_line,
        }
    }

    /// To hold while handling what [`HandshakeWorker::split`] returned: messages set aside meanwhile wait for it.
    pub(super) async fn in_line(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.in_line.clone().lock_owned().await
    }

    /// Sets aside the steps among `envelopes`, and what comes after one from the same sender other than messages of
    /// its current session; returns the rest, in order, to handle now.
    pub(super) fn split<H: Home>(&self, client: &Client<H>, envelopes: Vec<Envelope>) -> Result<Vec<Envelope>> {
        let mut now = Vec::with_capacity(envelopes.len());
        for envelope in envelopes {
            let waiting = self.waiting_from(&envelope.from)?;
            let to_worker = match envelope.kind {
                EnvelopeKind::Message => {
                    waiting.messages > 0 || (waiting.steps > 0 && client.in_current_session(&envelope)?.is_none())
                }
                _ => true,
            };
            if !to_worker {
                now.push(envelope);
                continue;
            }
            count(&self.waiting, &envelope, |n| n + 1)?;
            if let Err(unsent) = self.queue.send(envelope) {
                // The task has ended (a connection closing): handled here after all, in order.
                count(&self.waiting, &unsent.0, |n| n.saturating_sub(1))?;
                now.push(unsent.0);
            }
        }
        Ok(now)
    }

    /// Lets the task finish what it holds.
    pub(super) async fn finish(mut self) {
        // Ours is the only sender: with it gone, the task ends once its queue is empty.
        let (queue, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.queue, queue));
        let _ = (&mut self.task).await;
    }

    fn waiting_from(&self, from: &str) -> Result<Counts> {
        let waiting = self.waiting.lock().map_err(|_| Error::Poisoned)?;
        Ok(waiting.get(from).copied().unwrap_or_default())
    }
}

/// Changes the count of `envelope`'s kind from its sender by `change`.
fn count(waiting: &Waiting, envelope: &Envelope, change: impl FnOnce(usize) -> usize) -> Result<()> {
    let mut waiting = waiting.lock().map_err(|_| Error::Poisoned)?;
    let counts = waiting.entry(envelope.from.clone()).or_default();
    match envelope.kind {
        EnvelopeKind::Message => counts.messages = change(counts.messages),
        _ => counts.steps = change(counts.steps),
    }
    if counts.messages == 0 && counts.steps == 0 {
        waiting.remove(&envelope.from);
    }
    Ok(())
}

async fn handle_steps<H: Home>(
    client: Client<H>,
    mut steps: mpsc::UnboundedReceiver<Envelope>,
    acks: mpsc::UnboundedSender<Uuid>,
    waiting: Waiting,
    in_line: InLine,
) {
    while let Some(envelope) = steps.recv().await {
        // A step runs beside what is handled in line (that is the point); a message waits for it to be done.
        let _in_line = match envelope.kind {
            EnvelopeKind::Message => Some(in_line.clone().lock_owned().await),
            _ => None,
        };
        match client.handle_envelopes(std::slice::from_ref(&envelope)).await {
            Ok(dispositions) if dispositions == [Disposition::Done] => {
                let _ = acks.send(envelope.id);
            }
            // Left in the mailbox for a later catch-up.
            Ok(_) => {}
            Err(e) => {
                // Left in the mailbox too; reading it again retries it (and a lasting fault ends the connection).
                tracing::warn!(error = %e, from = %envelope.from, "handling a handshake step failed");
                client.inner.resync.notify_one();
            }
        }
        if count(&waiting, &envelope, |n| n.saturating_sub(1)).is_err() {
            return;
        }
    }
}

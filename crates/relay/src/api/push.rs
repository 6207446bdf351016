//! The push channel: a WebSocket at `GET /v1/push` (bearer token in the upgrade request).
//!
//! Each stored envelope is sent, as JSON text `{"type":"envelope","cursor":…,"envelope":{…}}`, to every
//! push connection of its recipient as soon as it is stored: before it is durable on an embedded store (see
//! [`super::envelopes::stage`] for why that loses nothing), once announced on PostgreSQL (`fanout.rs`). Push is a hint, not the delivery
//! guarantee: a client that was offline, or whose connection lagged, catches up with `GET /v1/envelopes`.
//! A connection that falls more than [`QUEUE_DEPTH`] events behind is closed rather than silently skipping,
//! so the client knows to catch up; so is one whose client takes nothing for `--push-write-timeout`. What a
//! connection holds is bounded: its events and answers ([`QUEUE_DEPTH`] each) and its frames read ahead (as
//! many): a client that sends without reading the answers is read no further until it does.
//!
//! A client may also send over the socket, which costs far less per envelope than an HTTP request: a text
//! frame `{"type":"send", id, to, kind, body}` (the fields of `POST /v1/envelopes`) is answered, once
//! durable, by `{"type":"accepted", id, cursor, created}` or `{"type":"error", id, code, message}` with the
//! same codes as HTTP. Answers, and the pushes to recipients, follow the order of the frames. A sender over its
//! rate is slowed rather than refused (`rate_limited` is HTTP's answer): the relay reads its next frame once the
//! rate allows. A refused frame would be resent after later ones were stored, and that chat would then arrive out
//! of order, beyond the receiver's skip window a message that can no longer be opened.
//!
//! Acknowledging works the same way: `{"type":"ack","ids":[…]}` (the body of `POST /v1/envelopes/ack`) deletes
//! those envelopes from the caller's mailbox and is answered, in frame order, by `{"type":"acked","acked":n}`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::RwLock;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use futures_util::{SinkExt as _, StreamExt as _};
use magpie_api::{paths, AckResponse, ApiError, ClientFrame, RelayFrame};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::envelopes::{acknowledge, commit_after, stage_paced, wire};
use super::{AppState, AuthUser};
use crate::error::Error;
use crate::store::StoredEnvelope;

#[doc(hidden)]
pub mod fuzzing;

/// Events buffered per connection before it is closed as too slow.
pub const QUEUE_DEPTH: usize = 4096;
const PING_EVERY: Duration = Duration::from_secs(30);

/// One serialized push event, shared by every connection it goes to.
#[derive(Debug, Clone)]
pub struct PushEvent(Utf8Bytes);

impl PushEvent {
    /// The event announcing a stored envelope (it carries the envelope itself).
    pub fn envelope(e: &StoredEnvelope) -> Self {
        let event = RelayFrame::Envelope {
            cursor: e.seq,
            envelope: wire(e),
        };
        // Serializing plain strings and numbers cannot fail; an empty text would only be ignored.
        Self(serde_json::to_string(&event).unwrap_or_default().into())
    }
}

/// A connection's id and event queue.
type Subscriber = (u64, mpsc::Sender<PushEvent>);

/// An answer to a [`ClientFrame`].
fn refusal(id: Option<Uuid>, e: &Error) -> RelayFrame<'static> {
    let message = match e {
        Error::Store(_) | Error::Internal(_) => "retry later".to_owned(),
        other => other.to_string(),
    };
    RelayFrame::Error {
        id,
        code: e.status_code().1,
        message,
    }
}

fn text(frame: &RelayFrame<'_>) -> Utf8Bytes {
    serde_json::to_string(frame).unwrap_or_default().into()
}

/// A handled frame waiting to be answered, in the order the client sent it.
enum Staged {
    /// A send, answered once durable.
    Send {
        id: Uuid,
        staged: Result<super::envelopes::StagedSend, Error>,
        durable: crate::store::Durable,
    },
    /// Answered as it is (an ack, an unreadable frame).
    Done(RelayFrame<'static>),
}

/// Handles one text frame from the client: checks and stages a send now, in frame order, and joins the group
/// commit; [`commit_in_order`] answers it once durable. An ack is done at once: it needs no durability, since an
/// ack lost to a crash only brings envelopes the client drops as duplicates.
async fn on_frame(state: &AppState, user: &str, text: &str, staged: &mpsc::Sender<Staged>) {
    let handled = match serde_json::from_str::<ClientFrame>(text) {
        Ok(ClientFrame::Send(request)) => {
            state.pace(&state.send_limit, user).await;
            state
                .pace_cost(&state.send_bytes, user, request.body.len() as f64)
                .await;
            Staged::Send {
                id: request.id,
                // Fields are evaluated in order: the wait is joined after the write.
                staged: stage_paced(state, user.to_owned(), request).await,
                durable: state.store.durable_later(),
            }
        }
        Ok(ClientFrame::Ack(request)) => {
            // Acks cost store work too: a flood of them is paced like sends.
            state.pace(&state.send_limit, user).await;
            Staged::Done(match acknowledge(state, user, &request).await {
                Ok(acked) => RelayFrame::Acked(AckResponse { acked }),
                Err(e) => refusal(None, &e),
            })
        }
        Err(e) => Staged::Done(refusal(None, &Error::BadRequest(e.to_string()))),
    };
    // Bounded: while answers wait for a client that does not read them, its frames wait unread.
    let _ = staged.send(handled).await;
}

/// Answers staged frames in the order they came, once durable: frames of one group commit become durable
/// together, so waiting in order costs nothing. (Staging pushed them already, in frame order, where the store
/// answered at once; on PostgreSQL they are pushed as their group is announced.)
async fn commit_in_order(state: AppState, mut staged: mpsc::Receiver<Staged>, replies: mpsc::Sender<Utf8Bytes>) {
    while let Some(handled) = staged.recv().await {
        let reply = match handled {
            Staged::Send {
                id,
                staged: Ok(staged),
                durable,
            } => {
                let committed = match staged.stored(&state).await {
                    Ok(inserted) => commit_after(&state, id, inserted, durable).await,
                    Err(e) => Err(e),
                };
                match committed {
                    Ok(accepted) => RelayFrame::Accepted(accepted),
                    Err(e) => refusal(Some(id), &e),
                }
            }
            Staged::Send { id, staged: Err(e), .. } => refusal(Some(id), &e),
            Staged::Done(reply) => reply,
        };
        // The sender may have hung up: its answer has nowhere to go, and its envelopes were pushed already.
        let _ = replies.send(text(&reply)).await;
    }
}

/// Who is connected, by username.
#[derive(Debug, Default)]
pub struct Hub {
    connections: RwLock<HashMap<String, Vec<Subscriber>>>,
    next_id: AtomicU64,
}

impl Hub {
    fn subscribe(&self, user: &str) -> (u64, mpsc::Receiver<PushEvent>) {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let id = self.next_id.fetch_add(1, Relaxed);
        let mut map = self.connections.write().unwrap_or_else(|p| p.into_inner());
        map.entry(user.to_owned()).or_default().push((id, tx));
        (id, rx)
    }

    fn unsubscribe(&self, user: &str, id: u64) {
        let mut map = self.connections.write().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = map.get_mut(user) {
            list.retain(|(i, _)| *i != id);
            if list.is_empty() {
                map.remove(user);
            }
        }
    }

    /// Queues `event` on each of `user`'s connections; returns how many took it. A full queue drops
    /// that connection's sender, which ends the connection.
    pub fn publish(&self, user: &str, event: &PushEvent) -> u64 {
        let mut lagging = Vec::new();
        let mut delivered = 0;
        {
            let map = self.connections.read().unwrap_or_else(|p| p.into_inner());
            for (id, tx) in map.get(user).into_iter().flatten() {
                match tx.try_send(event.clone()) {
                    Ok(()) => delivered += 1,
                    Err(_) => lagging.push(*id),
                }
            }
        }
        for id in lagging {
            tracing::info!(user, connection = id, "push connection lagging; closing it");
            self.unsubscribe(user, id);
        }
        delivered
    }

    /// Ends `user`'s push connections (their clients reconnect and fetch what they missed).
    pub fn disconnect(&self, user: &str) {
        let mut map = self.connections.write().unwrap_or_else(|p| p.into_inner());
        // Dropping a connection's sender ends it.
        map.remove(user);
    }

    /// Ends every push connection (their clients reconnect and fetch what they missed).
    pub fn disconnect_all(&self) {
        let mut map = self.connections.write().unwrap_or_else(|p| p.into_inner());
        // Dropping a connection's sender ends it.
        map.clear();
    }

    /// Open connections of `user`.
    pub fn connections_of(&self, user: &str) -> usize {
        let map = self.connections.read().unwrap_or_else(|p| p.into_inner());
        map.get(user).map_or(0, Vec::len)
    }
}

/// The smallest frame cap: well above what a client's largest message makes (32 KiB of text, base64 twice).
const MIN_FRAME_CAP: usize = 1024 * 1024;

/// A push socket's read buffer. tungstenite's 128 KiB default would cost 1.3 GB for 10,000 idle clients, and it
/// zeroes the whole buffer on every read; it grows for a frame that needs more.
pub const READ_BUFFER_BYTES: usize = 4 * 1024;
/// A push socket's write buffer (frames written with one flush).
pub const WRITE_BUFFER_BYTES: usize = 16 * 1024;

/// The push socket.
#[utoipa::path(get, path = paths::PUSH, tag = "mailbox", security(("bearer" = [])),
    description = "A WebSocket (bearer token in the upgrade request). The relay sends a `RelayFrame` text frame \
        per envelope stored for the caller (`envelope`), and answers the client's `ClientFrame`s (`send` with \
        `accepted` or `error`, `ack` with `acked` or `error`) in the order they came. See the schemas \
        `ClientFrame` and `RelayFrame`.",
    responses(
        (status = 101, description = "switching to WebSocket"),
        (status = 400, description = "not a WebSocket upgrade", body = ApiError),
        (status = 401, description = "no or a bad token", body = ApiError),
    ))]
pub(crate) async fn connect(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, Error> {
    let ws = ws.map_err(|r| Error::BadRequest(format!("expected a WebSocket upgrade: {}", r.body_text())))?;
    // Frames somewhat over the envelope limit are read and refused one by one (the sender marks that message
    // failed); only a frame over this cap drops the connection, which the client would resend into forever.
    let max_frame = super::envelope_body_limit(&state.config).max(MIN_FRAME_CAP);
    Ok(ws
        .max_message_size(max_frame)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .on_upgrade(move |socket| serve(state, me, socket)))
}

/// Most frames written with one flush.
const WRITE_BATCH: usize = 64;

/// `first`, then whatever else is already queued (up to [`WRITE_BATCH`]): under load, one flush (one syscall)
/// carries them all. `next` takes one more queued frame, if any.
fn drain_into(first: Utf8Bytes, mut next: impl FnMut() -> Option<Utf8Bytes>) -> Vec<Utf8Bytes> {
    let mut batch = vec![first];
    while batch.len() < WRITE_BATCH {
        match next() {
            Some(more) => batch.push(more),
            None => break,
        }
    }
    batch
}

/// Writes `batch`; `false` when the socket failed, or when the client did not take it within `stall` (it stopped
/// reading: holding its frames would grow the relay's memory, and it catches up over HTTP when it comes back).
async fn send_batch(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    batch: Vec<Utf8Bytes>,
    stall: Duration,
) -> bool {
    let mut frames = futures_util::stream::iter(batch.into_iter().map(|t| Ok(Message::Text(t))));
    match tokio::time::timeout(stall, sink.send_all(&mut frames)).await {
        Ok(sent) => sent.is_ok(),
        Err(_) => {
            tracing::info!("push client stopped reading; closing its connection");
            false
        }
    }
}

/// Handles the client's frames in order until it closes the socket.
async fn read_frames(
    state: AppState,
    user: String,
    mut stream: futures_util::stream::SplitStream<WebSocket>,
    staged: mpsc::Sender<Staged>,
) {
    while let Some(Ok(message)) = stream.next().await {
        match message {
            Message::Text(text) => on_frame(&state, &user, &text, &staged).await,
            Message::Close(_) => break,
            // Pings are answered by tungstenite.
            _ => {}
        }
    }
}

async fn serve(state: AppState, user: String, socket: WebSocket) {
    let (conn, mut events) = state.hub.subscribe(&user);
    state.metrics.push_connections.fetch_add(1, Relaxed);
    tracing::debug!(user, connection = conn, "push connected");
    let mut shutdown = state.shutdown.subscribe();
    let (mut sink, stream) = socket.split();
    let (replies, mut answers) = mpsc::channel::<Utf8Bytes>(QUEUE_DEPTH);
    let (staged, staged_rx) = mpsc::channel(QUEUE_DEPTH);
    // Not aborted with the connection: it ends once it has answered what was staged (`staged` closes its queue).
    tokio::spawn(commit_in_order(state.clone(), staged_rx, replies));
    // Reading is a task of its own: a sender held to its rate waits there while its pushes and answers flow on.
    let mut reading = tokio::spawn(read_frames(state.clone(), user.clone(), stream, staged));
    let stall = Duration::from_secs(state.config.push_write_timeout_secs.max(1));
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.reset();
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(PushEvent(text)) => {
                    let batch = drain_into(text, || events.try_recv().map(|PushEvent(t)| t).ok());
                    if !send_batch(&mut sink, batch, stall).await {
                        break;
                    }
                }
                // Dropped by the hub as lagging: close so the client reconnects and catches up.
                None => {
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
            },
            Some(answer) = answers.recv() => {
                // One group commit answers a sender's whole window at once.
                let batch = drain_into(answer, || answers.try_recv().ok());
                if !send_batch(&mut sink, batch, stall).await {
                    break;
                }
            }
            // The client closed, or its stream failed.
            _ = &mut reading => break,
            _ = ping.tick() => {
                let ping = tokio::time::timeout(stall, sink.send(Message::Ping(Default::default())));
                if !matches!(ping.await, Ok(Ok(()))) {
                    break;
                }
            }
            _ = async { shutdown.wait_for(|stop| *stop).await.is_ok() } => {
                let _ = sink.send(Message::Close(None)).await;
                break;
            }
        }
    }
    reading.abort();
    state.hub.unsubscribe(&user, conn);
    state.metrics.push_connections.fetch_sub(1, Relaxed);
    tracing::debug!(user, connection = conn, "push disconnected");
}

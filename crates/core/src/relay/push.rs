//! The relay's socket (`GET /v1/push`, WebSocket): new envelopes arrive as they are stored, and envelopes go out
//! as pipelined `send` frames, each answered once durable (far cheaper than one HTTP request per envelope; the
//! relay stages frames in order, so a chat keeps its order). Acknowledgements go out as `ack` frames.
//!
//! Push is a hint, not the delivery guarantee: the engine fetches its mailbox after every (re)connect, and the relay
//! closes a connection that lags rather than skip events, so nothing depends on a frame arriving.

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use magpie_api::{AckRequest, ClientFrame, ErrorCode, RelayFrame, SendResponse, WireEnvelope};
use magpie_proto::Envelope;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

use crate::error::{Error, Result};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What the relay says on the socket.
#[derive(Debug)]
pub enum PushEvent {
    /// A new envelope in our mailbox, at this cursor.
    Envelope {
        /// Its place in the mailbox.
        cursor: u64,
        /// The envelope.
        envelope: Envelope,
    },
    /// An envelope we sent on the socket is stored durably (the socket's 202).
    Accepted {
        /// Its id.
        id: Uuid,
    },
    /// An envelope we sent on the socket was refused, with the HTTP API's error code.
    Refused {
        /// Its id (absent when the frame itself was unreadable).
        id: Option<Uuid>,
        /// The relay's error code.
        code: ErrorCode,
        /// The relay's explanation.
        message: String,
    },
}

/// What goes out on the socket.
#[derive(Debug)]
pub enum Outgoing {
    /// An envelope to store and deliver (answered by [`PushEvent::Accepted`] or [`PushEvent::Refused`]).
    Send(Envelope),
    /// Envelopes of our mailbox that are stored on our side: the relay may delete them. Nothing waits for the
    /// answer; an ack lost with the connection only brings those envelopes again, which are dropped as duplicates.
    Ack(Vec<Uuid>),
}

/// An open socket, before it is split into its two halves.
pub struct PushConnection {
    socket: Socket,
}

impl std::fmt::Debug for PushConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushConnection").finish_non_exhaustive()
    }
}

/// tungstenite zeroes its whole read buffer on every read: its 128 KiB default cost a few µs per frame.
/// The relay's sizes (`magpie_relay::api::READ_BUFFER_BYTES`); the read buffer grows for a frame that needs more.
fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(16 * 1024)
}

impl PushConnection {
    pub(super) async fn connect(url: &str, bearer: &str) -> Result<Self> {
        let unreachable = |reason: String| Error::RelayUnreachable {
            url: url.to_owned(),
            reason,
        };
        let mut request = url.into_client_request().map_err(|e| unreachable(e.to_string()))?;
        let value = HeaderValue::from_str(bearer).map_err(|_| Error::RelayProtocol("token is not a header".into()))?;
        request.headers_mut().insert("authorization", value);
        // Nagle off (`true`): a text is one small frame and must not wait 40 ms for the previous one's ACK.
        let connected = tokio_tungstenite::connect_async_with_config(request, Some(socket_config()), true).await;
        let (socket, _) = connected.map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(response) if response.status() == 401 => Error::Relay {
                status: 401,
                code: ErrorCode::Unauthorized,
                message: "the push socket refused our token".into(),
            },
            other => unreachable(other.to_string()),
        })?;
        Ok(Self { socket })
    }

    /// The sending and receiving halves, to use from two tasks.
    pub fn split(self) -> (PushSender, PushReceiver) {
        let (sink, stream) = self.socket.split();
        (PushSender { sink }, PushReceiver { stream })
    }

    /// The next event; `Ok(None)` when the relay closed the socket (reconnect and catch up).
    pub async fn next(&mut self) -> Result<Option<PushEvent>> {
        next_event(&mut self.socket).await
    }
}

/// The writing half.
pub struct PushSender {
    sink: SplitSink<Socket, Message>,
}

impl std::fmt::Debug for PushSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushSender").finish_non_exhaustive()
    }
}

impl PushSender {
    /// Queues a frame on the socket without waiting for its answer ([`PushEvent::Accepted`] comes later).
    /// Frames are buffered; [`PushSender::flush`] sends them.
    pub async fn feed(&mut self, outgoing: &Outgoing) -> Result<()> {
        let frame = match outgoing {
            Outgoing::Send(envelope) => ClientFrame::Send(WireEnvelope::from_envelope(envelope)),
            Outgoing::Ack(ids) => ClientFrame::Ack(AckRequest { ids: ids.clone() }),
        };
        let text = serde_json::to_string(&frame).map_err(|e| Error::RelayProtocol(e.to_string()))?;
        self.sink.feed(Message::text(text)).await.map_err(socket_error)
    }

    /// Sends what [`PushSender::feed`] buffered.
    pub async fn flush(&mut self) -> Result<()> {
        self.sink.flush().await.map_err(socket_error)
    }

    /// Closes the socket politely.
    pub async fn close(mut self) {
        let _ = self.sink.close().await;
    }
}

/// The reading half.
pub struct PushReceiver {
    stream: SplitStream<Socket>,
}

impl std::fmt::Debug for PushReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushReceiver").finish_non_exhaustive()
    }
}

impl PushReceiver {
    /// The next event; `Ok(None)` when the relay closed the socket.
    pub async fn next(&mut self) -> Result<Option<PushEvent>> {
        next_event(&mut self.stream).await
    }
}

async fn next_event<S>(stream: &mut S) -> Result<Option<PushEvent>>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    // Pings are answered by tungstenite itself on the next read or write.
    while let Some(message) = stream.next().await {
        match message.map_err(socket_error)? {
            Message::Text(text) => match serde_json::from_str::<RelayFrame<'_>>(&text) {
                Ok(RelayFrame::Envelope { cursor, envelope }) => {
                    let envelope = envelope
                        .into_envelope()
                        .ok_or_else(|| Error::RelayProtocol("a pushed envelope without a sender or body".into()))?;
                    return Ok(Some(PushEvent::Envelope { cursor, envelope }));
                }
                Ok(RelayFrame::Accepted(SendResponse { id, .. })) => return Ok(Some(PushEvent::Accepted { id })),
                Ok(RelayFrame::Error { id, code, message }) => {
                    return Ok(Some(PushEvent::Refused { id, code, message }))
                }
                Ok(RelayFrame::Acked(_) | RelayFrame::Unknown) => {}
                Err(e) => return Err(Error::RelayProtocol(format!("push frame: {e}"))),
            },
            Message::Close(_) => return Ok(None),
            _ => {}
        }
    }
    Ok(None)
}

fn socket_error(e: tokio_tungstenite::tungstenite::Error) -> Error {
    Error::RelayUnreachable {
        url: "push socket".into(),
        reason: e.to_string(),
    }
}

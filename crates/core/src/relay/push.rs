//! The relay's push socket (`GET /v1/push`, WebSocket): new envelopes arrive as they are stored.
//!
//! Push is a hint, not the delivery guarantee: the engine fetches its mailbox after every (re)connect, and the relay
//! closes a connection that lags rather than skip events, so nothing depends on a frame arriving.

use futures_util::{SinkExt as _, StreamExt as _};
use magpie_proto::Envelope;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::{Error, Result};

/// What the relay pushes.
#[derive(Debug)]
pub enum PushEvent {
    /// A new envelope in our mailbox, at this cursor.
    Envelope {
        /// Its place in the mailbox.
        cursor: u64,
        /// The envelope.
        envelope: Envelope,
    },
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Frame {
    Envelope {
        cursor: u64,
        envelope: Envelope,
    },
    #[serde(other)]
    Other,
}

/// An open push socket.
pub struct PushConnection {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl std::fmt::Debug for PushConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushConnection").finish_non_exhaustive()
    }
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
        let (socket, _) = tokio_tungstenite::connect_async(request).await.map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(response) if response.status() == 401 => Error::Relay {
                status: 401,
                code: "unauthorized".into(),
                message: "the push socket refused our token".into(),
            },
            other => unreachable(other.to_string()),
        })?;
        Ok(Self { socket })
    }

    /// The next event; `Ok(None)` when the relay closed the socket (reconnect and catch up).
    pub async fn next(&mut self) -> Result<Option<PushEvent>> {
        while let Some(message) = self.socket.next().await {
            let message = message.map_err(|e| Error::RelayUnreachable {
                url: "push socket".into(),
                reason: e.to_string(),
            })?;
            match message {
                Message::Text(text) => match serde_json::from_str::<Frame>(&text) {
                    Ok(Frame::Envelope { cursor, envelope }) => {
                        return Ok(Some(PushEvent::Envelope { cursor, envelope }))
                    }
                    Ok(Frame::Other) => {}
                    Err(e) => return Err(Error::RelayProtocol(format!("push frame: {e}"))),
                },
                Message::Ping(payload) => {
                    let _ = self.socket.send(Message::Pong(payload)).await;
                }
                Message::Close(_) => return Ok(None),
                _ => {}
            }
        }
        Ok(None)
    }

    /// Closes the socket politely.
    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}

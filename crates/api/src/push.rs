//! The push socket's frames (`GET /v1/push`): JSON text frames tagged by `type`.

use serde::{Deserialize, Serialize};
#[cfg(feature = "openapi")]
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{AckRequest, AckResponse, ErrorCode, SendRequest, SendResponse, WireEnvelope};

/// What a client may send on the socket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Store and deliver an envelope (the body of `POST /v1/envelopes`); answered by `accepted` or `error`.
    Send(SendRequest),
    /// Delete envelopes from the caller's mailbox (the body of `POST /v1/envelopes/ack`); answered by `acked`.
    Ack(AckRequest),
}

/// What the relay sends on the socket: pushes, and answers to [`ClientFrame`]s in the order they came.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RelayFrame<'a> {
    /// An envelope stored for the caller, at this place in the mailbox.
    Envelope {
        /// Its position in the mailbox.
        cursor: u64,
        /// The envelope (with `from`).
        envelope: WireEnvelope<'a>,
    },
    /// A `send` is stored durably (HTTP's 202).
    Accepted(SendResponse),
    /// An `ack` is done.
    Acked(AckResponse),
    /// A frame refused, with HTTP's error codes.
    Error {
        /// The refused send's id; absent when the frame itself was unreadable.
        id: Option<Uuid>,
        /// Why.
        code: ErrorCode,
        /// The relay's words.
        message: String,
    },
    /// A frame type this client does not know (a newer relay): skipped. Never sent.
    #[serde(other, skip_serializing)]
    Unknown,
}

//! Everything a face (desktop UI, CLI) needs to follow the engine, as one typed stream.
//!
//! Events carry only public data: names, fingerprints, signatures, ciphertext sizes. Message text appears only in
//! [`MessageView`], which is what the user's own screen shows.

use magpie_api::ErrorCode;
use magpie_proto::{encoding::hex, HandshakeReport};
use serde::Serialize;
use uuid::Uuid;

use crate::history::{Delivery, Direction, Entry};

/// The relay connection as the engine sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    /// Logging in / opening the push socket.
    Connecting,
    /// Logged in, push socket open, mailbox caught up.
    Online,
    /// The relay cannot be reached; retrying with backoff.
    Offline,
}

/// What kind of envelope was discarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Discard {
    /// A message (text or receipt).
    Message,
    /// A handshake step (request, accept, decline, key transfer, confirm).
    Step,
}

/// The seven steps of the handshake (protocol design note), as each side sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HandshakeStep {
    /// 1 (A): ChatRequest signed and queued.
    RequestSent,
    /// 1 (B): A's chain, name and signature verified; waiting for the user.
    RequestVerified,
    /// 2 (B): ChatAccept with `eB`, signed, queued.
    AcceptSent,
    /// 3 (A): B's certificate fetched from the directory; chain, name and pin checked; accept signature verified.
    DirectoryChecked,
    /// 4–5 (A): `K` wrapped with RSA-OAEP for B, `eA` made, transcript signed, KeyTransfer queued.
    KeyTransferSent,
    /// 6 (B): A's signature verified, `K` unwrapped, session derived, KeyConfirm queued.
    KeyTransferVerified,
    /// 7 (A): B's confirm MAC verified; session established.
    ConfirmVerified,
}

/// The public data of a handshake so far (hex), for the handshake demo.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HandshakeData {
    /// The request id.
    pub request_id: Uuid,
    /// Who asked.
    pub initiator: String,
    /// Who was asked.
    pub responder: String,
    /// SHA-256 of A's public key.
    pub initiator_fingerprint: Option<String>,
    /// SHA-256 of B's public key.
    pub responder_fingerprint: Option<String>,
    /// A's RSA-PSS signature on the request.
    pub request_signature: String,
    /// B's ephemeral X25519 public key.
    pub responder_ephemeral: Option<String>,
    /// B's RSA-PSS signature on the accept.
    pub accept_signature: Option<String>,
    /// `K` wrapped for B with RSA-OAEP.
    pub wrapped_key: Option<String>,
    /// A's ephemeral X25519 public key.
    pub initiator_ephemeral: Option<String>,
    /// A's RSA-PSS signature on the KeyTransfer.
    pub key_transfer_signature: Option<String>,
    /// The transcript hash both signed.
    pub transcript_hash: Option<String>,
    /// The KeyConfirm MAC.
    pub confirm_mac: Option<String>,
    /// The session id both derived.
    pub session_id: Option<String>,
}

impl From<&HandshakeReport> for HandshakeData {
    fn from(r: &HandshakeReport) -> Self {
        Self {
            request_id: r.request_id,
            initiator: r.initiator.to_string(),
            responder: r.responder.to_string(),
            initiator_fingerprint: r.initiator_fingerprint.map(|f| f.to_hex()),
            responder_fingerprint: r.responder_fingerprint.map(|f| f.to_hex()),
            request_signature: hex(&r.request_signature),
            responder_ephemeral: r.responder_ephemeral.map(|k| hex(&k)),
            accept_signature: r.accept_signature.as_deref().map(hex),
            wrapped_key: r.wrapped_key.as_deref().map(hex),
            initiator_ephemeral: r.initiator_ephemeral.map(|k| hex(&k)),
            key_transfer_signature: r.key_transfer_signature.as_deref().map(hex),
            transcript_hash: r.transcript_hash.map(|h| hex(&h)),
            confirm_mac: r.confirm_mac.map(|m| hex(&m)),
            session_id: r.session_id.map(|s| hex(&s)),
        }
    }
}

/// A message as a face shows it. `Debug` shows the text's length, never the text.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct MessageView {
    /// Message id.
    pub id: Uuid,
    /// The other party.
    pub peer: String,
    /// Who wrote it.
    pub direction: Direction,
    /// The text.
    pub body: String,
    /// Sender's clock, Unix seconds.
    pub sent_at: u64,
    /// Our clock at arrival, Unix seconds (incoming only).
    pub received_at: Option<u64>,
    /// Where it is on its way.
    pub delivery: Delivery,
    /// Position in the chat, for paging.
    pub cursor: Option<u64>,
    /// For a file message: what the chat shows of the file (its `body` is then empty: the message carries the
    /// file's key, which never leaves the engine).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<FileView>,
}

/// A file as a chat shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileView {
    /// The name to save it under ([`magpie_proto::file::FileDescriptor::safe_name`]).
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// The sender's guess, `type/subtype`.
    pub media_type: String,
    /// An image's small preview, carried in the message.
    pub thumbnail: Option<ThumbnailView>,
}

/// An image's preview.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct ThumbnailView {
    /// `image/jpeg` or `image/png`.
    pub media_type: String,
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
    /// The image, standard base64.
    pub data: String,
}

impl std::fmt::Debug for ThumbnailView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThumbnailView")
            .field("media_type", &self.media_type)
            .field("width", &self.width)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

impl From<&magpie_proto::file::FileDescriptor> for FileView {
    fn from(d: &magpie_proto::file::FileDescriptor) -> Self {
        use base64::Engine as _;
        Self {
            name: d.safe_name(),
            size: d.size,
            media_type: d.media_type.clone(),
            thumbnail: d.thumbnail.as_ref().map(|t| ThumbnailView {
                media_type: t.media_type.clone(),
                width: t.width,
                height: t.height,
                data: base64::engine::general_purpose::STANDARD.encode(&t.data),
            }),
        }
    }
}

impl std::fmt::Debug for MessageView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageView")
            .field("id", &self.id)
            .field("peer", &self.peer)
            .field("direction", &self.direction)
            .field("body_len", &self.body.len())
            .field("sent_at", &self.sent_at)
            .field("delivery", &self.delivery)
            .finish_non_exhaustive()
    }
}

impl From<&Entry> for MessageView {
    fn from(entry: &Entry) -> Self {
        let mut view = Self::from(&entry.message);
        view.cursor = Some(entry.cursor.value());
        view
    }
}

impl From<&crate::history::Message> for MessageView {
    fn from(m: &crate::history::Message) -> Self {
        let file = (m.kind == magpie_proto::MessageKind::File)
            .then(|| magpie_proto::file::FileDescriptor::from_body(&m.body).ok())
            .flatten();
        Self {
            id: m.id,
            peer: m.peer.to_string(),
            direction: m.direction,
            body: match m.kind {
                magpie_proto::MessageKind::File => String::new(),
                _ => m.body.clone(),
            },
            file: file.as_ref().map(FileView::from),
            sent_at: m.sent_at,
            received_at: m.received_at,
            delivery: m.delivery,
            cursor: None,
        }
    }
}

/// Why the relay refused to take a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The recipient's mailbox holds as much as the relay allows; it empties as they read (try again later).
    MailboxFull,
    /// Anything else the relay will not take (too large, unknown recipient, ...).
    Refused,
}

impl Refusal {
    /// From the relay's error code (its own words are not shown: a relay could put anything there).
    pub fn from_code(code: ErrorCode) -> Self {
        match code {
            ErrorCode::MailboxFull => Self::MailboxFull,
            _ => Self::Refused,
        }
    }
}

/// Something happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// The relay connection changed.
    Connection {
        /// Now.
        state: ConnectionState,
    },
    /// Someone asks for a chat (already verified); the user accepts or declines.
    RequestReceived {
        /// Who.
        peer: String,
        /// Their key's fingerprint (hex).
        fingerprint: String,
        /// The request.
        request_id: Uuid,
        /// Their key differs from the one pinned for this name (a key change was raised too).
        key_changed: bool,
    },
    /// A handshake step happened, with its public data.
    Handshake {
        /// Which step.
        step: HandshakeStep,
        /// The other party.
        peer: String,
        /// Everything public so far.
        data: Box<HandshakeData>,
    },
    /// A handshake failed; nothing of it is kept.
    HandshakeFailed {
        /// The other party.
        peer: String,
        /// The request.
        request_id: Uuid,
        /// Why, as a sentence.
        reason: String,
    },
    /// The peer declined our request (signature verified).
    RequestDeclined {
        /// Who.
        peer: String,
        /// The request.
        request_id: Uuid,
    },
    /// Both sides hold a new session.
    SessionEstablished {
        /// With whom.
        peer: String,
        /// True when it replaced an earlier session (show "new session keys").
        rekey: bool,
    },
    /// We wrote a message (state "sending").
    MessageSent {
        /// The message.
        message: MessageView,
        /// Bytes of ciphertext the relay carries.
        ciphertext_len: usize,
        /// The first bytes of the ciphertext (hex), as the relay sees it.
        ciphertext_preview: String,
    },
    /// A message arrived, decrypted and stored.
    MessageReceived {
        /// The message.
        message: MessageView,
    },
    /// A message moved to sent, delivered or failed.
    DeliveryChanged {
        /// The chat.
        peer: String,
        /// The message.
        id: Uuid,
        /// Its state now.
        delivery: Delivery,
    },
    /// The relay refused one of our messages for good: it is failed (the user may send it again).
    SendRefused {
        /// The chat.
        peer: String,
        /// The message.
        id: Uuid,
        /// Why.
        reason: Refusal,
    },
    /// A peer's key differs from the pinned one: the chat is blocked.
    KeyChanged {
        /// Whose.
        peer: String,
        /// The pinned fingerprint (hex).
        pinned: String,
        /// The fingerprint now presented (hex).
        presented: String,
    },
    /// A text was written while the session with its peer is being set up: it waits ("waiting"), unsealed.
    MessageWaiting {
        /// The message as stored.
        message: MessageView,
    },
    /// A file's transfer moved on: `done` of `total` bytes of its blob are uploaded or downloaded.
    FileProgress {
        /// The chat.
        peer: String,
        /// The file message.
        id: Uuid,
        /// Bytes moved so far.
        done: u64,
        /// Bytes in all.
        total: u64,
    },
    /// A file's transfer reached a new state (kept and ready, or failed and why).
    FileStateChanged {
        /// The chat.
        peer: String,
        /// The file message.
        id: Uuid,
        /// Its state now.
        state: crate::history::FileState,
    },
    /// An envelope was refused (tampered, forged, unknown session, malformed, a message sent again under a new
    /// envelope id) and dropped; a contact's count of them ([`crate::history::Contact::discarded`]) went up.
    /// Ordinary duplicates of at-least-once delivery are not reported.
    Rejected {
        /// Who it claimed to come from.
        peer: String,
        /// What it was.
        what: Discard,
        /// Why, as a sentence (never the envelope's content).
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> MessageView {
        MessageView {
            id: Uuid::nil(),
            peer: "bob".into(),
            direction: Direction::Incoming,
            body: "meet me at the old oak".into(),
            sent_at: 1,
            received_at: Some(2),
            delivery: Delivery::Received,
            cursor: Some(3),
            file: None,
        }
    }

    #[test]
    fn debug_never_shows_message_text() {
        let event = Event::MessageReceived { message: view() };
        let debug = format!("{event:?}");
        assert!(!debug.contains("old oak"), "{debug}");
        assert!(debug.contains("body_len: 22"), "{debug}");
    }

    #[test]
    fn events_serialize_with_a_snake_case_type_tag() {
        let json = serde_json::to_value(Event::MessageReceived { message: view() }).unwrap();
        assert_eq!(json["type"], "message_received");
        assert_eq!(json["message"]["body"], "meet me at the old oak");
        assert_eq!(json["message"]["delivery"], "received");
        let json = serde_json::to_value(Event::Connection {
            state: ConnectionState::Online,
        })
        .unwrap();
        assert_eq!(json, serde_json::json!({"type": "connection", "state": "online"}));
    }
}

//! What the backend tells the UI without being asked (the `magpie://event` event).

use serde::Serialize;
use ts_rs::TS;

use super::views::{ConnectionState, Delivery, FileStatus, MessageItem};

/// The event name the UI listens on.
pub const EVENT: &str = "magpie://event";
/// Onboarding progress ([`super::OnboardingStage`]).
pub const ONBOARDING_EVENT: &str = "magpie://onboarding";

/// Something changed in the open profile. Carries only what the user's own screen may show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum UiEvent {
    /// The relay connection changed.
    Connection { state: ConnectionState },
    /// The window was locked (idle, Ctrl+L, the tray, the system going to sleep): show the lock screen and
    /// forget what is shown. No other event comes until it is unlocked.
    Locked,
    /// Open the chat with `peer` (its notification was clicked).
    OpenChat { peer: String },
    /// Something the user should know that no open dialog says (a sentence).
    Notice { message: String },
    /// Someone asks for an encrypted chat; `key_changed` when with another key than the pinned one.
    RequestReceived {
        peer: String,
        fingerprint: String,
        key_changed: bool,
    },
    /// Our request was declined.
    RequestDeclined { peer: String },
    /// A handshake step happened (the chat list shows "setting up keys…").
    HandshakeProgress { peer: String, step: String },
    /// A handshake failed; nothing of it was kept.
    HandshakeFailed { peer: String, reason: String },
    /// Keys are agreed; `rekey` when they replaced earlier ones.
    SessionEstablished { peer: String, rekey: bool },
    /// A message was written (by us) or arrived (from the peer).
    Message { message: MessageItem },
    /// A message moved to sent, delivered or failed.
    DeliveryChanged {
        peer: String,
        id: String,
        delivery: Delivery,
    },
    /// The relay will not take message `id` (now failed), and why.
    SendRefused {
        peer: String,
        id: String,
        reason: SendRefusal,
    },
    /// The peer's key changed: the chat is blocked.
    KeyChanged { peer: String },
    /// An envelope claiming to come from `peer` did not verify (tampered, forged, malformed) and was discarded;
    /// `step` when it was a handshake step rather than a message. The chat's count went up.
    Rejected { peer: String, step: bool, reason: String },
    /// A file's transfer moved on: `done` of `total` bytes.
    FileProgress {
        peer: String,
        id: String,
        #[ts(type = "number")]
        done: u64,
        #[ts(type = "number")]
        total: u64,
    },
    /// A file's transfer reached a new state.
    FileStatusChanged {
        peer: String,
        id: String,
        status: FileStatus,
    },
    /// Files were dropped on the window: `send_dropped` sends them to the open chat.
    FilesDropped { names: Vec<String> },
}

/// Why the relay refused a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum SendRefusal {
    /// The recipient's mailbox on the relay is full until they read it.
    MailboxFull,
    /// Anything else it will not take.
    Refused,
}

//! What the screens show: profiles, identity, chats, messages, requests, safety numbers.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// One profile on this computer (a person: Alice and Bob may both live here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct ProfileSummary {
    /// Stable id (names the credential-store entries).
    pub id: String,
    pub username: String,
    /// The relay it registered with; `None` if registration never finished.
    pub relay_url: Option<String>,
    /// Registered with the relay embedded in this app.
    pub local_relay: bool,
}

/// Every profile, the one open now, and the one waiting for its passphrase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct ProfilesView {
    pub profiles: Vec<ProfileSummary>,
    pub active: Option<String>,
    pub locked: Option<LockedView>,
}

/// A profile behind the lock screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct LockedView {
    pub profile_id: String,
    pub username: String,
    /// Open behind the lock (its connection keeps receiving), rather than waiting to be opened.
    pub open: bool,
}

/// The app lock of the open profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct LockStatus {
    /// A passphrase is set: the keys are wrapped with it.
    pub on: bool,
}

/// Where a new profile registers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RelayChoice {
    /// The relay this app runs on 127.0.0.1.
    Local,
    /// A relay elsewhere, with the CA fingerprint the user confirmed (hex), like an SSH host key.
    Remote { url: String, ca_fingerprint: String },
}

/// A relay's CA, for the user to confirm before registering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct RelayProbe {
    pub url: String,
    /// SHA-256 of the CA's public key, hex.
    pub ca_fingerprint: String,
    /// The CA certificate's subject, as it names itself.
    pub ca_subject: String,
}

/// How far onboarding has got (sent as the `magpie://onboarding` event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum OnboardingStage {
    StartingRelay,
    GeneratingKey,
    StoringKey,
    Registering,
    Done,
}

/// The open profile's identity (Settings, onboarding's last screen).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct IdentityView {
    pub profile_id: String,
    pub username: String,
    /// SHA-256 of our public key, hex.
    pub fingerprint: String,
    pub certificate_subject: String,
    pub certificate_serial: String,
    /// Unix seconds.
    #[ts(type = "number")]
    pub valid_from: i64,
    #[ts(type = "number")]
    pub valid_until: i64,
    pub relay_url: String,
    pub relay_ca_fingerprint: String,
    pub local_relay: bool,
    /// Where the private key is kept, in words ("Secret Service (GNOME Keyring, …)").
    pub key_store: String,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Outgoing,
    Incoming,
}

/// Where a message is on its way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    Sending,
    Sent,
    Delivered,
    Failed,
    Received,
    /// Written while the session was being set up: sent once it exists.
    Waiting,
    /// A file being uploaded: its message is sent once the relay holds it whole.
    Uploading,
}

/// One message as the chat shows it. `Debug` shows the text's length, never the text.
#[derive(Clone, PartialEq, Eq, Serialize, TS)]
pub struct MessageItem {
    pub id: String,
    pub peer: String,
    pub direction: Direction,
    pub body: String,
    /// Sender's clock, Unix seconds.
    #[ts(type = "number")]
    pub sent_at: u64,
    pub delivery: Delivery,
    /// Position in the chat (for paging and read marks); `null` until stored.
    #[ts(type = "number | null")]
    pub cursor: Option<u64>,
    /// A file message's file (its `body` is then empty).
    pub file: Option<FileItem>,
}

/// A file as a chat shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct FileItem {
    /// The name to save it under.
    pub name: String,
    /// Bytes.
    #[ts(type = "number")]
    pub size: u64,
    /// `type/subtype`, as the sender guessed it.
    pub media_type: String,
    /// An image's preview, carried in the message.
    pub thumbnail: Option<ThumbnailItem>,
}

/// An image's preview: a data URL of at most 20 KiB and its size in pixels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct ThumbnailItem {
    pub url: String,
    pub width: u32,
    pub height: u32,
}

/// Where a file's transfer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum TransferState {
    /// Ours, going up to the relay.
    Uploading,
    /// Ours, up; its message goes once the session allows.
    Uploaded,
    /// Theirs, too large to fetch unasked: it comes when the user asks.
    Offered,
    /// Theirs, coming down.
    Downloading,
    /// Here, checked: it can be opened and saved.
    Ready,
    /// Given up (`reason` says why).
    Failed,
    /// Not known here (a file message from before this profile kept files).
    Unknown,
}

/// A file's transfer state, and why it failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct FileStatus {
    pub state: TransferState,
    pub reason: Option<String>,
}

/// One page of a chat, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct MessagePage {
    pub messages: Vec<MessageItem>,
    /// More messages exist before the first one here.
    pub has_more: bool,
    /// More messages exist after the last one here (a page around a search result, not the chat's end).
    pub has_newer: bool,
    /// Where the chat's re-keys fell, oldest first: each comes after every message with a smaller cursor and
    /// before every message with a larger one (the "new session keys" dividers).
    #[ts(type = "number[]")]
    pub rekeys: Vec<u64>,
}

/// One chat's search results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct SearchChat {
    pub peer: String,
    /// How many of its messages match (older than the cursor asked for).
    #[ts(type = "number")]
    pub total: usize,
    /// The newest of them, newest first.
    pub found: Vec<SearchHit>,
}

/// A message that matched: the message, and the text around the first match cut into plain and matched pieces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct SearchHit {
    pub message: MessageItem,
    pub snippet: Vec<SnippetPiece>,
}

/// A piece of a result's text. `Debug` shows its length, never the text.
#[derive(Clone, PartialEq, Eq, Serialize, TS)]
pub struct SnippetPiece {
    pub text: String,
    pub matched: bool,
}

impl std::fmt::Debug for SnippetPiece {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnippetPiece")
            .field("len", &self.text.len())
            .field("matched", &self.matched)
            .finish()
    }
}

/// How a search ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
pub struct SearchSummary {
    /// Messages that matched, in all chats searched.
    #[ts(type = "number")]
    pub total: usize,
    /// A newer search took its place before it finished.
    pub cancelled: bool,
}

/// How far a backup (blocks of messages written) or a restore (bytes read) has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
pub struct BackupProgress {
    #[ts(type = "number")]
    pub done: u64,
    #[ts(type = "number")]
    pub total: u64,
}

/// A backup written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct BackupDone {
    /// The file's name (not its folder).
    pub file_name: String,
    #[ts(type = "number")]
    pub contacts: u64,
    #[ts(type = "number")]
    pub messages: u64,
    #[ts(type = "number")]
    pub bytes: u64,
}

/// A chat exported: the text file's name, with a `.json` and (when `files` > 0) a folder of files beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct ExportDone {
    pub file_name: String,
    #[ts(type = "number")]
    pub messages: u64,
    #[ts(type = "number")]
    pub files: u64,
}

/// The backup file chosen to restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct PickedBackup {
    pub file_name: String,
    #[ts(type = "number")]
    pub bytes: u64,
}

/// A chat in the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct ChatSummary {
    pub peer: String,
    pub verified: bool,
    /// Their key changed: the chat is blocked until the user accepts it or verifies again.
    pub key_changed: bool,
    /// During a key change, the new key's fingerprint (hex): what "Accept new key" accepts.
    pub new_fingerprint: Option<String>,
    /// Keys are agreed: messages can be sent.
    pub has_session: bool,
    /// No keys yet, but a handshake is under way: what is written waits for them.
    pub session_coming: bool,
    /// What was discarded from this peer because it did not verify, until the user dismisses the notice.
    pub discarded: Option<DiscardedView>,
    pub last_message: Option<MessageItem>,
    /// Incoming messages after the read mark (counted up to 100).
    pub unread: u32,
    /// Unix seconds of the last message or handshake, for ordering.
    #[ts(type = "number | null")]
    pub last_activity: Option<u64>,
}

/// Envelopes from a peer that did not verify and were discarded: the chat's security notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct DiscardedView {
    pub messages: u32,
    /// Handshake steps (key exchange messages).
    pub steps: u32,
    /// Unix seconds of the first and the last.
    #[ts(type = "number")]
    pub since: u64,
    #[ts(type = "number")]
    pub last: u64,
}

/// A chat request waiting for the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct IncomingRequest {
    /// Which request: accept and decline name it.
    pub request_id: String,
    pub peer: String,
    /// Their key's fingerprint (hex), verified to the relay's CA.
    pub fingerprint: String,
    /// Unix seconds, their clock.
    #[ts(type = "number")]
    pub sent_at: u64,
    /// Their key differs from the one pinned for this name.
    pub key_changed: bool,
}

/// Requests both ways.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct RequestsView {
    pub incoming: Vec<IncomingRequest>,
    /// Peers we asked who have not answered yet.
    pub outgoing: Vec<String>,
}

/// The number two people compare to know no one sits between them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct SafetyNumberView {
    pub peer: String,
    /// 12 groups of 5 digits.
    pub groups: Vec<String>,
    /// The QR code of the number, as an SVG document.
    pub qr_svg: String,
    /// The peer's key in this number (hex): verifying sends it back, and is refused if the key changed meanwhile.
    pub fingerprint: String,
    pub verified: bool,
    /// Shown during a key change: this is the new key's number.
    pub key_changed: bool,
}

/// The relay connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    Connecting,
    Online,
    Offline,
}

impl std::fmt::Debug for MessageItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageItem")
            .field("id", &self.id)
            .field("peer", &self.peer)
            .field("direction", &self.direction)
            .field("body_len", &self.body.len())
            .field("delivery", &self.delivery)
            .finish_non_exhaustive()
    }
}

/// The look of the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS, Default)]
#[serde(rename_all = "snake_case")]
pub enum Theme {
    #[default]
    System,
    Light,
    Dark,
}

/// Preferences of this installation (not secret; kept in `settings.json` in the data folder).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(default)]
pub struct Settings {
    pub theme: Theme,
    /// Native notifications for messages that arrive while the window is not focused.
    pub notifications: bool,
    /// With a lock passphrase set, lock after this many minutes without input (0: never).
    pub lock_after_minutes: u32,
    /// Closing the window leaves Magpie running in the tray. Where a settings file predates it: on where the
    /// desktop shows tray icons.
    #[serde(default = "crate::tray::desktop_has_tray")]
    pub keep_running_in_tray: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            theme: Theme::System,
            notifications: true,
            lock_after_minutes: 15,
            // Decided by `read_settings` at first start (it asks the desktop); no tray is the safe guess.
            keep_running_in_tray: false,
        }
    }
}

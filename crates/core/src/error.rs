//! magpie-core's one error type, split by cause. Messages are sentences a person can act on; none carries a secret.

use std::path::PathBuf;

/// Everything that can go wrong in the client engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No credential store answers at all (no Secret Service on the session bus, say).
    #[error("{0}")]
    CredentialStoreUnavailable(String),
    /// The store is there but locked, or refused us access.
    #[error("{0}")]
    CredentialStoreLocked(String),
    /// The store answered with an error of its own, or refused the value (too long, bad encoding).
    #[error("The credential store failed: {0}")]
    CredentialStore(String),

    /// There is no profile in this directory.
    #[error("No Magpie profile found in {0}. Create one first, or check the --profile path.")]
    ProfileNotFound(PathBuf),
    /// `create` was pointed at a directory that already holds a profile.
    #[error("{0} already holds a Magpie profile. Open it, or choose another directory.")]
    ProfileExists(PathBuf),
    /// `profile.json` is unreadable or not ours.
    #[error("The profile file {path} is damaged: {reason}.")]
    ProfileCorrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it (no secrets: the file holds none).
        reason: String,
    },
    /// The profile exists but one of its secrets is not in the credential store (deleted, or another keyring).
    #[error(
        "This profile's {what} is missing from the credential store (entry \"{account}\"). It may have been \
         deleted or belong to another user's keyring; without it the profile cannot be opened."
    )]
    ProfileKeyMissing {
        /// "identity key" or "history key".
        what: &'static str,
        /// The account name looked up.
        account: String,
    },
    /// A file-system operation on the profile directory failed.
    #[error("Could not {action} {path}: {source}")]
    ProfileIo {
        /// What we were doing ("create", "read", "write", "remove").
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },

    /// A stored value failed to decrypt or decode: the history was damaged or tampered with.
    #[error(
        "The message history is damaged or was tampered with (a value in \"{tree}\" failed its integrity check). \
         Restore the profile from a backup or delete it."
    )]
    HistoryCorrupt {
        /// The tree the value came from.
        tree: &'static str,
    },
    /// The history key in the credential store does not open this history.
    #[error(
        "The history key in the credential store does not open this history: the entry was replaced or the \
         directory belongs to another profile."
    )]
    HistoryWrongKey,
    /// The history was written in a format this version does not read (by a newer Magpie).
    #[error(
        "This profile's history was written by a newer version of Magpie (format {found}). Update Magpie to open it."
    )]
    HistoryFormat {
        /// The format the history says it has.
        found: u32,
    },
    /// Another process (or another open handle in this one) holds the history database.
    #[error("This profile's history is open in another Magpie process. Close it and try again.")]
    HistoryInUse,
    /// The history key read from the credential store is not 256 bits.
    #[error("The history key in the credential store is malformed (not 256 bits).")]
    HistoryKeyMalformed,
    /// sled failed (I/O, or its own files are damaged).
    #[error("The history database failed: {0}. Check disk space and permissions of the profile directory.")]
    HistoryStorage(#[from] sled::Error),
    /// OpenSSL failed to encrypt, hash or draw randomness (not a decryption failure).
    #[error("A cryptographic operation failed: {0}")]
    Crypto(&'static str),

    /// The relay address is not a usable URL.
    #[error("The relay address {0} is not valid.")]
    BadRelayUrl(String),
    /// A relay on another computer named with plain `http://`.
    #[error(
        "The relay address {0} uses plain http://, so anyone on the network between you could read and change what \
         Magpie exchanges with it (your login, whom you write to, when). Use https://; plain http:// is only for a \
         relay on this computer (127.0.0.1 or localhost)."
    )]
    InsecureRelay(String),
    /// The relay could not be reached at all (down, no network, timeout). Retrying later may work.
    #[error("The relay at {url} cannot be reached ({reason}). Magpie keeps your messages and retries.")]
    RelayUnreachable {
        /// Which relay.
        url: String,
        /// What the network said.
        reason: String,
    },
    /// The relay answered with an error.
    #[error("The relay refused the request ({status} {code}): {message}")]
    Relay {
        /// HTTP status.
        status: u16,
        /// The relay's error code.
        code: magpie_api::ErrorCode,
        /// The relay's explanation.
        message: String,
    },
    /// The relay answered something that is not its API.
    #[error("The relay answered something Magpie does not understand: {0}")]
    RelayProtocol(String),
    /// A call that needs a login was made before logging in.
    #[error("Not logged in to the relay yet.")]
    NotLoggedIn,
    /// Registration: someone holds this name already.
    #[error("The name \"{0}\" is already taken on this relay. Choose another.")]
    NameTaken(String),
    /// The relay has no such user.
    #[error("There is no user \"{0}\" on this relay.")]
    UnknownUser(String),
    /// The profile has not registered with a relay yet.
    #[error("This profile is not registered with a relay yet. Register first.")]
    NotRegistered,
    /// The relay now serves a different CA than the one pinned at registration.
    #[error(
        "The relay's certificate authority changed (pinned {pinned}, now {presented}). It may be another server \
         or an attack; Magpie will not trust it."
    )]
    RelayCaChanged {
        /// The pinned CA fingerprint (hex).
        pinned: String,
        /// The one presented (hex).
        presented: String,
    },
    /// No chat with this person yet (or the handshake has not finished).
    #[error("There is no encrypted session with {0} yet. Send a chat request, or wait for the handshake to finish.")]
    NoSession(String),
    /// The peer's key changed: the chat is blocked until the user accepts the new key or verifies again.
    #[error(
        "{0}'s key has changed. Sending is blocked until you accept the new key or verify {0}'s safety number again."
    )]
    KeyChanged(String),
    /// The key the user compared (or accepted) is not the one Magpie would pin now: it changed while the number was
    /// on screen. Nothing was pinned or verified.
    #[error(
        "{peer}'s key changed while you were comparing: the number you saw (key {shown}) is not the key Magpie would \
         pin now ({current}). Nothing was changed; compare the new safety number first."
    )]
    FingerprintMismatch {
        /// Whose key.
        peer: String,
        /// The start of the fingerprint the user saw (hex).
        shown: String,
        /// The start of the one that verifying would pin now (hex), or "none".
        current: String,
    },
    /// No pending chat request from this person.
    #[error("There is no pending chat request from {0}.")]
    NoRequest(String),
    /// The request named is not waiting any more.
    #[error("That chat request ({0}) is no longer waiting: it was answered, or it expired.")]
    RequestGone(uuid::Uuid),
    /// Several requests from this person wait: the caller must name one.
    #[error("{count} chat requests from {peer} are waiting; choose one by its id.")]
    SeveralRequests {
        /// Who asks.
        peer: String,
        /// How many.
        count: usize,
    },
    /// No such message to act on (or not one that can be resent).
    #[error("There is no failed message {0} to send again.")]
    NoMessage(String),
    /// A file to send, or a kept copy, could not be read.
    #[error("Could not read {path}: {source}.")]
    FileRead {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file could not be written (a full disk, a folder without permission).
    #[error("Could not write {path}: {source}. Check the free space and permissions there; nothing else was lost.")]
    FileWrite {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file changed size while it was being sealed.
    #[error("{0} changed while Magpie was preparing it. Send it again once it is finished.")]
    FileChanged(PathBuf),
    /// The relay does not take a file this large.
    #[error("This file is {size} bytes; the relay takes files of up to {limit} bytes. Nothing was sent.")]
    FileTooLarge {
        /// The file's size once sealed.
        size: u64,
        /// The relay's limit.
        limit: u64,
    },
    /// A received file failed its integrity check.
    #[error(
        "A received file failed its integrity check: {0}. It was changed on its way (by the relay or on disk) and          was not saved."
    )]
    FileTampered(String),
    /// The relay no longer holds a file.
    #[error("The relay no longer has this file (it expired or was deleted). Ask {0} to send it again.")]
    FileLost(String),
    /// The user cancelled the transfer.
    #[error("The transfer was cancelled.")]
    TransferCancelled,
    /// The passphrase does not open this backup.
    #[error("That passphrase does not open this backup.")]
    BackupWrongPassphrase,
    /// The file is not a backup at all.
    #[error("This file is not a Magpie backup.")]
    NotABackup,
    /// A backup made by a newer Magpie.
    #[error("This backup was made by a newer Magpie (format {0}): update Magpie to restore it.")]
    BackupNewerFormat(u16),
    /// The backup's bytes are not what was written. Nothing was restored.
    #[error("The backup is damaged ({0}); nothing was restored.")]
    BackupDamaged(String),
    /// Reading or writing the backup file failed.
    #[error("Could not {action} the backup file: {reason}")]
    BackupIo {
        /// "read", "write", ...
        action: &'static str,
        /// The system's words.
        reason: String,
    },
    /// The user cancelled the backup or the restore; nothing was left behind.
    #[error("Cancelled; nothing was written.")]
    BackupCancelled,
    /// A passphrase too short to protect a backup.
    #[error("A passphrase needs at least {0} characters.")]
    PassphraseTooShort(usize),
    /// The profile is locked with a passphrase: it opens with [`crate::Profile::unlock`].
    #[error("This profile is locked: enter its passphrase.")]
    ProfileLocked,
    /// The passphrase does not unlock this profile. After a few, each try waits longer.
    #[error("That passphrase does not unlock this profile.")]
    WrongPassphrase {
        /// Seconds before the next try is taken (0: at once).
        wait_secs: u64,
    },
    /// Too many wrong passphrases in a row: the next try waits.
    #[error("Too many wrong passphrases: try again in {wait_secs} s.")]
    UnlockWait {
        /// Seconds left.
        wait_secs: u64,
    },
    /// A newer search took this one's place.
    #[error("The search was cancelled.")]
    SearchCancelled,
    /// No file message with this id, or not one that has arrived whole yet.
    #[error("There is no received file {0} to save yet.")]
    NoFile(uuid::Uuid),
    /// A lock was poisoned by a panic in another thread.
    #[error("Internal error: a lock was poisoned.")]
    Poisoned,

    /// An error from the protocol crate (identity, session, certificate).
    #[error(transparent)]
    Proto(#[from] magpie_proto::Error),
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! The one error type the UI sees: `{code, message}`, with codes mirrored in TypeScript.

use serde::Serialize;
use ts_rs::TS;

/// What went wrong, as a stable machine-readable code the UI can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum IpcErrorCode {
    /// The app's data directory could not be found or created.
    DataDirectory,
    /// A background task failed before it could answer.
    Internal,
    /// The credential store is missing, locked or failing.
    CredentialStore,
    /// The input was refused (a bad username, an empty message, a malformed URL).
    InvalidInput,
    /// The name is registered already.
    NameTaken,
    /// No such user on the relay.
    UnknownUser,
    /// The relay did not answer; work is kept and retried.
    RelayUnreachable,
    /// The relay presented another CA than the one pinned or confirmed.
    RelayCaChanged,
    /// The relay answered with an error.
    Relay,
    /// No profile is open, or the profile asked for does not exist.
    NoProfile,
    /// The profile's data is damaged or in use by another Magpie.
    Profile,
    /// There are no keys with this peer yet.
    NoSession,
    /// The peer's key changed: accept it or verify again first.
    KeyChanged,
    /// No request from this peer is waiting.
    NoRequest,
    /// The key the user compared or accepted is no longer the one that would be pinned: reload and compare again.
    FingerprintMismatch,
    /// A backup could not be written or restored (a wrong passphrase, a damaged file): the message says which.
    Backup,
    /// The profile is locked: the window shows the lock screen.
    Locked,
    /// The passphrase does not unlock the profile; the next try waits `wait_secs`.
    WrongPassphrase,
    /// Too many wrong passphrases: no try is taken for `wait_secs`.
    UnlockWait,
}

/// An error as sent over IPC. `message` is a sentence for a person, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS, thiserror::Error)]
#[error("{message}")]
pub struct IpcError {
    pub code: IpcErrorCode,
    pub message: String,
    /// Seconds before another passphrase is taken (with `wrong_passphrase`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub wait_secs: Option<u64>,
}

impl IpcError {
    pub fn new(code: IpcErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            wait_secs: None,
        }
    }

    pub fn locked() -> Self {
        Self::new(IpcErrorCode::Locked, "Magpie is locked: enter the passphrase first.")
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(IpcErrorCode::InvalidInput, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(IpcErrorCode::Internal, message)
    }

    pub fn no_profile() -> Self {
        Self::new(
            IpcErrorCode::NoProfile,
            "No profile is open. Create one or choose one first.",
        )
    }
}

impl From<magpie_core::Error> for IpcError {
    fn from(error: magpie_core::Error) -> Self {
        use magpie_core::Error as E;
        let code = match &error {
            E::CredentialStoreUnavailable(_) | E::CredentialStoreLocked(_) | E::CredentialStore(_) => {
                IpcErrorCode::CredentialStore
            }
            E::ProfileNotFound(_) | E::NotRegistered => IpcErrorCode::NoProfile,
            E::ProfileExists(_)
            | E::ProfileCorrupt { .. }
            | E::ProfileKeyMissing { .. }
            | E::ProfileIo { .. }
            | E::HistoryCorrupt { .. }
            | E::HistoryWrongKey
            | E::HistoryFormat { .. }
            | E::HistoryInUse
            | E::HistoryKeyMalformed
            | E::HistoryStorage(_) => IpcErrorCode::Profile,
            E::BadRelayUrl(_) | E::InsecureRelay(_) => IpcErrorCode::InvalidInput,
            E::RelayUnreachable { .. } => IpcErrorCode::RelayUnreachable,
            E::Relay { .. } | E::RelayProtocol(_) | E::NotLoggedIn => IpcErrorCode::Relay,
            E::NameTaken(_) => IpcErrorCode::NameTaken,
            E::UnknownUser(_) => IpcErrorCode::UnknownUser,
            E::RelayCaChanged { .. } => IpcErrorCode::RelayCaChanged,
            E::NoSession(_) => IpcErrorCode::NoSession,
            E::KeyChanged(_) => IpcErrorCode::KeyChanged,
            E::NoRequest(_) | E::RequestGone(_) => IpcErrorCode::NoRequest,
            E::SeveralRequests { .. } => IpcErrorCode::InvalidInput,
            E::FingerprintMismatch { .. } => IpcErrorCode::FingerprintMismatch,
            E::NoMessage(_) => IpcErrorCode::InvalidInput,
            E::BackupWrongPassphrase
            | E::NotABackup
            | E::BackupNewerFormat(_)
            | E::BackupDamaged(_)
            | E::BackupIo { .. }
            | E::BackupCancelled
            | E::PassphraseTooShort(_) => IpcErrorCode::Backup,
            E::ProfileLocked => IpcErrorCode::Locked,
            E::WrongPassphrase { wait_secs } | E::UnlockWait { wait_secs } => {
                let code = match &error {
                    E::UnlockWait { .. } => IpcErrorCode::UnlockWait,
                    _ => IpcErrorCode::WrongPassphrase,
                };
                let mut wrong = Self::new(code, error.to_string());
                wrong.wait_secs = Some(*wait_secs);
                return wrong;
            }
            E::Proto(magpie_proto::Error::Malformed(_) | magpie_proto::Error::InvalidUsername(_)) => {
                IpcErrorCode::InvalidInput
            }
            _ => IpcErrorCode::Internal,
        };
        Self::new(code, error.to_string())
    }
}

impl From<magpie_proto::Error> for IpcError {
    fn from(error: magpie_proto::Error) -> Self {
        magpie_core::Error::from(error).into()
    }
}

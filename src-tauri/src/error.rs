//! The one error type the UI sees: `{code, message}`, with codes mirrored in TypeScript.

use serde::Serialize;
use ts_rs::TS;

/// What went wrong, as a stable machine-readable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum IpcErrorCode {
    /// The app's data directory could not be found or created.
    DataDirectory,
    /// A background task failed before it could answer.
    Internal,
}

/// An error as sent over IPC. `message` is a sentence for a person, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS, thiserror::Error)]
#[error("{message}")]
pub struct IpcError {
    pub code: IpcErrorCode,
    pub message: String,
}

impl IpcError {
    pub fn new(code: IpcErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

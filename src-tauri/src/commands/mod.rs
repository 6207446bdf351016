//! IPC commands: each a few lines into magpie-core. Blocking work (key generation, the credential store) runs on
//! worker threads; everything else is quick sled reads.

pub mod app;
pub mod backup;
pub mod chats;
pub mod files;
pub mod lock;
pub mod profiles;
pub mod search;

use magpie_proto::Username;

use crate::error::IpcError;

/// A username from the UI, checked.
pub fn username(name: &str) -> Result<Username, IpcError> {
    Username::parse(name.trim()).map_err(IpcError::from)
}

/// Runs blocking work on a worker thread.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, IpcError> + Send + 'static,
) -> Result<T, IpcError> {
    tauri::async_runtime::spawn_blocking(work).await.map_err(|e| {
        IpcError::new(
            crate::error::IpcErrorCode::Internal,
            format!("A background task stopped: {e}"),
        )
    })?
}

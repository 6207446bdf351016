//! IPC commands: each a few lines into magpie-core.

use std::path::PathBuf;

use tauri::{AppHandle, Manager, Runtime};

use crate::error::{IpcError, IpcErrorCode};
use crate::ipc_types::AppInfo;

/// Overrides where the app keeps its data (tests and portable installs).
pub const DATA_DIR_ENV: &str = "MAGPIE_DATA_DIR";

#[tauri::command]
pub async fn app_info<R: Runtime>(app: AppHandle<R>) -> Result<AppInfo, IpcError> {
    let data_dir = data_dir(&app)?;
    // The probe blocks on D-Bus / Keychain / Credential Manager: keep it off the async workers.
    let credential_store = tauri::async_runtime::spawn_blocking(magpie_core::keystore::probe)
        .await
        .map_err(|error| {
            IpcError::new(
                IpcErrorCode::Internal,
                format!("The credential store check stopped: {error}"),
            )
        })?;
    let package = app.package_info();
    Ok(AppInfo {
        name: package.name.clone(),
        version: package.version.to_string(),
        data_dir: data_dir.display().to_string(),
        credential_store: credential_store.into(),
    })
}

fn data_dir<R: Runtime>(app: &AppHandle<R>) -> Result<PathBuf, IpcError> {
    if let Some(dir) = std::env::var_os(DATA_DIR_ENV).filter(|dir| !dir.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    app.path().app_data_dir().map_err(|error| {
        IpcError::new(
            IpcErrorCode::DataDirectory,
            format!("Magpie could not find a folder for its data ({error}). Set {DATA_DIR_ENV} to choose one."),
        )
    })
}

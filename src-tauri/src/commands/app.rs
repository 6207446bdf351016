//! The installation: version, data folder, credential store, preferences.

use tauri::{AppHandle, Runtime, State};

use crate::error::IpcError;
use crate::ipc_types::{AppInfo, Settings};
use crate::state::AppState;

#[tauri::command]
pub async fn app_info<R: Runtime>(app: AppHandle<R>, state: State<'_, AppState>) -> Result<AppInfo, IpcError> {
    // The probe blocks on D-Bus / Keychain / Credential Manager.
    let credential_store = super::blocking(|| Ok(magpie_core::keystore::probe())).await?;
    let package = app.package_info();
    Ok(AppInfo {
        name: package.name.clone(),
        version: package.version.to_string(),
        data_dir: state.data_dir().display().to_string(),
        credential_store: credential_store.into(),
    })
}

#[tauri::command]
pub fn get_settings(state: State<'_, AppState>) -> Settings {
    state.settings()
}

#[tauri::command]
pub fn save_settings(state: State<'_, AppState>, settings: Settings) -> Result<Settings, IpcError> {
    state.save_settings(settings)
}

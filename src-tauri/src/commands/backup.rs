//! Backups (writing one of the open profile, choosing one and restoring it as a new profile) and chat exports.
//! Paths come from native dialogs answered here; the page sees file names only. One backup or restore runs at a
//! time; Cancel stops it.

use magpie_core::backup::{self, Progress};
use tauri::ipc::Channel;
use tauri::{AppHandle, Runtime, State};
use zeroize::Zeroizing;

use super::blocking;
use crate::dialogs;
use crate::error::IpcError;
use crate::ipc_types::{BackupDone, BackupProgress, ExportDone, IdentityView, PickedBackup};
use crate::session::activate;
use crate::state::{mark_local_relay, open_profile_dir, AppState};

/// Asks where to save a backup of the open profile and writes it there, reporting progress; `None` when the user
/// cancels the dialog.
#[tauri::command]
pub async fn backup_now<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    passphrase: String,
    progress: Channel<BackupProgress>,
) -> Result<Option<BackupDone>, IpcError> {
    let passphrase = Zeroizing::new(passphrase);
    let client = state.client().await?;
    backup::check_passphrase(&passphrase)?;
    let suggested = format!("magpie-{}.magpie-backup", client.username());
    let Some(path) = dialogs::save_as(&app, "Save the backup", &suggested).await? else {
        return Ok(None);
    };
    state.still_open(&client).await?;
    let cancelled = state.start_long_task();
    let name = file_name(&path);
    let summary = blocking(move || {
        let mut report = reporter(progress);
        backup::write_backup(client.profile(), &path, &passphrase, &cancelled, &mut report).map_err(IpcError::from)
    })
    .await?;
    Ok(Some(BackupDone {
        file_name: name,
        contacts: summary.contacts,
        messages: summary.messages,
        bytes: summary.bytes,
    }))
}

/// Stops the backup or restore under way (nothing of it is left).
#[tauri::command]
pub fn cancel_backup(state: State<'_, AppState>) {
    state.cancel_long_task();
}

/// Asks for a backup file to restore; `None` when the user cancels. The path stays here until restored.
#[tauri::command]
pub async fn pick_backup<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> Result<Option<PickedBackup>, IpcError> {
    let Some(path) = dialogs::pick(&app, "Restore from a backup").await? else {
        return Ok(None);
    };
    let bytes = std::fs::metadata(&path)
        .map_err(|e| IpcError::invalid(format!("Magpie cannot read that file: {e}")))?
        .len();
    let picked = PickedBackup {
        file_name: file_name(&path),
        bytes,
    };
    state.set_picked_backup(Some(path));
    Ok(Some(picked))
}

/// Restores the picked backup as a new profile and opens it: its contacts get fresh handshakes as it connects.
#[tauri::command]
pub async fn restore_backup<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    passphrase: String,
    progress: Channel<BackupProgress>,
) -> Result<IdentityView, IpcError> {
    let passphrase = Zeroizing::new(passphrase);
    let path = state
        .picked_backup()
        .ok_or_else(|| IpcError::invalid("Choose a backup file first."))?;
    let dir = state.profiles_dir().join(uuid::Uuid::new_v4().to_string());
    let cancelled = state.start_long_task();
    let keystore = state.keystore();
    let target = dir.clone();
    let profile = blocking(move || {
        let mut report = reporter(progress);
        backup::restore(&path, &passphrase, &target, keystore, &cancelled, &mut report).map_err(IpcError::from)
    })
    .await?;
    // A profile of a relay on its own computer (the embedded one) goes on with this computer's embedded relay.
    let local = profile.info().relay_url.as_deref().is_some_and(is_loopback);
    drop(profile);
    if local {
        mark_local_relay(&dir)?;
    }
    state.set_picked_backup(None);
    let relay_url = match local {
        true => Some(state.local_relay().await?.url().to_owned()),
        false => None,
    };
    let profile = open_profile_dir(dir, state.keystore()).await?;
    let client = magpie_core::Client::open_at(profile, relay_url.as_deref())?;
    activate(&app, &state, client, local).await
}

/// Asks where to export the chat with `peer` and writes it there as text and JSON, with its kept files beside;
/// `None` when the user cancels. The window has warned that the export is not encrypted.
#[tauri::command]
pub async fn export_chat<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    peer: String,
) -> Result<Option<ExportDone>, IpcError> {
    let client = state.client().await?;
    let peer = super::username(&peer)?;
    let suggested = format!("Magpie chat with {peer}.txt");
    let Some(path) = dialogs::save_as(&app, "Export the chat", &suggested).await? else {
        return Ok(None);
    };
    state.still_open(&client).await?;
    let summary = client.export_chat(&peer, &path).await?;
    Ok(Some(ExportDone {
        file_name: file_name(&path),
        messages: summary.messages as u64,
        files: summary.files as u64,
    }))
}

fn reporter(progress: Channel<BackupProgress>) -> impl FnMut(Progress) {
    move |step: Progress| {
        let _ = progress.send(BackupProgress {
            done: step.done,
            total: step.total,
        });
    }
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |name| name.to_string_lossy().into_owned(),
    )
}

fn is_loopback(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_relays_are_told_apart() {
        for url in ["http://127.0.0.1:8787", "http://localhost:1/", "http://[::1]:80/x"] {
            assert!(super::is_loopback(url), "{url}");
        }
        for url in [
            "https://relay.example",
            "http://10.0.0.1:8787",
            "http://127.0.0.1.example/",
            "nonsense",
        ] {
            assert!(!super::is_loopback(url), "{url}");
        }
    }
}

//! Native file dialogs for backups and exports, answered in Rust so the page never names a path.
//!
//! `MAGPIE_E2E_DIALOG_DIR`, when set, answers these dialogs without showing them: a save goes to that folder under
//! the suggested name, and a pick takes the first `.magpie-backup` file there (by name). WebDriver cannot reach a
//! native dialog, and the end-to-end stories must still go through backup, restore and export. Whoever can set
//! this process's environment controls it anyway.

use std::path::PathBuf;

use tauri::{AppHandle, Runtime};
use tauri_plugin_dialog::DialogExt as _;

use crate::error::IpcError;

const ANSWER_ENV: &str = "MAGPIE_E2E_DIALOG_DIR";

/// Asks where to save, suggesting `name`; `None` when the user cancels.
pub async fn save_as<R: Runtime>(app: &AppHandle<R>, title: &str, name: &str) -> Result<Option<PathBuf>, IpcError> {
    if let Some(dir) = std::env::var_os(ANSWER_ENV) {
        return Ok(Some(PathBuf::from(dir).join(name)));
    }
    let (chosen, picked) = tokio::sync::oneshot::channel();
    app.dialog()
        .file()
        .set_title(title)
        .set_file_name(name)
        .save_file(move |path| {
            let _ = chosen.send(path);
        });
    on_disk(picked.await.ok().flatten())
}

/// Asks for a file to open; `None` when the user cancels.
pub async fn pick<R: Runtime>(app: &AppHandle<R>, title: &str) -> Result<Option<PathBuf>, IpcError> {
    if let Some(dir) = std::env::var_os(ANSWER_ENV) {
        let mut backups: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        backups.retain(|path| path.extension().is_some_and(|ext| ext == "magpie-backup"));
        backups.sort();
        return Ok(backups.into_iter().next());
    }
    let (chosen, picked) = tokio::sync::oneshot::channel();
    app.dialog().file().set_title(title).pick_file(move |path| {
        let _ = chosen.send(path);
    });
    on_disk(picked.await.ok().flatten())
}

fn on_disk(path: Option<tauri_plugin_dialog::FilePath>) -> Result<Option<PathBuf>, IpcError> {
    path.map(|path| {
        path.into_path()
            .map_err(|_| IpcError::invalid("Choose a file on this computer's disk."))
    })
    .transpose()
}

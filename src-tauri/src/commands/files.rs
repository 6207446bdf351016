//! Files: sending one the user picked (a native dialog), dropped on the window or pasted; following, cancelling
//! and retrying transfers; saving one where the user chooses, opening one with the system's app, showing an image.
//! The window never names a path on disk: pickers and drops happen here, so a compromised page cannot send or read
//! a file the user did not hand it.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use magpie_core::engine::MessageView;
use magpie_core::history::FileState;
use magpie_core::Client;
use tauri::{AppHandle, Runtime, State};
use tauri_plugin_dialog::DialogExt as _;
use tauri_plugin_opener::OpenerExt as _;
use uuid::Uuid;

use super::username;
use crate::convert::message_item;
use crate::error::IpcError;
use crate::ipc_types::{FileStatus, MessageItem, TransferState};
use crate::state::AppState;
use crate::thumbnail;

/// The largest image the viewer shows (a data URL in the page).
const MOST_SHOWN_BYTES: u64 = 32 << 20;

/// Where "Open" puts a file for the system's app to read: in the user's own data folder (not the shared temporary
/// one, where another account could prepare the path), cleared at start and at exit.
pub fn open_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("open")
}

/// Extensions of programs and scripts a system runs when asked to open them: "Open" refuses them (a peer names the
/// file), and says to save it instead.
const RUNNABLE: &[&str] = &[
    "exe", "msi", "msp", "bat", "cmd", "com", "scr", "pif", "cpl", "lnk", "url", "reg", "ps1", "psm1", "vbs", "vbe",
    "js", "jse", "wsf", "wsh", "hta", "jar", "app", "command", "terminal", "tool", "pkg", "dmg", "sh", "bash", "zsh",
    "desktop", "appimage", "run", "deb", "rpm", "py", "pl", "rb", "workflow", "scpt", "xpi", "crx",
];

fn runnable(name: &str) -> bool {
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| RUNNABLE.contains(&e.to_ascii_lowercase().as_str()))
}

fn message_id(id: &str) -> Result<Uuid, IpcError> {
    Uuid::parse_str(id).map_err(|_| IpcError::invalid("That message id is malformed."))
}

/// Sends the file at `path` to `peer`, with a preview if it is an image.
async fn send_path(client: &Client, peer: &str, path: PathBuf) -> Result<MessageItem, IpcError> {
    let peer = username(peer)?;
    let preview_of = path.clone();
    let preview = super::blocking(move || Ok(thumbnail::of_file(&preview_of))).await?;
    Ok(message_item(&client.send_file(&peer, &path, preview).await?))
}

/// Asks the user for a file (a native dialog) and sends it; `None` when they cancel.
#[tauri::command]
pub async fn attach_file<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    peer: String,
) -> Result<Option<MessageItem>, IpcError> {
    let client = state.client().await?;
    let (chosen, picked) = tokio::sync::oneshot::channel();
    app.dialog()
        .file()
        .set_title(format!("Send a file to {peer}"))
        .pick_file(move |path| {
            let _ = chosen.send(path);
        });
    let Some(path) = picked.await.ok().flatten() else {
        return Ok(None);
    };
    let path = path
        .into_path()
        .map_err(|_| IpcError::invalid("That file is not on this computer's disk."))?;
    state.still_open(&client).await?;
    send_path(&client, &peer, path).await.map(Some)
}

/// Sends the files last dropped on the window (the window learns their names from `files_dropped`), each whatever
/// happens to the others; the first refusal is the answer then (those sent show through their events).
#[tauri::command]
pub async fn send_dropped(state: State<'_, AppState>, peer: String) -> Result<Vec<MessageItem>, IpcError> {
    let client = state.client().await?;
    let (mut sent, mut refused) = (Vec::new(), None);
    for path in state.take_dropped() {
        match send_path(&client, &peer, path).await {
            Ok(message) => sent.push(message),
            Err(error) => {
                refused.get_or_insert(error);
            }
        }
    }
    refused.map_or(Ok(sent), Err)
}

/// Sends an image pasted into the window (its bytes, standard base64), as `name`.
#[tauri::command]
pub async fn send_pasted(
    state: State<'_, AppState>,
    peer: String,
    name: String,
    data: String,
) -> Result<MessageItem, IpcError> {
    let client = state.client().await?;
    let bytes = STANDARD
        .decode(data.as_bytes())
        .map_err(|_| IpcError::invalid("The pasted data is malformed."))?;
    let name = Path::new(&name)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pasted.png".into());
    // The paste lives in the clear only until it is sealed into the profile.
    let dir = tempfile::tempdir().map_err(|e| IpcError::internal(format!("No temporary folder: {e}")))?;
    let path = dir.path().join(name);
    let written = path.clone();
    super::blocking(move || {
        std::fs::write(&written, bytes).map_err(|e| IpcError::internal(format!("Could not keep the paste: {e}")))
    })
    .await?;
    let sent = send_path(&client, &peer, path).await;
    drop(dir);
    sent
}

/// Where the transfer of file message `id` stands.
#[tauri::command]
pub async fn file_status(state: State<'_, AppState>, id: String) -> Result<FileStatus, IpcError> {
    let client = state.client().await?;
    Ok(file_status_of(client.file_state(message_id(&id)?)?.map(|r| r.state)))
}

/// A transfer's state as the window shows it.
pub fn file_status_of(state: Option<FileState>) -> FileStatus {
    let (state, reason) = match state {
        Some(FileState::Uploading) => (TransferState::Uploading, None),
        Some(FileState::Uploaded) => (TransferState::Uploaded, None),
        Some(FileState::Downloading) => (TransferState::Downloading, None),
        Some(FileState::Offered) => (TransferState::Offered, None),
        Some(FileState::Downloaded | FileState::Kept) => (TransferState::Ready, None),
        Some(FileState::Failed(reason)) => (TransferState::Failed, Some(reason)),
        None => (TransferState::Unknown, None),
    };
    FileStatus { state, reason }
}

/// Asks the user where to save the file of message `id` (a native dialog) and writes it there; `false` when they
/// cancel.
#[tauri::command]
pub async fn save_file_as<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    id: String,
) -> Result<bool, IpcError> {
    let client = state.client().await?;
    let id = message_id(&id)?;
    let name = file_name(&client, id)?;
    let (chosen, picked) = tokio::sync::oneshot::channel();
    app.dialog().file().set_file_name(name).save_file(move |path| {
        let _ = chosen.send(path);
    });
    let Some(path) = picked.await.ok().flatten() else {
        return Ok(false);
    };
    let path = path
        .into_path()
        .map_err(|_| IpcError::invalid("Choose a folder on this computer's disk."))?;
    state.still_open(&client).await?;
    client.save_file(id, &path).await?;
    Ok(true)
}

/// Opens the file of message `id` with the system's app for it, from a copy in a private folder removed when Magpie
/// closes. Programs and scripts are not opened (see [`RUNNABLE`]).
#[tauri::command]
pub async fn open_file<R: Runtime>(app: AppHandle<R>, state: State<'_, AppState>, id: String) -> Result<(), IpcError> {
    let client = state.client().await?;
    let id = message_id(&id)?;
    let name = file_name(&client, id)?;
    if runnable(&name) {
        return Err(IpcError::invalid(format!(
            "Magpie does not open programs or scripts someone sent ({name}). Save it, and open it yourself only if \
             you trust it."
        )));
    }
    let root = open_dir(state.data_dir());
    std::fs::create_dir_all(&root).map_err(|e| IpcError::internal(format!("No folder to open it from: {e}")))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| IpcError::internal(format!("The folder to open it from is not private: {e}")))?;
    }
    // A folder of its own per opening, so two files of one name do not meet.
    let dir = tempfile::Builder::new()
        .prefix("")
        .tempdir_in(&root)
        .map_err(|e| IpcError::internal(format!("No folder to open it from: {e}")))?
        .keep();
    let path = dir.join(name);
    client.save_file(id, &path).await?;
    app.opener()
        .open_path(path.to_string_lossy(), None::<&str>)
        .map_err(|e| IpcError::internal(format!("No app opened it: {e}")))
}

/// The image of message `id` as a data URL, for the viewer.
#[tauri::command]
pub async fn image_data(state: State<'_, AppState>, id: String) -> Result<String, IpcError> {
    let client = state.client().await?;
    let id = message_id(&id)?;
    let media_type = file_view(&client, id)?.media_type;
    if !media_type.starts_with("image/") || media_type.contains("svg") {
        return Err(IpcError::invalid(
            "Only pictures are shown here: open the file instead.",
        ));
    }
    let bytes = client.file_bytes(id, MOST_SHOWN_BYTES).await?;
    Ok(format!(
        "data:{media_type};base64,{}",
        STANDARD.encode(bytes.as_slice())
    ))
}

/// Stops the transfer of file message `id`.
#[tauri::command]
pub async fn cancel_file(state: State<'_, AppState>, id: String) -> Result<(), IpcError> {
    let client = state.client().await?;
    Ok(client.cancel_file(message_id(&id)?)?)
}

/// Downloads a received file: one too large to fetch unasked, or one cancelled or failed on the way.
#[tauri::command]
pub async fn download_file(state: State<'_, AppState>, id: String) -> Result<(), IpcError> {
    let client = state.client().await?;
    Ok(client.download_file(message_id(&id)?)?)
}

fn file_view(client: &Client, id: Uuid) -> Result<magpie_core::engine::FileView, IpcError> {
    client
        .store()
        .get_message(id)?
        .and_then(|entry| MessageView::from(&entry).file)
        .ok_or_else(|| IpcError::invalid("That message is not a file."))
}

fn file_name(client: &Client, id: Uuid) -> Result<String, IpcError> {
    Ok(file_view(client, id)?.name)
}

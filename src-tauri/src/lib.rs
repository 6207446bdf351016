//! Magpie's desktop shell: a thin Tauri layer over magpie-core.

mod commands;
mod convert;
mod demo;
mod dialogs;
mod error;
pub mod ipc_types;
pub mod local_relay;
mod notify;
mod perf;
mod qr;
mod rendering;
mod session;
mod sleep;
pub mod state;
mod thumbnail;
mod tray;

use std::path::PathBuf;

use tauri::{App, AppHandle, Builder, Context, Manager as _, RunEvent, Runtime};

use crate::error::{IpcError, IpcErrorCode};
use crate::local_relay::DEFAULT_PORT;
pub use crate::local_relay::PORT_ENV as LOCAL_RELAY_PORT_ENV;
use crate::state::AppState;

/// Overrides where the app keeps its data (tests and portable installs).
pub const DATA_DIR_ENV: &str = "MAGPIE_DATA_DIR";

/// What `magpie --version` or `magpie --help` prints, when the first argument asks for it. Anything else (a
/// launcher's file arguments, say) starts the app.
pub fn answer_flags(mut args: impl Iterator<Item = String>) -> Option<String> {
    let version = env!("CARGO_PKG_VERSION");
    match args.next()?.as_str() {
        "--version" | "-V" => Some(format!("Magpie {version}")),
        "--help" | "-h" => Some(format!(
            "Magpie {version}, an end-to-end encrypted messenger.\n\n\
             Usage: magpie [--version | --help]\n\n\
             Environment:\n  \
             {DATA_DIR_ENV}           where profiles and settings are kept\n  \
             {LOCAL_RELAY_PORT_ENV}   the port of the relay on this computer (default {DEFAULT_PORT})"
        )),
        _ => None,
    }
}

/// Starts the desktop app. Called by `main`.
pub fn run() {
    perf::moment("main");
    rendering::choose();
    init_logging();
    // A second launch focuses the running window instead of opening the same profiles twice.
    let builder = Builder::default()
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
            if let Some(window) = app.get_webview_window("main") {
                let _ = window.unminimize();
                let _ = window.set_focus();
            }
        }))
        .plugin(tauri_plugin_window_state::Builder::default().build());
    let app = match build_app(builder, tauri::generate_context!()) {
        Ok(app) => app,
        Err(error) => {
            tracing::error!(%error, "Magpie could not start");
            std::process::exit(1);
        }
    };
    perf::moment("built");
    // The tray icon costs the main thread about 20 ms (measured): not before the window and its chat list.
    let handle = app.handle().clone();
    tauri::async_runtime::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let on_main = handle.clone();
        let shown = handle.run_on_main_thread(move || {
            tray::create(&on_main);
            // The count made at start found no icon yet.
            tray::refresh_unread_soon(&on_main);
        });
        if let Err(error) = shown {
            tracing::warn!(%error, "no tray icon");
        }
    });
    // Files "Open" decrypted for other apps in a run that did not end cleanly.
    let _ = std::fs::remove_dir_all(commands::files::open_dir(app.state::<AppState>().data_dir()));
    // Open last time's profile (its history may be large) while the window is still starting.
    let handle = app.handle().clone();
    tauri::async_runtime::spawn(async move {
        let state = handle.state::<AppState>();
        // Restores a crash or a quit left unfinished, with their credential-store entries (off the start's path).
        let (profiles, keystore) = (state.profiles_dir(), state.keystore());
        tauri::async_runtime::spawn_blocking(move || {
            magpie_core::backup::sweep_unfinished(&profiles, keystore.as_ref());
        });
        match commands::profiles::current_or_last(&handle, &state).await {
            Ok(_) => perf::moment("reopened"),
            Err(error) => tracing::warn!(%error, "could not reopen last time's profile"),
        }
    });
    app.run(|handle, event| {
        if let RunEvent::Exit = event {
            shut_down(handle);
        }
    });
}

/// The app's commands, and with the `perf` feature the measurement ones.
macro_rules! handler {
    ($($perf:path),*) => {
        tauri::generate_handler![
            commands::app::app_info,
            commands::app::get_settings,
            commands::app::save_settings,
            commands::profiles::list_profiles,
            commands::profiles::probe_relay,
            commands::profiles::create_profile,
            commands::profiles::open_profile,
            commands::profiles::identity,
            commands::profiles::delete_profile,
            commands::lock::unlock,
            commands::lock::cancel_unlock,
            commands::lock::lock_now,
            commands::lock::lock_status,
            commands::lock::set_lock_passphrase,
            commands::lock::remove_lock_passphrase,
            commands::chats::connection_state,
            commands::chats::chats,
            commands::chats::messages,
            commands::chats::send_message,
            commands::chats::retry_message,
            commands::chats::mark_read,
            commands::chats::clear_chat,
            commands::chats::start_chat,
            commands::chats::requests,
            commands::chats::accept_request,
            commands::chats::decline_request,
            commands::chats::safety_number,
            commands::chats::mark_verified,
            commands::chats::accept_new_key,
            commands::chats::dismiss_discarded,
            commands::files::attach_file,
            commands::files::send_dropped,
            commands::files::send_pasted,
            commands::files::file_status,
            commands::files::save_file_as,
            commands::files::open_file,
            commands::files::image_data,
            commands::files::cancel_file,
            commands::files::download_file,
            commands::search::search,
            commands::search::search_more,
            commands::search::messages_around,
            commands::search::messages_after,
            commands::backup::backup_now,
            commands::backup::cancel_backup,
            commands::backup::pick_backup,
            commands::backup::restore_backup,
            commands::backup::export_chat,
            demo::run_demo,
            $($perf),*
        ]
    };
}

/// Builds the app on any runtime, so tests can use `tauri::test::mock_builder()`.
pub fn build_app<R: Runtime>(builder: Builder<R>, context: Context<R>) -> tauri::Result<App<R>> {
    let builder = builder
        .plugin(tauri_plugin_notification::init())
        // Used from Rust only (the window has no permission for either): pickers, and "Open" with the system's app.
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_opener::init())
        .on_window_event(|window, event| match event {
            tauri::WindowEvent::DragDrop(tauri::DragDropEvent::Drop { paths, .. }) => {
                files_dropped(window.app_handle(), paths.clone());
            }
            tauri::WindowEvent::CloseRequested { api, .. } => {
                let app = window.app_handle();
                let keep = app.state::<AppState>().settings().keep_running_in_tray;
                if keep && app.tray_by_id(tray::TRAY_ID).is_some() {
                    api.prevent_close();
                    let _ = window.hide();
                }
            }
            _ => {}
        });
    #[cfg(feature = "perf")]
    let builder = builder.invoke_handler(handler!(perf::perf_open_chat, perf::perf_mark));
    #[cfg(not(feature = "perf"))]
    let builder = builder.invoke_handler(handler!());
    let app = builder.build(context)?;
    // Managed before the window can call anything: the first command needs the data folder.
    let dir = data_dir(app.handle()).map_err(|error| tauri::Error::Anyhow(error.into()))?;
    app.manage(AppState::new(dir));
    notify::init(app.handle());
    sleep::watch(app.handle());
    Ok(app)
}

/// Keeps the files dropped on the window for `send_dropped` and tells the window their names.
fn files_dropped<R: Runtime>(app: &AppHandle<R>, paths: Vec<PathBuf>) {
    use tauri::Emitter as _;
    let files: Vec<PathBuf> = paths.into_iter().filter(|p| p.is_file()).collect();
    if files.is_empty() {
        return;
    }
    let names = files
        .iter()
        .map(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    app.state::<AppState>().set_dropped(files);
    let _ = app.emit(ipc_types::EVENT, ipc_types::UiEvent::FilesDropped { names });
}

/// Closes the open profile (flushing its history) and stops the embedded relay before the process ends.
fn shut_down<R: Runtime>(handle: &AppHandle<R>) {
    let state = handle.state::<AppState>();
    tauri::async_runtime::block_on(async {
        if let Some(active) = state.active().lock().await.take() {
            session::close_logged(active).await;
        }
        state.stop_local_relay().await;
    });
    // What "Open" decrypted for other apps goes with us.
    let _ = std::fs::remove_dir_all(commands::files::open_dir(state.data_dir()));
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

fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    // `Targets` ("debug", "magpie_core=debug,info") rather than EnvFilter: the same filters people use, without
    // the regex engine EnvFilter links (about 100 kB of the installer).
    let filter = std::env::var("MAGPIE_LOG")
        .ok()
        .and_then(|spec| spec.parse::<tracing_subscriber::filter::Targets>().ok())
        .unwrap_or_else(|| tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO));
    // Fails only if a subscriber is already set, which is harmless.
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer())
        .with(filter)
        .try_init();
}

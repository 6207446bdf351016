//! Magpie's desktop shell: a thin Tauri layer over magpie-core.

mod commands;
mod error;
pub mod ipc_types;

use tauri::{App, Builder, Context, Runtime};

/// Starts the desktop app. Called by `main`.
pub fn run() {
    init_logging();
    let app = match build_app(Builder::default(), tauri::generate_context!()) {
        Ok(app) => app,
        Err(error) => {
            tracing::error!(%error, "Magpie could not start");
            std::process::exit(1);
        }
    };
    app.run(|_handle, _event| {});
}

/// Builds the app on any runtime, so tests can use `tauri::test::mock_builder()`.
pub fn build_app<R: Runtime>(builder: Builder<R>, context: Context<R>) -> tauri::Result<App<R>> {
    builder
        .invoke_handler(tauri::generate_handler![commands::app_info])
        .build(context)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MAGPIE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Fails only if a subscriber is already set, which is harmless.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
}

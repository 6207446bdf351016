//! The commands answer over Tauri's real IPC path: mock runtime, but the real capabilities, handlers and serde.
#![allow(
    clippy::unwrap_used,
    reason = "helpers of tests: any error must fail the test loudly"
)]

use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{get_ipc_response, mock_builder, MockRuntime, INVOKE_KEY};
use tauri::webview::InvokeRequest;
use tauri::{App, WebviewWindow};

// Debug builds serve the UI from Vite's dev server, which the capability treats as the app's own origin.
const APP_ORIGIN: &str = "http://localhost:1420";

fn app_with_main_window() -> (App<MockRuntime>, WebviewWindow<MockRuntime>) {
    // The real context: the app's own capabilities decide what the window may call.
    let app = magpie_desktop::build_app(mock_builder(), tauri::generate_context!(test = true)).unwrap();
    let window = tauri::WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .unwrap();
    (app, window)
}

fn request(command: &str, origin: &str) -> InvokeRequest {
    InvokeRequest {
        cmd: command.into(),
        callback: CallbackFn(0),
        error: CallbackFn(1),
        url: origin.parse().unwrap(),
        body: InvokeBody::default(),
        headers: Default::default(),
        invoke_key: INVOKE_KEY.to_string(),
    }
}

#[test]
fn app_info_reports_version_data_dir_and_the_real_credential_store() {
    let data_dir = tempfile::tempdir().unwrap();
    std::env::set_var("MAGPIE_DATA_DIR", data_dir.path());
    let (_app, window) = app_with_main_window();

    let response = get_ipc_response(&window, request("app_info", APP_ORIGIN));
    let info: serde_json::Value = response.unwrap().deserialize().unwrap();

    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["data_dir"], data_dir.path().display().to_string());
    // Run by scripts/test.sh inside a D-Bus session with an unlocked gnome-keyring.
    assert_eq!(info["credential_store"]["available"], true, "{info}");
    assert_eq!(info["credential_store"]["problem"], serde_json::Value::Null);
}

#[test]
fn a_remote_page_may_not_call_the_backend() {
    let (_app, window) = app_with_main_window();
    let refused = get_ipc_response(&window, request("app_info", "https://evil.example/")).unwrap_err();
    assert!(refused.to_string().contains("not allowed"), "{refused}");
}

#[test]
fn commands_the_app_does_not_have_are_refused() {
    let (_app, window) = app_with_main_window();
    let refused = get_ipc_response(&window, request("plugin:fs|read_file", APP_ORIGIN)).unwrap_err();
    assert!(refused.to_string().contains("Plugin not found"), "{refused}");
}

/// Builds people install have no measurement commands: neither their handler nor a capability allowing them
/// (scripts/perf-app.sh builds with the `perf` feature).
#[cfg(not(feature = "perf"))]
#[test]
fn the_perf_commands_are_not_in_builds_without_the_perf_feature() {
    let (_app, window) = app_with_main_window();
    for command in ["perf_mark", "perf_open_chat"] {
        let refused = get_ipc_response(&window, request(command, APP_ORIGIN)).unwrap_err();
        assert!(refused.to_string().contains("not allowed"), "{command}: {refused}");
    }
}

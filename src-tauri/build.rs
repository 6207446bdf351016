// Declaring our commands makes Tauri generate an `allow-<command>` permission for each, so the capability file
// grants exactly these and nothing else.
const COMMANDS: &[&str] = &[
    "app_info",
    "get_settings",
    "save_settings",
    "list_profiles",
    "probe_relay",
    "create_profile",
    "open_profile",
    "identity",
    "delete_profile",
    "unlock",
    "cancel_unlock",
    "lock_now",
    "lock_status",
    "set_lock_passphrase",
    "remove_lock_passphrase",
    "connection_state",
    "chats",
    "messages",
    "send_message",
    "retry_message",
    "mark_read",
    "clear_chat",
    "start_chat",
    "requests",
    "accept_request",
    "decline_request",
    "safety_number",
    "mark_verified",
    "accept_new_key",
    "dismiss_discarded",
    "attach_file",
    "send_dropped",
    "send_pasted",
    "file_status",
    "save_file_as",
    "open_file",
    "image_data",
    "cancel_file",
    "download_file",
    "search",
    "search_more",
    "messages_around",
    "messages_after",
    "backup_now",
    "cancel_backup",
    "pick_backup",
    "restore_backup",
    "export_chat",
    "run_demo",
];

/// Declared, and allowed by `capabilities/perf/`, only with the `perf` feature (scripts/perf-app.sh).
const PERF_COMMANDS: &[&str] = &["perf_open_chat", "perf_mark"];

fn main() {
    let perf = std::env::var_os("CARGO_FEATURE_PERF").is_some();
    let commands: &'static [&'static str] = match perf {
        true => Box::leak([COMMANDS, PERF_COMMANDS].concat().into_boxed_slice()),
        false => COMMANDS,
    };
    // Without the feature, only the capabilities at the top of the folder are read (not capabilities/perf/).
    let capabilities = match perf {
        true => "./capabilities/**/*.json",
        false => "./capabilities/*.json",
    };
    println!("cargo:rerun-if-changed=capabilities");
    let attributes = tauri_build::Attributes::new()
        .app_manifest(tauri_build::AppManifest::new().commands(commands))
        .capabilities_path_pattern(capabilities);
    if let Err(error) = tauri_build::try_build(attributes) {
        // A build script reports failure by exiting non-zero with a message cargo shows.
        eprintln!("tauri build step failed: {error:#}");
        std::process::exit(1);
    }
}

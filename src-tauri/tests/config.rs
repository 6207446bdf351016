//! Guards on the shipped configuration: what a reviewer would check by hand, checked on every run.
#![allow(
    clippy::unwrap_used,
    reason = "helpers of tests: any error must fail the test loudly"
)]

use serde_json::Value;

fn json(relative: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn product_identity_is_magpie() {
    let conf = json("tauri.conf.json");
    assert_eq!(conf["productName"], "Magpie");
    assert_eq!(conf["identifier"], "app.magpie.desktop");
    let window = &conf["app"]["windows"][0];
    assert_eq!(
        (window["minWidth"].as_u64(), window["minHeight"].as_u64()),
        (Some(800), Some(560))
    );
}

#[test]
fn production_csp_allows_no_inline_code_and_no_remote_origins() {
    let conf = json("tauri.conf.json");
    let csp = conf["app"]["security"]["csp"].as_object().unwrap();
    for (directive, sources) in csp {
        let sources = sources.as_str().unwrap();
        assert!(!sources.contains("unsafe-"), "{directive} allows {sources}");
        assert!(
            !sources.contains("https:") && !sources.contains('*'),
            "{directive} allows {sources}"
        );
    }
    assert_eq!(csp["default-src"], "'self'");
    assert_eq!(csp["object-src"], "'none'");
}

#[test]
fn the_window_may_call_only_our_own_commands_and_listen() {
    let capability = json("capabilities/default.json");
    let permissions: Vec<&str> = capability["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(!permissions.is_empty());
    assert!(
        !permissions.iter().any(|p| p.contains("perf")),
        "the measurement commands are allowed only by capabilities/perf/, with the perf feature"
    );
    // Listening to events is the one core capability the UI needs (our events carry no secrets).
    const EVENT_LISTENING: [&str; 2] = ["core:event:allow-listen", "core:event:allow-unlisten"];
    for permission in permissions {
        assert!(
            permission.starts_with("allow-") || EVENT_LISTENING.contains(&permission),
            "{permission} is not one of the app's own commands"
        );
    }
}

#[test]
fn one_version_for_the_workspace_the_app_and_the_ui_package() {
    let conf = json("tauri.conf.json");
    assert!(
        conf.get("version").is_none(),
        "the app takes the workspace's version from Cargo.toml"
    );
    assert_eq!(json("../package.json")["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn the_installed_command_is_magpie_and_answers_version_and_help() {
    // Only for the installers (`npm run bundle`, release.yml): in a shared target folder the renamed app would
    // overwrite the `magpie` command line's binary.
    assert!(json("tauri.conf.json").get("mainBinaryName").is_none());
    assert_eq!(json("tauri.bundle.conf.json")["mainBinaryName"], "magpie");
    let answer = |args: &[&str]| magpie_desktop::answer_flags(args.iter().map(|a| a.to_string()));
    assert_eq!(
        answer(&["--version"]),
        Some(format!("Magpie {}", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(answer(&["-V"]), answer(&["--version"]));
    assert!(answer(&["--help"]).unwrap().contains("MAGPIE_DATA_DIR"));
    assert_eq!(answer(&[]), None, "no arguments start the app");
    assert_eq!(
        answer(&["invite.magpie"]),
        None,
        "a launcher's file argument starts the app"
    );
}

#[test]
fn linux_packages_name_what_the_app_loads_at_run_time() {
    let linux = &json("tauri.conf.json")["bundle"]["linux"];
    // keyring's Secret Service backend links libdbus; Tauri adds WebKitGTK and GTK itself.
    assert_eq!(linux["deb"]["depends"], serde_json::json!(["libdbus-1-3"]));
    assert_eq!(linux["rpm"]["depends"], serde_json::json!(["dbus-libs"]));
}

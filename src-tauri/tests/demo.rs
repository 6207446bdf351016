//! The handshake demo runs the real protocol: every step passes with real values, and a bit flipped by the relay
//! in the key transfer is caught by Bob at step 6.
#![allow(
    clippy::unwrap_used,
    reason = "helpers of tests: any error must fail the test loudly"
)]

use serde_json::{json, Value};
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{get_ipc_response, mock_builder, INVOKE_KEY};
use tauri::webview::InvokeRequest;

fn run_demo(tamper: bool) -> Value {
    let data = tempfile::tempdir().unwrap();
    std::env::set_var("MAGPIE_DATA_DIR", data.path());
    let app = magpie_desktop::build_app(mock_builder(), tauri::generate_context!(test = true)).unwrap();
    let window = tauri::WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .unwrap();
    let request = InvokeRequest {
        cmd: "run_demo".into(),
        callback: CallbackFn(0),
        error: CallbackFn(1),
        url: "http://localhost:1420".parse().unwrap(),
        body: InvokeBody::Json(json!({ "tamper": tamper })),
        headers: Default::default(),
        invoke_key: INVOKE_KEY.to_string(),
    };
    get_ipc_response(&window, request).unwrap().deserialize().unwrap()
}

fn statuses(run: &Value) -> Vec<String> {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| step["status"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_demo_runs_all_seven_steps_for_real_and_shows_the_tampering_relay_caught() {
    let run = run_demo(false);
    assert_eq!(statuses(&run), vec!["passed"; 7], "{run:#}");
    assert_eq!(run["failure"], Value::Null);
    let message = &run["message"];
    assert_eq!(message["plaintext_received"], message["plaintext_sent"]);
    // The relay held ciphertext: the text's bytes are not in what it stored.
    let text_hex: String = message["plaintext_sent"]
        .as_str()
        .unwrap()
        .bytes()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    let preview = message["ciphertext_preview_hex"].as_str().unwrap();
    assert!(preview.len() >= 32 && !preview.contains(&text_hex), "{preview}");
    let kinds: Vec<&str> = run["wire"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for kind in ["chat_request", "chat_accept", "key_transfer", "key_confirm", "message"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    // Real values: the wrapped key is RSA-3072 sized, fingerprints differ per party.
    let wrap = run["steps"][3]["fields"][0]["full"].as_str().unwrap();
    assert_eq!(wrap.len(), 384 * 2);
    assert_ne!(run["alice"]["fingerprint"], run["bob"]["fingerprint"]);

    let tampered = run_demo(true);
    assert_eq!(
        statuses(&tampered),
        [
            "passed",
            "passed",
            "passed",
            "passed",
            "passed",
            "failed",
            "not_reached"
        ],
        "{tampered:#}"
    );
    let failure = tampered["failure"].as_str().unwrap();
    assert!(failure.to_lowercase().contains("signature"), "{failure}");
    assert_eq!(tampered["message"], Value::Null);
    let transfer = tampered["wire"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "key_transfer")
        .unwrap();
    assert_eq!(transfer["tampered"], true);
}

//! The handshake demo runs the real protocol: every step passes with real values, and each attack the relay can
//! play is stopped by the check the demo names, with the values that check compared (a first contact's man in the
//! middle by nothing but the differing safety numbers).
#![allow(
    clippy::unwrap_used,
    reason = "helpers of tests: any error must fail the test loudly"
)]

use std::sync::OnceLock;

use serde_json::{json, Value};
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{get_ipc_response, mock_builder, INVOKE_KEY};
use tauri::webview::InvokeRequest;

fn run_demo(attack: &str) -> Value {
    // One data folder for the tests, which run on parallel threads: the variable is set once.
    static DATA: OnceLock<tempfile::TempDir> = OnceLock::new();
    let data = DATA.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        std::env::set_var("MAGPIE_DATA_DIR", dir.path());
        dir
    });
    assert!(data.path().exists());
    let app = magpie_desktop::build_app(mock_builder(), tauri::generate_context!(test = true)).unwrap();
    let window = tauri::WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .unwrap();
    let request = InvokeRequest {
        cmd: "run_demo".into(),
        callback: CallbackFn(0),
        error: CallbackFn(1),
        url: "http://localhost:1420".parse().unwrap(),
        body: InvokeBody::Json(json!({ "attack": attack })),
        headers: Default::default(),
        invoke_key: INVOKE_KEY.to_string(),
    };
    let run: Value = get_ipc_response(&window, request).unwrap().deserialize().unwrap();
    assert_eq!(run["attack"], attack);
    run
}

fn statuses(run: &Value) -> Vec<String> {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| step["status"].as_str().unwrap().to_owned())
        .collect()
}

/// The verdict's field `label`.
fn verdict_field<'a>(run: &'a Value, label: &str) -> &'a str {
    let field = run["verdict"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["label"] == label);
    assert!(field.is_some(), "no {label:?} in {:#}", run["verdict"]);
    field.unwrap()["value"].as_str().unwrap()
}

fn wire_actions(run: &Value, kind: &str) -> Vec<String> {
    wire_actions_from(run, kind, None)
}

/// What the relay did with each envelope of `kind` (sent by `from`, if given), in order.
fn wire_actions_from(run: &Value, kind: &str, from: Option<&str>) -> Vec<String> {
    run["wire"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind && from.is_none_or(|from| e["from"] == from))
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

fn stopped_at(run: &Value, step: usize) {
    let mut expected = vec!["passed"; 7];
    expected[step - 1] = "failed";
    for later in expected.iter_mut().skip(step) {
        *later = "not_reached";
    }
    assert_eq!(statuses(run), expected, "{run:#}");
    assert_eq!(run["message"], Value::Null);
    assert_eq!(run["verdict"]["step"], step);
}

#[test]
fn an_honest_relay_carries_all_seven_steps_and_a_flipped_bit_is_caught_by_bob_at_step_6() {
    let run = run_demo("none");
    assert_eq!(statuses(&run), vec!["passed"; 7], "{run:#}");
    assert_eq!((&run["failure"], &run["verdict"]), (&Value::Null, &Value::Null));
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
    for kind in ["chat_request", "chat_accept", "key_transfer", "key_confirm", "message"] {
        assert!(
            wire_actions(&run, kind).iter().all(|a| a == "carried") && !wire_actions(&run, kind).is_empty(),
            "{kind}: {:?}",
            wire_actions(&run, kind)
        );
    }
    // Real values: the wrapped key is RSA-3072 sized, fingerprints differ per party.
    let wrap = run["steps"][3]["fields"][0]["full"].as_str().unwrap();
    assert_eq!(wrap.len(), 384 * 2);
    assert_ne!(run["alice"]["fingerprint"], run["bob"]["fingerprint"]);

    let flipped = run_demo("flip_wrapped_key");
    stopped_at(&flipped, 6);
    assert_eq!(flipped["verdict"]["caught_by"], "bob");
    assert!(
        flipped["failure"].as_str().unwrap().contains("signature"),
        "{flipped:#}"
    );
    assert_eq!(wire_actions(&flipped, "key_transfer"), ["tampered"]);
    // The values side by side differ in exactly the flipped bit (the first byte's lowest).
    let sent = verdict_field(&flipped, "Wrapped K as Alice sent it");
    let delivered = verdict_field(&flipped, "Wrapped K as the relay delivered it");
    let byte = |hex: &str| u8::from_str_radix(&hex[..2], 16).unwrap();
    assert_eq!(byte(sent) ^ byte(delivered), 1, "{sent} / {delivered}");
    assert_eq!(sent[2..], delivered[2..]);
}

#[test]
fn a_forged_key_confirmation_is_caught_by_alice_and_a_dropped_one_opens_nothing() {
    let forged = run_demo("forge_key_confirm");
    stopped_at(&forged, 7);
    assert_eq!(forged["verdict"]["caught_by"], "alice");
    assert_eq!(wire_actions(&forged, "key_confirm"), ["tampered"]);
    let sent = verdict_field(&forged, "MAC Bob sent");
    let delivered = verdict_field(&forged, "MAC the relay delivered");
    assert_ne!(sent, delivered);
    assert_eq!(sent[2..], delivered[2..]);
    assert!(
        verdict_field(&forged, "Alice's engine").contains("key confirmation failed"),
        "{forged:#}"
    );
    assert!(wire_actions(&forged, "message").is_empty(), "Alice sealed nothing");
    assert_eq!(verdict_field(&forged, "Messages Alice sealed"), "0");

    let dropped = run_demo("drop_key_confirm");
    stopped_at(&dropped, 7);
    assert_eq!(
        dropped["verdict"]["caught_by"],
        Value::Null,
        "no check ran: the chat stalled"
    );
    assert_eq!(
        verdict_field(&dropped, "Alice's handshake with bob"),
        "under way, waiting for his confirmation"
    );
    assert_eq!(verdict_field(&dropped, "Messages Alice sealed"), "0");
    assert_eq!(wire_actions(&dropped, "key_confirm"), ["dropped"]);
    assert_eq!(dropped["verdict"]["kind"], "stalled");
    assert_eq!(verdict_field(&dropped, "Delivered to Alice"), "nothing");
    let why = dropped["failure"].as_str().unwrap();
    assert!(why.contains("no key confirmation from bob came in"), "{why}");
    assert!(wire_actions(&dropped, "message").is_empty(), "Alice sealed nothing");
}

#[test]
fn replays_of_a_message_and_of_an_old_request_are_dropped_and_reported_by_bob() {
    let message = run_demo("replay_message");
    assert_eq!(statuses(&message), vec!["passed"; 7], "{message:#}");
    assert_eq!(message["verdict"]["caught_by"], "bob");
    // Bob's receipt is a message too, in either place: only Alice's count.
    assert_eq!(
        wire_actions_from(&message, "message", Some("alice")),
        ["carried", "replayed"]
    );
    assert_ne!(
        verdict_field(&message, "Envelope it first came in"),
        verdict_field(&message, "Envelope of the copy")
    );
    assert!(
        verdict_field(&message, "Bob's engine").contains("the relay (or the sender) sent it again"),
        "{message:#}"
    );
    assert_eq!(verdict_field(&message, "Times it shows in Bob's chat"), "1");

    let request = run_demo("replay_old_request");
    assert_eq!(statuses(&request), vec!["passed"; 7], "{request:#}");
    assert_eq!(request["verdict"]["caught_by"], "bob");
    assert_eq!(wire_actions(&request, "chat_request"), ["carried", "replayed"]);
    assert!(verdict_field(&request, "Bob's engine").contains("stale"), "{request:#}");
    let (signed, now) = (
        verdict_field(&request, "Signed by alice at"),
        verdict_field(&request, "Bob's clock"),
    );
    assert!(signed < now, "{signed} / {now}");
}

#[test]
fn a_substituted_certificate_is_caught_by_the_pin_and_on_first_contact_only_by_the_numbers() {
    let known = run_demo("substitute_known_contact");
    assert_eq!(statuses(&known), vec!["passed"; 7], "{known:#}");
    assert_eq!(known["verdict"]["caught_by"], "alice");
    let pinned = verdict_field(&known, "Key pinned for bob");
    let presented = verdict_field(&known, "Key the directory presented");
    assert_ne!(pinned, presented);
    assert!(known["bob"]["fingerprint"].as_str().unwrap().starts_with(&pinned[..32]));
    assert_eq!(verdict_field(&known, "Alice's request"), "not sent");
    assert_eq!(
        wire_actions(&known, "chat_request").len(),
        1,
        "no second request went out"
    );

    let mitm = run_demo("substitute_first_contact");
    assert_eq!(statuses(&mitm), vec!["passed"; 7], "{mitm:#}");
    assert_eq!(mitm["verdict"]["caught_by"], Value::Null);
    let alice_sees = verdict_field(&mitm, "Safety number on Alice's screen");
    let bob_sees = verdict_field(&mitm, "Safety number on Bob's screen");
    let honest = verdict_field(&mitm, "Both would show, with no one in the middle");
    assert_ne!(alice_sees, bob_sees);
    assert!(alice_sees != honest && bob_sees != honest);
    assert_eq!(alice_sees.split(' ').count(), 12, "{alice_sees}");
    assert_eq!(
        verdict_field(&mitm, "What the relay read"),
        mitm["message"]["plaintext_sent"].as_str().unwrap()
    );
    assert_eq!(mitm["message"]["plaintext_received"], mitm["message"]["plaintext_sent"]);
    let bob_key = mitm["bob"]["fingerprint"].as_str().unwrap();
    assert!(!bob_key.starts_with(&verdict_field(&mitm, "bob's key as Alice holds it")[..32]));
    assert!(bob_key.starts_with(&verdict_field(&mitm, "bob's own key")[..32]));
    let carried = wire_actions(&mitm, "message");
    assert!(
        !carried.is_empty() && carried.iter().all(|a| a == "diverted"),
        "{carried:?}"
    );
    assert_eq!(mitm["verdict"]["kind"], "missed");
}

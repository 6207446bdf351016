//! The commands over Tauri's IPC path (mock runtime, real capabilities and serde), against the real embedded
//! relay on 127.0.0.1, the real Secret Service and sled on disk; the peer is a magpie-core client.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers of tests: any error must fail the test loudly"
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{error_code, notification_daemon, wait_event, Desktop};
use magpie_core::keystore::MemoryKeystore;
use magpie_core::{Client, Event, Profile};
use magpie_proto::Username;
use serde_json::{json, Value};

#[test]
fn onboarding_on_the_embedded_relay_then_a_chat_both_ways_with_a_core_client() {
    let data = tempfile::tempdir().unwrap();
    std::env::set_var("MAGPIE_DATA_DIR", data.path());
    std::env::set_var(magpie_desktop::LOCAL_RELAY_PORT_ENV, "0");
    let desktop = Desktop::start();

    assert_eq!(desktop.ok("identity", json!({})), Value::Null, "no profile yet");
    let refused = desktop
        .call(
            "create_profile",
            json!({"username": "No Spaces Allowed", "relay": {"kind": "local"}}),
        )
        .unwrap_err();
    assert_eq!(error_code(refused), "invalid_input");
    // A relay on another computer over plain http:// is refused before anything is asked of it.
    let plain = desktop
        .call("probe_relay", json!({"url": "http://relay.example.org"}))
        .unwrap_err();
    assert!(plain["message"].as_str().unwrap().contains("Use https://"), "{plain}");
    assert_eq!(error_code(plain), "invalid_input");

    let me = desktop.ok(
        "create_profile",
        json!({"username": "alice", "relay": {"kind": "local"}}),
    );
    assert_eq!(me["username"], "alice");
    assert_eq!(me["local_relay"], true);
    assert!(me["key_store"].as_str().unwrap().starts_with("Secret Service"), "{me}");
    let relay_url = me["relay_url"].as_str().unwrap().to_owned();
    assert!(relay_url.starts_with("http://127.0.0.1:"), "{relay_url}");
    let profiles = desktop.ok("list_profiles", json!({}));
    assert_eq!(profiles["active"], me["profile_id"]);
    assert_eq!(profiles["profiles"][0]["local_relay"], true);

    // Bob is a magpie-core client on the same relay.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (_daemon, notifications) = runtime.block_on(notification_daemon());
    let bob_dir = tempfile::tempdir().unwrap();
    let bob = runtime.block_on(async {
        let identity = magpie_tests::identity("bob");
        let profile =
            Profile::create_with_identity(bob_dir.path(), identity, Arc::new(MemoryKeystore::default())).unwrap();
        Client::register(profile, &relay_url, None).await.unwrap()
    });
    let mut bob_events = bob.events();
    let running = bob.clone();
    runtime.spawn(async move { running.run().await });

    let unknown = desktop.call("start_chat", json!({"peer": "nobody"})).unwrap_err();
    assert_eq!(error_code(unknown), "unknown_user");
    desktop.ok("start_chat", json!({"peer": "bob"}));
    assert_eq!(desktop.ok("requests", json!({}))["outgoing"], json!(["bob"]));

    runtime.block_on(async {
        wait_event(&mut bob_events, |e| matches!(e, Event::RequestReceived { .. })).await;
        let request = bob.sole_request_from(&Username::parse("alice").unwrap()).unwrap();
        bob.accept(request.request_id, &request.fingerprint).await.unwrap();
    });
    let chats = desktop.wait_for("chats", json!({}), |chats| chats[0]["has_session"] == true);
    assert_eq!(chats[0]["peer"], "bob");
    assert_eq!(chats[0]["verified"], false);

    let sent = desktop.ok("send_message", json!({"peer": "bob", "text": "hello bob"}));
    assert_eq!(sent["direction"], "outgoing");
    let empty = desktop
        .call("send_message", json!({"peer": "bob", "text": "   "}))
        .unwrap_err();
    assert_eq!(error_code(empty), "invalid_input");
    runtime.block_on(async {
        let got = wait_event(&mut bob_events, |e| matches!(e, Event::MessageReceived { .. })).await;
        let Event::MessageReceived { message } = got else {
            unreachable!()
        };
        assert_eq!(message.body, "hello bob");
        bob.send_text(&Username::parse("alice").unwrap(), "hello alice")
            .unwrap();
    });

    let page = desktop.wait_for(
        "messages",
        json!({"peer": "bob", "before": null, "limit": 50}),
        |page| page["messages"].as_array().unwrap().len() == 2,
    );
    assert_eq!(page["has_more"], false);
    assert_eq!(page["rekeys"], json!([]), "one session, no re-key");
    assert_eq!(page["messages"][1]["body"], "hello alice");
    assert_eq!(page["messages"][1]["direction"], "incoming");
    // The (unfocused) window announced it natively: who, never what.
    let shown = common::wait_shown(&notifications, 1);
    assert_eq!(
        (shown[0].summary.as_str(), shown[0].body.as_str()),
        ("Magpie", "New message from bob")
    );
    // Paging: the one message before the newest.
    let newest = page["messages"][1]["cursor"].as_u64().unwrap();
    let older = desktop.ok("messages", json!({"peer": "bob", "before": newest, "limit": 1}));
    assert_eq!(older["messages"][0]["body"], "hello bob");
    assert_eq!(older["has_more"], false);

    assert_eq!(desktop.ok("chats", json!({}))[0]["unread"], 1);
    desktop.ok("mark_read", json!({"peer": "bob", "cursor": newest}));
    assert_eq!(desktop.ok("chats", json!({}))[0]["unread"], 0);

    let number = desktop.ok("safety_number", json!({"peer": "bob"}));
    assert_eq!(number["groups"].as_array().unwrap().len(), 12);
    assert!(number["qr_svg"].as_str().unwrap().contains("<svg"));
    let bobs_view = bob.safety_number(&Username::parse("alice").unwrap()).unwrap();
    assert_eq!(
        number["groups"],
        json!(bobs_view.number.groups()),
        "both sides see one number"
    );
    // Verifying names the key whose number was shown: another is refused, and nothing is verified.
    let other = "ab".repeat(32);
    let refused = desktop
        .call("mark_verified", json!({"peer": "bob", "fingerprint": other}))
        .unwrap_err();
    assert_eq!(error_code(refused), "fingerprint_mismatch");
    assert_eq!(desktop.ok("chats", json!({}))[0]["verified"], false);
    let shown = number["fingerprint"].clone();
    assert_eq!(shown, json!(bob.fingerprint().to_hex()));
    assert_eq!(
        desktop.ok("mark_verified", json!({"peer": "bob", "fingerprint": shown}))["verified"],
        true
    );
    assert_eq!(desktop.ok("chats", json!({}))[0]["verified"], true);

    // Deleting the chat's messages keeps the chat: still listed, still verified, and it goes on. Their sealed
    // block leaves the profile's files at once (the app rewrites the history).
    let (profile_dir, needle) = {
        let client = desktop.client();
        let history = client.profile().history();
        let sealed = history.sealed_blocks(&Username::parse("bob").unwrap()).unwrap();
        history.flush().unwrap();
        let block = &sealed[0];
        (
            client.profile().dir().to_owned(),
            block[block.len() / 2..][..48].to_vec(),
        )
    };
    assert!(
        magpie_tests::dir_contains(&profile_dir, &needle),
        "the sealed block is on disk before"
    );
    assert_eq!(desktop.ok("clear_chat", json!({"peer": "bob"})), 2);
    assert!(
        !magpie_tests::dir_contains(&profile_dir, &needle),
        "a deleted message's sealed block is still in the profile's files"
    );
    let cleared = desktop.ok("messages", json!({"peer": "bob", "before": null, "limit": 50}));
    assert_eq!(cleared["messages"], json!([]));
    assert_eq!(desktop.ok("chats", json!({}))[0]["verified"], true);
    let mut settings = desktop.ok("get_settings", json!({}));
    settings["notifications"] = json!(false);
    desktop.ok("save_settings", json!({"settings": settings}));
    bob.send_text(&Username::parse("alice").unwrap(), "after clearing")
        .unwrap();
    let page = desktop.wait_for(
        "messages",
        json!({"peer": "bob", "before": null, "limit": 50}),
        |page| !page["messages"].as_array().unwrap().is_empty(),
    );
    assert_eq!(page["messages"][0]["body"], "after clearing");
    // The notification would follow the history write within moments.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(notifications.lock().unwrap().shown.len(), 1, "notifications are off");

    // Deleting the profile removes it from the list and its folder from the disk.
    let id = me["profile_id"].as_str().unwrap().to_owned();
    let left = desktop.ok("delete_profile", json!({"id": id}));
    assert_eq!(left["profiles"], json!([]));
    assert_eq!(left["active"], Value::Null);
    assert_eq!(error_code(desktop.call("chats", json!({})).unwrap_err()), "no_profile");
}

//! The app lock and notifications through the commands (mock runtime, the real embedded relay, the real Secret
//! Service, a stand-in notification daemon): one notification per chat, replaced as messages arrive, a click opens
//! the chat; locked, the commands read nothing, the window is told nothing, and notifications name nobody.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers of tests: any error must fail the test loudly"
)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{click, error_code, notification_daemon, wait_event, wait_shown, Desktop};
use magpie_core::keystore::MemoryKeystore;
use magpie_core::{Client, Event, Profile};
use magpie_proto::Username;
use serde_json::{json, Value};
use tauri::Listener as _;

const PASSPHRASE: &str = "correct horse battery";

#[test]
fn notifications_group_per_chat_open_it_and_name_nobody_while_locked() {
    let data = tempfile::tempdir().unwrap();
    std::env::set_var("MAGPIE_DATA_DIR", data.path());
    std::env::set_var(magpie_desktop::LOCAL_RELAY_PORT_ENV, "0");
    // logind's signals, played by the test on its private session bus (see the end).
    let session_bus = std::env::var("DBUS_SESSION_BUS_ADDRESS").expect("a D-Bus session (keyring-session.sh)");
    std::env::set_var("DBUS_SYSTEM_BUS_ADDRESS", &session_bus);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (logind, inhibitors) = runtime.block_on(fake_logind());
    let desktop = Desktop::start();
    let events: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen = events.clone();
    desktop.app.listen_any(magpie_desktop::ipc_types::EVENT, move |event| {
        seen.lock()
            .unwrap()
            .push(serde_json::from_str(event.payload()).unwrap());
    });
    let me = desktop.ok(
        "create_profile",
        json!({"username": "alice", "relay": {"kind": "local"}}),
    );
    let relay_url = me["relay_url"].as_str().unwrap().to_owned();

    let (daemon, notifications) = runtime.block_on(notification_daemon());
    let bob_dir = tempfile::tempdir().unwrap();
    let bob = runtime.block_on(async {
        let profile = Profile::create_with_identity(
            bob_dir.path(),
            magpie_tests::identity("bob"),
            Arc::new(MemoryKeystore::default()),
        )
        .unwrap();
        Client::register(profile, &relay_url, None).await.unwrap()
    });
    let mut bob_events = bob.events();
    let running = bob.clone();
    runtime.spawn(async move { running.run().await });
    desktop.ok("start_chat", json!({"peer": "bob"}));
    runtime.block_on(async {
        wait_event(&mut bob_events, |e| matches!(e, Event::RequestReceived { .. })).await;
        let request = bob.sole_request_from(&Username::parse("alice").unwrap()).unwrap();
        bob.accept(request.request_id, &request.fingerprint).await.unwrap();
    });
    desktop.wait_for("chats", json!({}), |chats| chats[0]["has_session"] == true);
    let alice = Username::parse("alice").unwrap();

    // Two messages from bob: one notification for the chat, the first taken back for the second.
    bob.send_text(&alice, "one").unwrap();
    let first = wait_shown(&notifications, 1);
    assert_eq!(first[0].body, "New message from bob");
    assert!(first[0].actions.contains(&"default".to_owned()), "a click is reported");
    bob.send_text(&alice, "two").unwrap();
    let second = wait_shown(&notifications, 2);
    assert_eq!(second[1].body, "2 new messages from bob");
    assert!(notifications.lock().unwrap().closed.contains(&first[0].id));

    // A click on it opens bob's chat in the window.
    runtime.block_on(click(&daemon, second[1].id));
    let opened = wait_until(&events, |e| e["type"] == "open_chat");
    assert_eq!(opened["peer"], "bob");
    // Opening (reading) the chat withdraws its notification.
    let newest = desktop.wait_for(
        "messages",
        json!({"peer": "bob", "before": null, "limit": 50}),
        |page| page["messages"].as_array().unwrap().len() == 2,
    )["messages"][1]["cursor"]
        .as_u64()
        .unwrap();
    desktop.ok("mark_read", json!({"peer": "bob", "cursor": newest}));
    assert!(notifications.lock().unwrap().closed.contains(&second[1].id));

    // Locked: nothing of the profile through the commands or the events, and a notification naming nobody.
    assert_eq!(
        error_code(desktop.call("lock_now", json!({})).unwrap_err()),
        "invalid_input",
        "no passphrase yet"
    );
    desktop.ok(
        "set_lock_passphrase",
        json!({"current": null, "passphrase": PASSPHRASE}),
    );
    assert_eq!(desktop.ok("lock_status", json!({})), json!({"on": true}));
    desktop.ok("lock_now", json!({}));
    wait_until(&events, |e| e["type"] == "locked");
    let locked = desktop.ok("list_profiles", json!({}))["locked"].clone();
    assert_eq!(locked["username"], "alice");
    assert_eq!(locked["open"], true);
    for command in ["chats", "requests", "identity"] {
        assert_eq!(
            error_code(desktop.call(command, json!({})).unwrap_err()),
            "locked",
            "{command}"
        );
    }
    let messages = desktop.call("messages", json!({"peer": "bob", "before": null, "limit": 5}));
    assert_eq!(error_code(messages.unwrap_err()), "locked");
    let events_before = events.lock().unwrap().len();
    bob.send_text(&alice, "while locked").unwrap();
    let third = wait_shown(&notifications, 3);
    assert_eq!(third[2].body, "New message", "no name while locked");
    std::thread::sleep(Duration::from_millis(300));
    let told: Vec<Value> = events.lock().unwrap()[events_before..].to_vec();
    assert!(told.iter().all(|e| e["type"] == "connection"), "{told:?}");

    let wrong = desktop.call("unlock", json!({"passphrase": "not it"})).unwrap_err();
    assert_eq!(error_code(wrong.clone()), "wrong_passphrase");
    assert_eq!(wrong["wait_secs"], 0);
    desktop.ok("unlock", json!({"passphrase": PASSPHRASE}));
    assert!(notifications.lock().unwrap().closed.contains(&third[2].id));
    let page = desktop.ok("messages", json!({"peer": "bob", "before": null, "limit": 50}));
    assert_eq!(
        page["messages"][2]["body"], "while locked",
        "it arrived behind the lock"
    );

    // The computer going to sleep locks it too (logind's PrepareForSleep(true)), the app holding the sleep back
    // (a delay lock taken at start) until the lock screen is up.
    wait_for(|| (inhibitors.lock().unwrap().len() == 1).then_some(()));
    let delay = inhibitors.lock().unwrap()[0].try_clone().unwrap();
    delay.set_nonblocking(true).unwrap();
    assert!(!released(&delay), "held while awake");
    let locks = || events.lock().unwrap().iter().filter(|e| e["type"] == "locked").count();
    assert_eq!(locks(), 1);
    let sleep_signal = |starting: bool| {
        let logind = logind.clone();
        async move {
            logind
                .emit_signal(
                    None::<&str>,
                    "/org/freedesktop/login1",
                    "org.freedesktop.login1.Manager",
                    "PrepareForSleep",
                    &(starting,),
                )
                .await
        }
    };
    runtime.block_on(async {
        // Again until heard: the app's listener may still be subscribing.
        let deadline = std::time::Instant::now() + common::PATIENCE;
        while locks() < 2 {
            assert!(std::time::Instant::now() < deadline, "sleep did not lock");
            assert!(!released(&delay), "the sleep was let go before the window locked");
            sleep_signal(true).await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    wait_for(|| released(&delay).then_some(()));
    assert_eq!(error_code(desktop.call("chats", json!({})).unwrap_err()), "locked");
    // Awake again: the delay lock is taken anew for the next sleep.
    runtime.block_on(sleep_signal(false)).unwrap();
    wait_for(|| (inhibitors.lock().unwrap().len() == 2).then_some(()));
    assert_eq!(error_code(desktop.call("chats", json!({})).unwrap_err()), "locked");
}

/// The far ends of the delay locks logind handed out.
type Inhibitors = Arc<Mutex<Vec<std::os::unix::net::UnixStream>>>;

/// Plays systemd-logind on the test's private bus (the app's system bus here): hands out delay locks.
struct FakeLogind(Inhibitors);

#[zbus::interface(name = "org.freedesktop.login1.Manager")]
impl FakeLogind {
    fn inhibit(&self, what: String, _who: String, _why: String, mode: String) -> zbus::zvariant::OwnedFd {
        assert_eq!((what.as_str(), mode.as_str()), ("sleep", "delay"));
        let (kept, given) = std::os::unix::net::UnixStream::pair().unwrap();
        self.0.lock().unwrap().push(kept);
        std::os::fd::OwnedFd::from(given).into()
    }
}

async fn fake_logind() -> (zbus::Connection, Inhibitors) {
    let inhibitors = Inhibitors::default();
    let connection = zbus::connection::Builder::session()
        .unwrap()
        .name("org.freedesktop.login1")
        .unwrap()
        .serve_at("/org/freedesktop/login1", FakeLogind(inhibitors.clone()))
        .unwrap()
        .build()
        .await
        .unwrap();
    (connection, inhibitors)
}

/// Whether the app let go of the delay lock whose far end is `kept` (its end closed).
fn released(kept: &std::os::unix::net::UnixStream) -> bool {
    use std::io::Read as _;
    let mut byte = [0u8; 1];
    matches!((&*kept).read(&mut byte), Ok(0))
}

/// Polls `done` until it gives a value.
fn wait_for<T>(mut done: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + common::PATIENCE;
    loop {
        if let Some(found) = done() {
            return found;
        }
        assert!(std::time::Instant::now() < deadline, "waited too long");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for an event the window was sent that `want` matches.
fn wait_until(events: &Arc<Mutex<Vec<Value>>>, want: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + common::PATIENCE;
    loop {
        if let Some(found) = events.lock().unwrap().iter().find(|e| want(e)) {
            return found.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never sent: {:?}",
            events.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

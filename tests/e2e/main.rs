//! Drives the real Magpie window through tauri-driver and WebKitWebDriver, beside a `magpie` command line (on the
//! app's embedded relay, or on a lying relay). Run with `bash tests/e2e/run.sh` (or `npm run test:e2e`), which
//! builds the app, picks the embedded relay's port and starts Xvfb, D-Bus, gnome-keyring and tauri-driver.
//! Screenshots: target/e2e/.
//!
//! Each story starts the app anew, one at a time (it is single-instance): the first in run.sh's data folder, the
//! others each in a fresh one of their own, so none depends on another.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests say what must hold by panicking, and report what they saw"
)]

mod axe;
mod backup;
#[path = "../stories/binaries.rs"]
mod binaries;
mod conversation;
mod demo;
mod key_change;
mod keyboard;
mod lock;
mod onboarding;
mod pictures;
mod search;
mod terminal;
mod tray;
mod window;

use terminal::Terminal;
use window::{required_env, with_app, OwnData};

/// The first run, in run.sh's data folder: a profile on the embedded relay, then a chat with a terminal on it.
#[tokio::test(flavor = "current_thread")]
async fn a_new_user_onboards_and_chats_with_someone_at_a_terminal() {
    let data_dir = required_env("MAGPIE_DATA_DIR");
    // run.sh chose the embedded relay's port, so the terminal knows where the window's relay listens.
    let relay_url = format!("http://127.0.0.1:{}", required_env("MAGPIE_LOCAL_RELAY_PORT"));
    // Built before the window opens: the first build takes a while and nothing should time out meanwhile.
    let erin = Terminal::new().await;
    // Where the app's file dialogs answer (backup, restore, export).
    let dialogs = tempfile::tempdir().unwrap();
    let dialog_dir = dialogs.path().to_string_lossy().into_owned();

    with_app(
        "onboarding",
        &[("MAGPIE_E2E_DIALOG_DIR", &dialog_dir)],
        |client| async move {
            let fingerprint = onboarding::create_profile(&client, "dana").await;
            onboarding::about_and_settings(&client, &data_dir, &relay_url, &fingerprint).await;
            conversation::with_the_terminal(&client, "dana", &erin, &relay_url, dialogs.path()).await;
        },
    )
    .await;
}

/// A first start, as just after installing: the window opens on onboarding. The package test
/// (scripts/test-packages.sh) runs this one against the installed /usr/bin/magpie.
#[tokio::test(flavor = "current_thread")]
async fn a_first_start_opens_on_onboarding() {
    let own = OwnData::new();
    with_app("first-start", &own.env(), |client| async move {
        onboarding::first_screen(&client, Some("first-start.png")).await;
    })
    .await;
}

/// The window on WebKitGTK's software path, which the app chooses without a GPU. The other stories draw
/// composited for their screenshots (WebKitGTK's automation cannot take one on this path), so this one takes none:
/// it onboards and reaches the chat list.
#[tokio::test(flavor = "current_thread")]
async fn the_window_works_on_the_software_path() {
    let own = OwnData::new();
    let mut env = own.env().to_vec();
    env.push((window::COMPOSITING_ENV, "1"));
    with_app("software-path", &env, |client| async move {
        onboarding::first_screen(&client, None).await;
        window::type_into(&client, "onboarding-username", "ivan").await;
        window::click(&client, "onboarding-create").await;
        let done = window::text_of(&client, "onboarding-done").await;
        assert!(done.contains("You are ivan"), "{done}");
        window::click(&client, "onboarding-start").await;
        window::eventually("the chat list for ivan", window::WAIT, || async {
            (window::content_of(&client, "profile-name").await == "ivan").then_some(())
        })
        .await;
    })
    .await;
}

/// The handshake demo, untouched and then with the relay tampering, in a data folder of its own.
#[tokio::test(flavor = "current_thread")]
async fn the_handshake_demo_runs_for_real_and_stops_on_tampering() {
    let own = OwnData::new();
    with_app("demo", &own.env(), |client| async move {
        onboarding::local_profile(&client, "hana").await;
        demo::walk_through(&client).await;
    })
    .await;
}

/// A contact's key changes in a lying relay's directory: the window warns and pauses sending.
#[tokio::test(flavor = "current_thread")]
async fn a_key_change_in_the_directory_is_flagged_after_reconnecting() {
    let own = OwnData::new();
    // Built and started before the window opens, so nothing in the window waits on a build.
    let frank = Terminal::new().await;
    let mut relay = key_change::LyingRelay::start().await;
    with_app("key-change", &own.env(), |client| async move {
        key_change::through_a_lying_relay(&client, "gwen", &mut relay, &frank).await;
    })
    .await;
}

/// The app lock: set in Settings, Ctrl+L while a message arrives (the tray counts it), then a restart behind the
/// lock screen, and the tray menu's Lock.
#[tokio::test(flavor = "current_thread")]
async fn a_locked_profile_asks_for_its_passphrase_after_a_restart() {
    let own = OwnData::new();
    let kim = Terminal::new().await;
    let relay_url = own.relay_url();
    let panel = std::sync::Arc::new(tray::Panel::start().await);
    let tray = panel.clone();
    with_app("lock", &own.env(), |client| async move {
        onboarding::local_profile(&client, "lena").await;
        lock::a_chat_with(&client, "lena", &kim, &relay_url).await;
        lock::set_passphrase_and_lock(&client, "lena", &kim).await;
        window::eventually(
            "the tray to count the message that came while locked",
            window::WAIT,
            || async { (tray.label().await == "1").then_some(()) },
        )
        .await;
    })
    .await;
    lock::keys_are_wrapped(own.data_dir());
    with_app("lock-restart", &own.env(), |client| async move {
        lock::unlock_after_restart(&client, "lena").await;
        panel.click("Lock").await;
        window::element(&client, "lock-screen").await;
        window::picture(&client, "lock-tray.png").await;
    })
    .await;
}

/// From the first screen to a sent message with the keyboard alone.
#[tokio::test(flavor = "current_thread")]
async fn a_new_user_gets_to_a_sent_message_with_the_keyboard_alone() {
    let own = OwnData::new();
    let lou = Terminal::new().await;
    let relay_url = own.relay_url();
    with_app("keyboard", &own.env(), |client| async move {
        keyboard::onboard_and_write(&client, "kai", &lou, &relay_url).await;
    })
    .await;
}

//! Drives the real Magpie window through tauri-driver and WebKitWebDriver, beside a `magpie` command line on the
//! app's embedded relay. Run with `bash tests/e2e/run.sh` (or `npm run test:e2e`), which builds the app, picks the
//! embedded relay's port and starts Xvfb, D-Bus, gnome-keyring and tauri-driver. Screenshots: target/e2e/.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests say what must hold by panicking, and report what they saw"
)]

#[path = "../stories/binaries.rs"]
mod binaries;
mod conversation;
mod onboarding;
mod terminal;
mod window;

use terminal::Terminal;
use window::{launch_app, leave_evidence, required_env};

/// One story, because the app is single-instance and its data folder is shared: a first run ends in a profile
/// that the rest needs.
#[tokio::test(flavor = "current_thread")]
async fn a_new_user_onboards_and_chats_with_someone_at_a_terminal() {
    let data_dir = required_env("MAGPIE_DATA_DIR");
    // run.sh chose the embedded relay's port, so the terminal knows where the window's relay listens.
    let relay_url = format!("http://127.0.0.1:{}", required_env("MAGPIE_LOCAL_RELAY_PORT"));
    // Built before the window opens: the first build takes a while and nothing should time out meanwhile.
    let erin = Terminal::new().await;

    let client = launch_app().await;
    let story = tokio::spawn({
        let client = client.clone();
        async move {
            let fingerprint = onboarding::create_profile(&client, "dana").await;
            onboarding::about_and_settings(&client, &data_dir, &relay_url, &fingerprint).await;
            conversation::with_the_terminal(&client, "dana", &erin, &relay_url).await;
        }
    })
    .await;
    if story.is_err() {
        leave_evidence(&client).await;
    }
    // Ends the session, and with it the app.
    let closed = client.close().await;
    if let Err(failure) = story {
        std::panic::resume_unwind(failure.into_panic());
    }
    closed.unwrap();
}

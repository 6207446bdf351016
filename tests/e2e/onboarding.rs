//! The first run: no profile yet, so the window opens on onboarding; a new user on the embedded relay, then what
//! About and Settings say about them.

use fantoccini::{Client, Locator};

use crate::window::{click, content_of, element, eventually, gone, picture, text_of, type_into, WAIT};

/// The window of a first start: onboarding, with the embedded relay chosen and the key store named; a picture of
/// it as target/e2e/`picture_name`.
pub async fn first_screen(client: &Client, picture_name: Option<&str>) {
    element(client, "onboarding-username").await;
    assert!(
        element(client, "onboarding-relay-local")
            .await
            .is_selected()
            .await
            .unwrap(),
        "the embedded relay is the default choice"
    );
    assert!(text_of(client, "onboarding").await.contains("Welcome to Magpie"));
    // The form names the key store before anything is made (once the app's info has arrived).
    eventually("the form to name the Secret Service", WAIT, || async {
        let form = text_of(client, "onboarding").await;
        form.contains("keeps it in Secret Service").then_some(())
    })
    .await;
    if let Some(name) = picture_name {
        picture(client, name).await;
    }
}

/// Creates `name` on "Local relay on this computer" and opens the chat list; returns the key's fingerprint as
/// the onboarding showed it (hex in groups of four).
pub async fn create_profile(client: &Client, name: &str) -> String {
    first_screen(client, Some("onboarding.png")).await;
    crate::axe::check(client, "onboarding").await;
    type_into(client, "onboarding-username", name).await;
    click(client, "onboarding-create").await;

    // Key generation is fast on a quick machine: the progress list may already be gone; if it is still there,
    // it names the store the key goes to.
    if let Ok(progress) = client.find(Locator::Css("[data-testid=onboarding-progress]")).await {
        if let Ok(steps) = progress.text().await {
            println!("onboarding progress seen:\n{steps}");
            assert!(steps.contains(&format!("Setting up {name}")), "{steps}");
            assert!(steps.contains("Storing your private key in Secret Service"), "{steps}");
        }
    }

    let done = text_of(client, "onboarding-done").await;
    assert!(done.contains(&format!("You are {name}")), "{done}");
    assert!(
        done.contains("Registered with the local relay on this computer"),
        "{done}"
    );
    let key_store = text_of(client, "onboarding-key-store").await;
    assert!(
        key_store.contains("Your private key is stored in Secret Service"),
        "{key_store:?}"
    );
    let fingerprint = text_of(client, "onboarding-fingerprint").await;
    let hex: String = fingerprint.split_whitespace().collect();
    assert_eq!(hex.len(), 64, "a SHA-256 fingerprint: {fingerprint:?}");
    assert!(
        hex.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "{fingerprint:?}"
    );
    assert!(
        fingerprint.split_whitespace().all(|group| group.len() == 4),
        "shown in groups of four: {fingerprint:?}"
    );
    picture(client, "onboarding-done.png").await;

    click(client, "onboarding-start").await;
    eventually("the profile switcher to name the new user", WAIT, || async {
        (content_of(client, "profile-name").await == name).then_some(())
    })
    .await;
    // The empty state reports the credential store that Rust probed: the real Secret Service, unlocked.
    let backend = text_of(client, "credential-backend").await;
    assert!(
        backend.starts_with("Secret Service"),
        "credential store shown: {backend:?}"
    );
    let state = element(client, "connection-state").await;
    eventually("the connection dot to turn online", WAIT, || async {
        (state.attr("data-state").await.unwrap().as_deref() == Some("online")).then_some(())
    })
    .await;
    assert_eq!(text_of(client, "requests-count").await, "0");
    picture(client, "chat-list.png").await;
    hex
}

/// About: what Rust answered (version, data folder, credential store). Settings: the identity just made, on the
/// embedded relay at `relay_url`.
pub async fn about_and_settings(client: &Client, data_dir: &str, relay_url: &str, fingerprint: &str) {
    click(client, "about-button").await;
    assert_eq!(text_of(client, "about-version").await, env!("CARGO_PKG_VERSION"));
    // Only the Rust side knows this folder: it came from the environment the app was started in.
    assert_eq!(text_of(client, "about-data-dir").await, data_dir);
    let store = text_of(client, "about-credential-store").await;
    assert!(
        store.starts_with("Secret Service") && store.contains("available") && !store.contains("not available"),
        "{store:?}"
    );
    picture(client, "about.png").await;
    click(client, "about-close").await;
    gone(client, "about-dialog", "About to close").await;

    click(client, "settings-button").await;
    let relay = text_of(client, "settings-relay-url").await;
    assert!(
        relay.starts_with(relay_url) && relay.contains("(local relay on this computer)"),
        "the embedded relay listens where MAGPIE_LOCAL_RELAY_PORT said ({relay_url}): {relay:?}"
    );
    let shown: String = text_of(client, "settings-fingerprint")
        .await
        .split_whitespace()
        .collect();
    assert_eq!(shown, fingerprint, "Settings and onboarding show the same key");
    let key_store = text_of(client, "settings-key-store").await;
    assert!(key_store.starts_with("Stored in Secret Service"), "{key_store:?}");
    picture(client, "settings.png").await;
    crate::axe::check(client, "settings").await;
    click(client, "settings-close").await;
    gone(client, "settings-dialog", "Settings to close on Done").await;
}

/// Onboards `name` on the embedded relay, without pictures, and opens the chat list: the way in for stories about
/// something else.
pub async fn local_profile(client: &Client, name: &str) {
    type_into(client, "onboarding-username", name).await;
    click(client, "onboarding-create").await;
    start_chatting(client, name).await;
}

/// After "Create my key": the summary names `name`, and "Start chatting" opens the chat list, online.
pub async fn start_chatting(client: &Client, name: &str) {
    let done = text_of(client, "onboarding-done").await;
    assert!(done.contains(&format!("You are {name}")), "{done}");
    click(client, "onboarding-start").await;
    eventually("the profile switcher to name the new user", WAIT, || async {
        (content_of(client, "profile-name").await == name).then_some(())
    })
    .await;
    let state = element(client, "connection-state").await;
    eventually("the connection dot to turn online", WAIT, || async {
        (state.attr("data-state").await.unwrap().as_deref() == Some("online")).then_some(())
    })
    .await;
}

//! The app lock in the real window, with the real Secret Service: a passphrase set in Settings wraps the profile's
//! keys; Ctrl+L locks the running window, which keeps receiving behind the lock screen and shows nothing of the
//! profile; after a restart the lock screen asks for the passphrase, wrong ones make the next try wait, and the
//! right one opens the chat with what arrived meanwhile.

use fantoccini::key::Key;
use fantoccini::Client;
use magpie_core::keystore::{Keystore as _, PlatformKeystore};
use magpie_core::profile::{history_account, identity_account, lock::lock_account, ProfileInfo};

use crate::terminal::Terminal;
use crate::window::{click, element, eventually, gone, page_text, picture, settled, text_of, type_into, WAIT};

const PASSPHRASE: &str = "correct horse battery";
const BEFORE: &str = "Written before the lock";
const WHILE_LOCKED: &str = "Written while the window was locked";

/// `them` at the terminal (on `relay_url`) starts a chat with `me`, and writes one line.
pub async fn a_chat_with(client: &Client, me: &str, them: &Terminal, relay_url: &str) {
    them.ok(&["--relay", relay_url, "register", "kim"]).await;
    them.ok(&["request", me]).await;
    click(client, "accept-kim").await;
    gone(client, "request-kim", "the request to be accepted").await;
    eventually("the terminal's handshake to finish", WAIT, || async {
        let requests = them.ok(&["requests"]).await;
        (!requests.contains(&format!("Waiting for {me}"))).then_some(())
    })
    .await;
    them.ok(&["send", me, BEFORE]).await;
    click(client, "chat-row-kim").await;
    eventually("the terminal's line in the conversation", WAIT, || async {
        page_text(client).await.contains(BEFORE).then_some(())
    })
    .await;
}

/// Sets the passphrase in Settings, then locks with Ctrl+L while `them` keeps writing.
pub async fn set_passphrase_and_lock(client: &Client, me: &str, them: &Terminal) {
    click(client, "settings-button").await;
    // This desktop has a tray (the test's panel): closing the window would keep Magpie running. Turned off, so
    // that the test's closing the window ends the app.
    let keep = element(client, "settings-tray").await;
    assert_eq!(
        keep.prop("checked").await.unwrap().as_deref(),
        Some("true"),
        "kept in the tray by default"
    );
    keep.click().await.unwrap();
    eventually("the setting to be saved", WAIT, || async {
        (text_of(client, "settings-status").await == "Saved.").then_some(())
    })
    .await;
    click(client, "lock-set").await;
    let dialog = text_of(client, "lock-dialog").await;
    assert!(dialog.contains("Nobody can recover a forgotten passphrase"), "{dialog}");
    type_into(client, "lock-new", PASSPHRASE).await;
    type_into(client, "lock-again", PASSPHRASE).await;
    settled(client).await;
    picture(client, "lock-set.png").await;
    crate::axe::check(client, "lock-dialog").await;
    click(client, "lock-save").await;
    eventually("Settings to say the lock is on", WAIT, || async {
        text_of(client, "lock-state")
            .await
            .contains("asks for a passphrase")
            .then_some(())
    })
    .await;
    click(client, "settings-close").await;
    gone(client, "settings-dialog", "Settings to close").await;

    let keys = format!("{}l{}", char::from(Key::Control), char::from(Key::Null));
    element(client, "compose-input").await.send_keys(&keys).await.unwrap();
    element(client, "lock-screen").await;
    them.ok(&["send", me, WHILE_LOCKED]).await;
    // Long enough for the push to arrive and be stored; the window must show none of it.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let page = page_text(client).await;
    for hidden in [BEFORE, WHILE_LOCKED, "kim"] {
        assert!(!page.contains(hidden), "the lock screen shows {hidden:?}: {page}");
    }
    settled(client).await;
    picture(client, "lock-now.png").await;
    crate::axe::check(client, "lock").await;
}

/// The keys of the profile in `data_dir` as the credential store holds them: each wrapped, and the lock entry.
pub fn keys_are_wrapped(data_dir: &str) {
    let profiles = std::path::Path::new(data_dir).join("profiles");
    let dir = std::fs::read_dir(&profiles).unwrap().next().unwrap().unwrap().path();
    let id = ProfileInfo::read(&dir).unwrap().profile_id;
    let store = PlatformKeystore::new();
    for account in [identity_account(id), history_account(id)] {
        let value = store.load(&account).unwrap().unwrap();
        assert!(value.expose().starts_with(b"MGWK"), "{account} is not wrapped");
    }
    assert_eq!(store.load(&lock_account(id)).unwrap().unwrap().expose().len(), 84);
}

/// After a restart: the lock screen; three wrong passphrases, the wait; the right one opens the chat.
pub async fn unlock_after_restart(client: &Client, me: &str) {
    let lock = text_of(client, "lock-screen").await;
    assert!(lock.contains("Magpie is locked") && lock.contains(me), "{lock}");
    for wrong in ["not it", "not it either", "still not it"] {
        type_into(client, "lock-passphrase", wrong).await;
        click(client, "lock-unlock").await;
        eventually("the wrong passphrase to be refused", WAIT, || async {
            text_of(client, "lock-status")
                .await
                .contains("not the right one")
                .then_some(())
        })
        .await;
    }
    let wait = text_of(client, "lock-wait").await;
    assert!(wait.starts_with("Next try in"), "{wait}");
    settled(client).await;
    picture(client, "lock-wrong.png").await;
    crate::axe::check(client, "lock-wrong").await;
    gone(client, "lock-wait", "the wait to end").await;
    type_into(client, "lock-passphrase", PASSPHRASE).await;
    click(client, "lock-unlock").await;
    click(client, "chat-row-kim").await;
    eventually("both lines in the conversation", WAIT, || async {
        let page = page_text(client).await;
        (page.contains(BEFORE) && page.contains(WHILE_LOCKED)).then_some(())
    })
    .await;
    settled(client).await;
    picture(client, "lock-unlocked.png").await;
}

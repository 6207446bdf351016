//! The user's history leaves Magpie and comes back: "Export chat…" writes a readable copy, "Back up…" a sealed
//! one, and "Restore from a backup" on the first screen brings the profile back. The app answers its file dialogs
//! from MAGPIE_E2E_DIALOG_DIR (see src-tauri/src/dialogs.rs): WebDriver cannot reach a native dialog.

use std::path::Path;

use fantoccini::Client;

use crate::window::{click, eventually, gone, picture, settled, text_of, type_into, WAIT};

const PASSPHRASE: &str = "a passphrase typed twice";

/// `me` chats with `peer`, whose message `from_peer` is in the chat; the dialogs answer in `dialogs`.
pub async fn exports_backs_up_and_restores(client: &Client, me: &str, peer: &str, from_peer: &str, dialogs: &Path) {
    // Export: a warning first, then the text, the JSON and the chat's files beside them.
    click(client, "conversation-menu").await;
    click(client, "menu-export-chat").await;
    let warning = text_of(client, "confirm-dialog").await;
    assert!(warning.contains("not encrypted"), "{warning}");
    click(client, "confirm-ok").await;
    let done = text_of(client, "export-done").await;
    assert!(
        done.contains("Exported ") && done.contains("3 files beside it"),
        "{done:?}"
    );
    let text = std::fs::read_to_string(dialogs.join(format!("Magpie chat with {peer}.txt"))).unwrap();
    assert!(text.contains(&format!("] {peer}: {from_peer}")), "{text}");
    assert!(dialogs.join(format!("Magpie chat with {peer}.json")).exists());
    let files = std::fs::read_dir(dialogs.join(format!("Magpie chat with {peer} files")))
        .unwrap()
        .count();
    assert_eq!(files, 3, "the two pictures and the document");
    picture(client, "export.png").await;

    // Back up, from Settings: the passphrase twice, progress, then where it went.
    click(client, "settings-button").await;
    click(client, "settings-backup").await;
    type_into(client, "backup-passphrase", PASSPHRASE).await;
    type_into(client, "backup-passphrase-again", PASSPHRASE).await;
    click(client, "backup-start").await;
    let saved = text_of(client, "backup-done").await;
    assert!(saved.contains(&format!("magpie-{me}.magpie-backup")), "{saved}");
    settled(client).await;
    picture(client, "backup.png").await;
    click(client, "backup-close").await;
    click(client, "settings-close").await;
    gone(client, "settings-dialog", "Settings to close").await;

    // Restore on the first screen (here: "Create another profile"), a wrong passphrase first.
    click(client, "profile-switcher").await;
    click(client, "profile-create").await;
    click(client, "onboarding-restore").await;
    click(client, "restore-choose").await;
    let file = text_of(client, "restore-file").await;
    assert!(file.contains(&format!("magpie-{me}.magpie-backup")), "{file}");
    type_into(client, "restore-passphrase", "not the passphrase").await;
    click(client, "restore-start").await;
    let refused = text_of(client, "restore-error").await;
    assert_eq!(refused, "That passphrase does not open this backup.");
    settled(client).await;
    picture(client, "restore.png").await;
    crate::axe::check(client, "restore").await;
    let field = crate::window::element(client, "restore-passphrase").await;
    field.clear().await.unwrap();
    type_into(client, "restore-passphrase", PASSPHRASE).await;
    click(client, "restore-start").await;

    // The restored profile opens on its chats, with the history that was backed up.
    click(client, &format!("chat-row-{peer}")).await;
    eventually("the restored history in the conversation", WAIT, || async {
        let page = crate::window::page_text(client).await;
        page.contains(from_peer).then_some(())
    })
    .await;
    // Files' contents are not in backups: their cards say so rather than offer to open what is not there.
    eventually("the files' cards to say they were not carried", WAIT, || async {
        let script = "return [...document.querySelectorAll('[data-testid^=\"file-\"][data-state]')].map((c) => c.dataset.state);";
        let states = client.execute(script, vec![]).await.unwrap();
        let states: Vec<String> = serde_json::from_value(states).unwrap_or_default();
        (!states.is_empty() && states.iter().all(|s| s == "failed")).then_some(())
    })
    .await;
    settled(client).await;
    picture(client, "restored.png").await;
}

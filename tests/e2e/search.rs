//! Search in the window: the sidebar finds messages in every chat (words and prefixes, accents ignored) and opens
//! the chat at the one chosen; Ctrl+F finds within the open chat.

use fantoccini::key::Key;
use fantoccini::{Client, Locator};
use serde_json::Value;

use crate::terminal::Terminal;
use crate::window::{click, eventually, gone, picture, settled, text_of, type_into, WAIT};

const NEEDLE: &str = "Shall we meet at the Café Müller on Thursday?";

/// What the search results show: per hit, its text and the pieces marked as matches.
async fn shown_hits(client: &Client) -> Vec<Value> {
    let script = r#"
        return [...document.querySelectorAll('[data-testid="search-hit"]')].map((hit) => ({
            text: hit.querySelector('.snippet')?.textContent ?? '',
            marked: [...hit.querySelectorAll('mark')].map((m) => m.textContent),
        }));
    "#;
    match client.execute(script, vec![]).await.unwrap() {
        Value::Array(hits) => hits,
        other => panic!("the search results script answered {other}"),
    }
}

/// `them` at the terminal writes a few lines to `me`; the window finds one of them.
pub async fn finds_a_message(client: &Client, me: &str, them: &Terminal) {
    for line in [
        NEEDLE,
        "The cafeteria is closed today",
        "Thursday works for me",
        "see you there",
    ] {
        them.ok(&["send", me, line]).await;
    }
    eventually("the terminal's lines in the window", WAIT, || async {
        let page = crate::window::page_text(client).await;
        page.contains("see you there").then_some(())
    })
    .await;

    // Lower case, no accents, a prefix: it still finds the café, and only there.
    type_into(client, "search-input", "cafe mull").await;
    let hits = eventually("the search results", WAIT, || async {
        let hits = shown_hits(client).await;
        (!hits.is_empty()).then_some(hits)
    })
    .await;
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0]["text"], NEEDLE);
    assert_eq!(hits[0]["marked"], serde_json::json!(["Café", "Müll"]));
    assert_eq!(text_of(client, "search-status").await, "1 message found.");
    settled(client).await;
    picture(client, "search.png").await;
    crate::axe::check(client, "search").await;

    // Choosing it opens the chat there, the message marked.
    click(client, "search-hit").await;
    let marked = eventually("the chat opened at the result", WAIT, || async {
        let found = client
            .find_all(Locator::Css(r#"[data-testid="message-list"] [aria-current="true"]"#))
            .await
            .unwrap();
        found.into_iter().next()
    })
    .await;
    assert!(marked.text().await.unwrap().contains(NEEDLE));
    // Escape in the search box clears it: the chat list comes back.
    type_into(client, "search-input", &char::from(Key::Escape).to_string()).await;
    gone(client, "search-results", "the search results to close").await;
    settled(client).await;
    picture(client, "search-result.png").await;

    // Find in the chat (Ctrl+F, or its button); Enter steps to the older match, Escape closes.
    click(client, "chat-find-button").await;
    type_into(client, "chat-find-input", "thurs").await;
    eventually("two matches in the chat", WAIT, || async {
        (text_of(client, "chat-find-status").await == "1 of 2").then_some(())
    })
    .await;
    type_into(client, "chat-find-input", &char::from(Key::Enter).to_string()).await;
    eventually("the older match", WAIT, || async {
        (text_of(client, "chat-find-status").await == "2 of 2").then_some(())
    })
    .await;
    settled(client).await;
    picture(client, "find-in-chat.png").await;
    type_into(client, "chat-find-input", &char::from(Key::Escape).to_string()).await;
    gone(client, "chat-find", "the find bar to close").await;

    // Ctrl+/ lists the shortcuts.
    let keys = format!("{}/{}", char::from(Key::Control), char::from(Key::Null));
    crate::window::element(client, "compose-input")
        .await
        .send_keys(&keys)
        .await
        .unwrap();
    let shortcuts = text_of(client, "shortcuts-dialog").await;
    assert!(shortcuts.contains("Find in the open chat"), "{shortcuts}");
    settled(client).await;
    picture(client, "shortcuts.png").await;
    crate::axe::check(client, "shortcuts").await;
    click(client, "shortcuts-close").await;
    gone(client, "shortcuts-dialog", "the shortcuts to close").await;
}

//! A chat between the window's user and someone at a terminal (`magpie` on the same embedded relay): the request
//! arrives in the window and is accepted there, the handshake completes, and a message goes each way.

use fantoccini::key::Key;
use fantoccini::Client;
use serde_json::Value;

use crate::terminal::Terminal;
use crate::window::{click, content_of, element, eventually, gone, picture, text_of, type_into, WAIT};

const FROM_TERMINAL: &str = "hello from the terminal";
const FROM_WINDOW: &str = "hello from the window";

/// The messages the conversation shows, oldest first: direction, text and (own messages) delivery state.
async fn shown_messages(client: &Client) -> Vec<Value> {
    let script = r#"
        return [...document.querySelectorAll('[data-testid="message-list"] .row.message')].map((row) => ({
            direction: row.classList.contains('outgoing') ? 'outgoing' : 'incoming',
            body: row.querySelector('[data-testid="message-body"]')?.textContent ?? '',
            state: row.querySelector('[data-testid="message-state"]')?.dataset.state ?? null,
        }));
    "#;
    match client.execute(script, vec![]).await.unwrap() {
        Value::Array(messages) => messages,
        other => panic!("the message list script answered {other}"),
    }
}

fn find<'a>(messages: &'a [Value], direction: &str, body: &str) -> Option<&'a Value> {
    messages
        .iter()
        .find(|m| m["direction"] == direction && m["body"] == body)
}

/// `me` (the window's user, already on the chat list) and `them` at the terminal, on the relay at `relay_url`.
pub async fn with_the_terminal(client: &Client, me: &str, them: &Terminal, relay_url: &str, dialogs: &std::path::Path) {
    let peer = "erin";
    let registered = them.ok(&["--relay", relay_url, "register", peer]).await;
    assert!(
        registered.contains(&format!("Registered {peer} with {relay_url}")),
        "{registered}"
    );
    let whoami = them.ok(&["whoami"]).await;
    let their_fingerprint = whoami
        .lines()
        .find_map(|line| line.strip_prefix("Fingerprint:"))
        .map(|hex| hex.trim().to_owned())
        .unwrap_or_else(|| panic!("no fingerprint in `whoami`: {whoami}"));
    them.ok(&["request", me]).await;

    // The window learns of the request from the relay's push, without anyone reloading anything.
    let request = text_of(client, &format!("request-{peer}")).await;
    assert!(
        request.contains(&format!("{peer} wants to start an encrypted chat")),
        "{request:?}"
    );
    let start: Vec<String> = their_fingerprint
        .as_bytes()
        .chunks(4)
        .take(4)
        .map(|group| String::from_utf8(group.to_vec()).unwrap())
        .collect();
    assert!(
        request.contains(&start.join(" ")),
        "the request shows the start of {peer}'s real key ({their_fingerprint}): {request:?}"
    );
    assert_eq!(text_of(client, "requests-count").await, "1");
    picture(client, "request.png").await;

    click(client, &format!("accept-{peer}")).await;
    gone(
        client,
        &format!("request-{peer}"),
        "the request to leave the list once accepted",
    )
    .await;

    // The terminal's side of the handshake advances whenever it syncs; the window answers on its own (online).
    eventually("the terminal's handshake with the window to finish", WAIT, || async {
        let requests = them.ok(&["requests"]).await;
        (!requests.contains(&format!("Waiting for {me}"))).then_some(())
    })
    .await;
    let sent = them.ok(&["send", me, FROM_TERMINAL]).await;
    assert!(sent.starts_with("Sent "), "{sent}");

    click(client, &format!("chat-row-{peer}")).await;
    assert_eq!(content_of(client, "conversation-peer").await, peer);
    eventually("the terminal's message in the conversation", WAIT, || async {
        find(&shown_messages(client).await, "incoming", FROM_TERMINAL).map(|_| ())
    })
    .await;
    assert_eq!(text_of(client, "verification-badge").await, "Not verified");
    picture(client, "conversation.png").await;
    crate::axe::check(client, "conversation").await;
    // Text contrast in the dark theme too.
    crate::axe::choose_theme(client, "dark").await;
    picture(client, "conversation-dark.png").await;
    crate::axe::check(client, "conversation-dark").await;
    crate::axe::choose_theme(client, "system").await;

    // Both ends compute the same safety number: the window's dialog and the terminal's `safety-number`.
    let terminal_number: Vec<String> = them
        .ok(&["safety-number", me])
        .await
        .lines()
        .skip(1)
        .take(3)
        .flat_map(|row| row.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    assert_eq!(terminal_number.len(), 12, "{terminal_number:?}");
    click(client, "conversation-menu").await;
    click(client, "menu-safety-number").await;
    let digits = element(client, "safety-digits").await;
    // The groups are laid out by CSS (no spaces in the text); the label reads them out one by one.
    assert_eq!(
        digits.text().await.unwrap().split_whitespace().collect::<String>(),
        terminal_number.concat(),
        "the safety numbers differ"
    );
    assert_eq!(
        digits.attr("aria-label").await.unwrap().unwrap_or_default(),
        format!("Safety number: {}", terminal_number.join(" "))
    );
    element(client, "safety-qr").await;
    picture(client, "safety-number.png").await;
    click(client, "safety-close").await;
    gone(client, "safety-dialog", "the safety number to close").await;

    // Enter sends; the box empties and the message shows at once.
    type_into(
        client,
        "compose-input",
        &format!("{FROM_WINDOW}{}", char::from(Key::Enter)),
    )
    .await;
    eventually("the reply in the conversation", WAIT, || async {
        find(&shown_messages(client).await, "outgoing", FROM_WINDOW).map(|_| ())
    })
    .await;
    let composer = element(client, "compose-input").await;
    eventually("the message box to empty after Enter sent it", WAIT, || async {
        (composer.prop("value").await.unwrap().as_deref() == Some("")).then_some(())
    })
    .await;

    // The terminal reads it after a sync, and its receipts come back to both.
    eventually("the reply in the terminal's history", WAIT, || async {
        them.ok(&["sync"]).await;
        let history = them.history(me).await;
        find(&history, "incoming", FROM_WINDOW).map(|_| ())
    })
    .await;
    let history = them.history(me).await;
    let own = find(&history, "outgoing", FROM_TERMINAL).unwrap_or_else(|| panic!("{history:?}"));
    assert_eq!(
        own["delivery"], "delivered",
        "the window's receipt reached the terminal"
    );
    eventually("the terminal's receipt for the reply", WAIT, || async {
        let messages = shown_messages(client).await;
        let reply = find(&messages, "outgoing", FROM_WINDOW)?;
        (reply["state"] == "delivered").then_some(())
    })
    .await;
    picture(client, "conversation-reply.png").await;

    files_both_ways(client, me, them).await;
    crate::search::finds_a_message(client, me, them).await;
    crate::backup::exports_backs_up_and_restores(client, me, peer, FROM_TERMINAL, dialogs).await;

    // Deleting the messages asks first, empties the window's list and leaves the terminal's copy alone.
    click(client, "conversation-menu").await;
    click(client, "menu-clear-chat").await;
    let question = text_of(client, "confirm-dialog").await;
    assert!(
        question.contains(&format!("Delete all messages with {peer}?")),
        "{question}"
    );
    picture(client, "delete-messages.png").await;
    click(client, "confirm-ok").await;
    gone(client, "confirm-dialog", "the question to close").await;
    eventually("the window's list to empty", WAIT, || async {
        shown_messages(client).await.is_empty().then_some(())
    })
    .await;
    picture(client, "messages-deleted.png").await;
    assert!(find(&them.history(me).await, "outgoing", FROM_TERMINAL).is_some());
}

/// A picture pasted into the window goes to the terminal (with its preview inline in the window), and a file from
/// the terminal arrives in the window, ready to open, and saves byte for byte at the terminal.
async fn files_both_ways(client: &Client, me: &str, them: &Terminal) {
    let picture_bytes = crate::pictures::landscape_png(960, 600);
    let script = r#"
        const [b64, name] = arguments;
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const data = new DataTransfer();
        data.items.add(new File([bytes], name, { type: 'image/png' }));
        const box = document.querySelector('[data-testid="compose-input"]');
        box.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
    "#;
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(&picture_bytes);
    client
        .execute(script, vec![encoded.into(), "lake.png".into()])
        .await
        .unwrap();
    // Shown at once with its preview; uploaded, then sent.
    let preview = element(client, "file-preview").await;
    let size = preview.rectangle().await.unwrap();
    assert!(size.2 >= 100.0 && size.3 >= 60.0, "the preview is drawn: {size:?}");
    eventually("the picture's upload to finish", WAIT, || async {
        let state = client
            .execute(
                "return document.querySelector('[data-testid^=\"file-\"][data-state]')?.dataset.state ?? null",
                vec![],
            )
            .await
            .unwrap();
        (state == "ready").then_some(())
    })
    .await;
    let saved = tempfile::tempdir().unwrap();
    let at_terminal = saved.path().join("lake.png");
    let id = eventually("the picture in the terminal's history", WAIT, || async {
        them.ok(&["sync"]).await;
        let history = them.history(me).await;
        history
            .iter()
            .find(|m| m["file"]["name"] == "lake.png")
            .map(|m| m["id"].as_str().unwrap().to_owned())
    })
    .await;
    them.ok(&["save-file", me, &id, at_terminal.to_str().unwrap()]).await;
    assert!(
        std::fs::read(&at_terminal).unwrap() == picture_bytes,
        "the terminal saved the very picture"
    );

    // And back: the terminal sends the picture it saved, and a document; the window downloads and checks both.
    let report = saved.path().join("minutes.txt");
    std::fs::write(
        &report,
        "Minutes of the meeting: files now travel end to end encrypted.\n",
    )
    .unwrap();
    for file in [&at_terminal, &report] {
        let sent = them.ok(&["send-file", me, file.to_str().unwrap()]).await;
        assert!(sent.starts_with("Sent "), "{sent}");
    }
    eventually("the terminal's files ready in the window", WAIT, || async {
        let ready = client
            .execute(
                "return [...document.querySelectorAll('[data-testid^=\"file-\"][data-state]')]\
                   .filter((card) => card.dataset.state === 'ready').length",
                vec![],
            )
            .await
            .unwrap();
        (ready.as_u64() == Some(3)).then_some(())
    })
    .await;
    assert_eq!(content_of(client, "file-name").await, "lake.png");
    picture(client, "files.png").await;
    click(client, "file-preview").await;
    element(client, "image-viewer-image").await;
    picture(client, "file-viewer.png").await;
    click(client, "image-viewer-close").await;
    gone(client, "image-viewer", "the viewer to close").await;
}

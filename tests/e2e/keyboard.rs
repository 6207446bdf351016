//! Magpie without a mouse: from the first screen to a sent message with the keyboard alone, every control reached
//! showing where the focus is.

use fantoccini::key::Key;
use fantoccini::Client;
use serde_json::Value;

use crate::terminal::Terminal;
use crate::window::{eventually, picture, settled, WAIT};

/// What has the focus: its test id (or tag), and whether a focus ring is drawn around it.
async fn focused(client: &Client) -> (String, bool) {
    let script = r#"
        const el = document.activeElement;
        const style = getComputedStyle(el);
        const ring = (style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0) || style.boxShadow !== 'none';
        return [el.dataset.testid || el.id || el.tagName.toLowerCase(), ring];
    "#;
    let answer = client.execute(script, vec![]).await.unwrap();
    let (id, ring): (String, bool) = serde_json::from_value(answer).unwrap();
    (id, ring)
}

/// Presses `keys` on whatever has the focus.
async fn press(client: &Client, keys: &str) {
    client.active_element().await.unwrap().send_keys(keys).await.unwrap();
}

/// Tabs forward until `target` has the focus (at most 30 presses), checking each control it passes shows a ring.
async fn tab_to(client: &Client, target: &str) {
    let tab = char::from(Key::Tab).to_string();
    for _ in 0..30 {
        press(client, &tab).await;
        let (id, ring) = focused(client).await;
        assert!(ring, "{id} has the focus but no visible focus ring");
        if id == target {
            return;
        }
    }
    panic!("Tab never reached {target}");
}

/// The walk: `me` onboards, asks `them` (at the terminal, on `relay_url`) for a chat, and writes to them.
pub async fn onboard_and_write(client: &Client, me: &str, them: &Terminal, relay_url: &str) {
    let enter = char::from(Key::Enter).to_string();

    eventually("the first screen", WAIT, || async {
        crate::window::present(client, "onboarding-username")
            .await
            .then_some(())
    })
    .await;
    tab_to(client, "onboarding-username").await;
    press(client, me).await;
    tab_to(client, "onboarding-create").await;
    press(client, &enter).await;
    // The last onboarding screen puts the focus on "Start chatting".
    eventually("Start chatting to have the focus", WAIT, || async {
        (focused(client).await.0 == "onboarding-start").then_some(())
    })
    .await;
    press(client, &enter).await;

    // Ctrl+N: the new-chat box; the name, Enter.
    eventually("the chat list", WAIT, || async {
        crate::window::present(client, "new-chat-input").await.then_some(())
    })
    .await;
    // The embedded relay runs now: lou registers there.
    them.ok(&["--relay", relay_url, "register", "lou"]).await;
    press(
        client,
        &format!("{}n{}", char::from(Key::Control), char::from(Key::Null)),
    )
    .await;
    assert_eq!(focused(client).await.0, "new-chat-input");
    press(client, &format!("lou{enter}")).await;
    eventually("the terminal to accept", WAIT, || async {
        them.run(&["accept", me]).await.status.success().then_some(())
    })
    .await;
    // The terminal syncs (each command does) until the handshake is done and the chat is listed.
    eventually("the chat with lou", WAIT, || async {
        them.ok(&["requests"]).await;
        crate::window::present(client, "chat-row-lou").await.then_some(())
    })
    .await;

    // Alt+↓ opens the chat ready to type; Enter sends.
    press(
        client,
        &format!(
            "{}{}{}",
            char::from(Key::Alt),
            char::from(Key::Down),
            char::from(Key::Null)
        ),
    )
    .await;
    eventually("the message box to have the focus", WAIT, || async {
        (focused(client).await.0 == "compose-input").then_some(())
    })
    .await;
    eventually("the chat to take messages", WAIT, || async {
        let script = "return !document.querySelector('[data-testid=\"compose-input\"]').disabled";
        (client.execute(script, vec![]).await.unwrap() == Value::Bool(true)).then_some(())
    })
    .await;
    press(client, &format!("written without a mouse{enter}")).await;
    eventually("the terminal to read it", WAIT, || async {
        them.ok(&["requests"]).await; // a sync: `history` reads only what is stored
        let history = them.history(me).await;
        history
            .iter()
            .any(|m| m["body"] == "written without a mouse")
            .then_some(())
    })
    .await;
    settled(client).await;
    picture(client, "keyboard.png").await;
    crate::axe::check(client, "chat-list").await;
    crate::axe::choose_theme(client, "dark").await;
    crate::axe::check(client, "chat-list-dark").await;
}

//! The handshake demo, from the shell: the backend really runs the seven steps between two throwaway profiles on a
//! relay inside the app; the window walks through them. Then again with the relay flipping a bit of the wrapped
//! key: Bob's signature check stops the handshake at step 6.

use std::time::Duration;

use fantoccini::{Client, Locator};

use crate::window::{
    click, content_of, element, eventually, gone, picture, present, scroll_into_view, settled, text_of,
};

const STEPS: usize = 7;
/// A run makes three RSA-3072 keys and runs the handshake: seconds, more on a busy machine.
const RUN_PATIENCE: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_secs(10);

/// The rail's `data-status` of every step, in order.
async fn statuses(client: &Client) -> Vec<String> {
    let mut all = Vec::with_capacity(STEPS);
    for number in 1..=STEPS {
        let step = element(client, &format!("demo-step-{number}")).await;
        all.push(step.attr("data-status").await.unwrap().unwrap_or_default());
    }
    all
}

/// Waits for the run Start or Restart began, `tampered` or not, to be on screen; returns its "Ran for real" line.
async fn wait_for_run(client: &Client, tampered: bool) -> String {
    let info = eventually("the demo's handshake to run", RUN_PATIENCE, || async {
        if present(client, "demo-error").await {
            panic!("the demo failed to run: {}", text_of(client, "demo-error").await);
        }
        if !present(client, "demo-next").await || !present(client, "demo-run-info").await {
            return None;
        }
        let info = content_of(client, "demo-run-info").await;
        (info.contains("relay tampering on") == tampered).then_some(info)
    })
    .await;
    assert!(info.starts_with("Ran for real in"), "{info:?}");
    assert_eq!(
        statuses(client).await,
        vec!["pending"; STEPS],
        "a new run starts hidden"
    );
    info
}

/// Presses Next while it can be pressed; returns each revealed step's rail status, in order. With `picture_at`,
/// saves a picture once that many steps are shown.
async fn reveal_all(client: &Client, picture_at: Option<(usize, &str)>) -> Vec<String> {
    let mut revealed = Vec::new();
    while revealed.len() < STEPS {
        let next = element(client, "demo-next").await;
        if !next.is_enabled().await.unwrap() {
            break;
        }
        next.click().await.unwrap();
        let number = revealed.len() + 1;
        let step = element(client, &format!("demo-step-{number}")).await;
        let status = eventually(&format!("step {number} to be revealed"), SHORT, || async {
            let status = step.attr("data-status").await.unwrap().unwrap_or_default();
            (status != "pending").then_some(status)
        })
        .await;
        element(client, &format!("demo-card-{number}")).await;
        revealed.push(status);
        if let Some((at, name)) = picture_at {
            if at == number {
                settled(client).await;
                picture(client, name).await;
            }
        }
    }
    assert!(
        !element(client, "demo-next").await.is_enabled().await.unwrap(),
        "Next is disabled once the story ended"
    );
    revealed
}

/// Opens the demo from the empty conversation, runs it untouched, then with tampering.
pub async fn walk_through(client: &Client) {
    click(client, "demo-open").await;
    element(client, "handshake-demo").await;
    assert_eq!(statuses(client).await, vec!["pending"; STEPS]);
    let tamper = element(client, "demo-tamper").await;
    assert!(!tamper.is_selected().await.unwrap(), "tampering starts off");

    click(client, "demo-start").await;
    let info = wait_for_run(client, false).await;
    println!("demo: {info}");
    let revealed = reveal_all(client, Some((4, "demo-step-4.png"))).await;
    assert_eq!(
        revealed,
        vec!["passed"; STEPS],
        "every step of the untouched run passed"
    );
    assert_eq!(statuses(client).await, vec!["passed"; STEPS]);

    // The ending: the same words in both windows, only ciphertext on the relay.
    element(client, "demo-ending").await;
    assert!(!present(client, "demo-failure").await);
    let sent = content_of(client, "demo-plaintext-alice").await;
    let received = content_of(client, "demo-plaintext-bob").await;
    assert!(!sent.is_empty(), "Alice's window shows her message");
    assert_eq!(received, sent, "Bob's window shows what Alice sent");
    let cipher = element(client, "demo-ciphertext").await;
    let cipher_text = cipher.text().await.unwrap();
    assert!(cipher_text.contains("bytes of ciphertext"), "{cipher_text:?}");
    let hex = cipher.find(Locator::Css("code")).await.unwrap().text().await.unwrap();
    let hex = hex.trim().trim_end_matches('…');
    assert!(
        hex.len() >= 16 && hex.len() % 2 == 0 && hex.chars().all(|c| c.is_ascii_hexdigit()),
        "hex ciphertext on the wire: {hex:?}"
    );
    let plain_hex: String = sent.bytes().map(|b| format!("{b:02x}")).collect();
    assert!(
        !hex.contains(&plain_hex[..16]),
        "the wire shows ciphertext, not the message's bytes: {hex}"
    );
    let wire = content_of(client, "demo-column-wire").await;
    assert!(
        !wire.contains(&sent),
        "the wire column never shows the plaintext: {wire}"
    );
    scroll_into_view(client, "demo-ending").await;
    settled(client).await;
    picture(client, "demo-end.png").await;
    crate::axe::check(client, "demo").await;

    // The relay flips a bit of the wrapped key: Bob's check of Alice's signature fails at step 6.
    click(client, "demo-tamper").await;
    assert!(
        element(client, "demo-tamper").await.is_selected().await.unwrap(),
        "the tamper switch is on"
    );
    let hint = text_of(client, "demo-restart-hint").await;
    assert_eq!(hint, "Restart to use it.");
    click(client, "demo-restart").await;
    let info = wait_for_run(client, true).await;
    println!("demo, tampered: {info}");
    let revealed = reveal_all(client, None).await;
    let mut expected = vec!["passed"; 5];
    expected.push("failed");
    assert_eq!(revealed, expected, "the story stops at the failed step");
    expected.push("not_reached");
    assert_eq!(statuses(client).await, expected);

    let failure = element(client, "demo-failure").await;
    assert!(failure.is_displayed().await.unwrap());
    let failure_text = failure.text().await.unwrap();
    assert!(
        failure_text.contains("The handshake stopped; no session was made"),
        "{failure_text:?}"
    );
    assert!(
        failure_text.to_lowercase().contains("signature"),
        "the failure names the signature check: {failure_text:?}"
    );
    let rail_reason = content_of(client, "demo-rail-reason").await;
    assert!(rail_reason.to_lowercase().contains("signature"), "{rail_reason:?}");
    assert!(
        !present(client, "demo-ending").await,
        "no chat after a failed handshake"
    );
    assert!(
        present(client, "demo-tampered").await,
        "the wire marks the tampered envelope"
    );
    // The picture shows the tampered envelope on the wire and the failure under the columns.
    scroll_into_view(client, "demo-tampered").await;
    scroll_into_view(client, "demo-failure").await;
    settled(client).await;
    picture(client, "demo-tampered.png").await;
    crate::axe::check(client, "demo-tampered").await;

    click(client, "demo-close").await;
    gone(client, "handshake-demo", "the demo to close").await;
}

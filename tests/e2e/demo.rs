//! The handshake demo, from the shell: the backend really runs the seven steps between two throwaway profiles on a
//! relay inside the app; the window walks through them. Then once with each attack the relay can play: the window
//! shows the check that stopped it (or, for a first contact's man in the middle, that none could), with a picture
//! of each.

use std::time::Duration;

use fantoccini::{Client, Locator};

use crate::window::{
    click, content_of, element, eventually, gone, picture, present, scroll_into_view, settled, text_of,
};

const STEPS: usize = 7;
/// Every attack the demo offers: its value, the heading of its verdict, and where the seven steps stop (`None`: all
/// pass).
const ATTACKS: [(&str, &str, Option<usize>); 7] = [
    ("flip_wrapped_key", "Caught: Bob stopped it at step 6", Some(6)),
    ("substitute_known_contact", "Caught: Alice stopped it", None),
    ("substitute_first_contact", "Not caught by any automatic check", None),
    ("replay_old_request", "Caught: Bob stopped it", None),
    ("forge_key_confirm", "Caught: Alice stopped it at step 7", Some(7)),
    ("drop_key_confirm", "Stalled at step 7: the chat never opened", Some(7)),
    ("replay_message", "Caught: Bob stopped it", None),
];
/// A run makes three or four RSA-3072 keys and runs the handshake: seconds, more on a busy machine.
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

/// Waits for the run Start or Restart began to be on screen: with the relay's attack named `attack` (its label), or
/// none; returns its "Ran for real" line.
async fn wait_for_run(client: &Client, attack: Option<&str>) -> String {
    let info = eventually("the demo's handshake to run", RUN_PATIENCE, || async {
        if present(client, "demo-error").await {
            panic!("the demo failed to run: {}", text_of(client, "demo-error").await);
        }
        if !present(client, "demo-next").await || !present(client, "demo-run-info").await {
            return None;
        }
        let info = content_of(client, "demo-run-info").await;
        let shown = match attack {
            Some(label) => info.contains(&format!("relay attack: {label}")),
            None => !info.contains("relay attack"),
        };
        shown.then_some(info)
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
    let picker = element(client, "demo-attack").await;
    assert_eq!(
        picker.prop("value").await.unwrap().as_deref(),
        Some("none"),
        "an honest relay first"
    );

    click(client, "demo-start").await;
    let info = wait_for_run(client, None).await;
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

    for (attack, heading, stops_at) in ATTACKS {
        run_attack(client, attack, heading, stops_at).await;
    }

    click(client, "demo-close").await;
    gone(client, "handshake-demo", "the demo to close").await;
}

/// Has the relay play `attack`, walks the run through, and checks the verdict: `heading`, and the steps stopping at
/// `stops_at` (the failure panel naming the check) or all passing (the chat ending before the verdict).
async fn run_attack(client: &Client, attack: &str, heading: &str, stops_at: Option<usize>) {
    element(client, "demo-attack")
        .await
        .select_by_value(attack)
        .await
        .unwrap();
    assert_eq!(text_of(client, "demo-restart-hint").await, "Restart to use it.");
    let label = element(client, "demo-attack")
        .await
        .find(Locator::Css("option:checked"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    click(client, "demo-restart").await;
    let info = wait_for_run(client, Some(label.trim())).await;
    println!("demo, {attack}: {info}");
    let revealed = reveal_all(client, None).await;
    let expected: Vec<&str> = match stops_at {
        Some(step) => (1..=STEPS)
            .map(|n| match n.cmp(&step) {
                std::cmp::Ordering::Less => "passed",
                std::cmp::Ordering::Equal => "failed",
                std::cmp::Ordering::Greater => "not_reached",
            })
            .collect(),
        None => vec!["passed"; STEPS],
    };
    assert_eq!(statuses(client).await, expected, "{attack}");
    assert_eq!(
        revealed,
        expected[..revealed.len()],
        "{attack}: the story stops at the failed step"
    );
    match stops_at {
        Some(_) => {
            let failure = content_of(client, "demo-failure").await;
            assert!(failure.contains("The handshake stopped"), "{failure:?}");
            assert!(
                !present(client, "demo-ending").await,
                "{attack}: no chat after a failed handshake"
            );
        }
        None => {
            element(client, "demo-ending").await;
        }
    }
    let verdict = element(client, "demo-verdict").await;
    let title = verdict.find(Locator::Css("h4")).await.unwrap().text().await.unwrap();
    assert_eq!(title.trim(), heading, "{attack}");
    let check = content_of(client, "demo-verdict-check").await;
    assert!(!check.is_empty(), "{attack}: the verdict names its check");
    let values = verdict.find_all(Locator::Css("dd")).await.unwrap();
    assert!(values.len() >= 2, "{attack}: the verdict shows the values it compared");
    if attack == "flip_wrapped_key" {
        assert!(
            present(client, "demo-wire-action").await,
            "the wire marks the tampered envelope"
        );
        scroll_into_view(client, "demo-wire-action").await;
    }
    scroll_into_view(client, "demo-verdict").await;
    settled(client).await;
    let picture_name = match attack {
        "flip_wrapped_key" => "demo-tampered.png".to_owned(),
        _ => format!("demo-{}.png", attack.replace('_', "-")),
    };
    picture(client, &picture_name).await;
    match attack {
        "flip_wrapped_key" => crate::axe::check(client, "demo-tampered").await,
        "substitute_first_contact" => crate::axe::check(client, "demo-verdict").await,
        _ => {}
    }
}

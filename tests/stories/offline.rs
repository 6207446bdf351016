//! Bob is away: messages wait at the relay and arrive once when he is back. And what the disk holds afterwards.

use std::path::Path;
use std::sync::atomic::Ordering::SeqCst;

use magpie_core::engine::Event;
use magpie_core::profile::{history_account, identity_account};

use crate::chat::wait_until_all_delivered;
use crate::common::{go_online, identity, online_pair, wait_for, OnlinePair, Relay};

const WHILE_AWAY: usize = 100;
const SECRET_TEXT: &str = "the magpie collects shiny things at midnight";

#[tokio::test(flavor = "multi_thread")]
async fn messages_sent_while_bob_is_offline_arrive_once() {
    let relay = Relay::start().await;
    let OnlinePair {
        alice, bob, bob_online, ..
    } = online_pair(&relay).await;

    // Bob quits: the task stops and the profile closes.
    bob_online.abort();
    let _ = bob_online.await;
    let bob = bob.reopen().await;
    let bob_name = bob.client.username().clone();
    for i in 0..WHILE_AWAY {
        alice.client.send_text(&bob_name, &format!("while away {i}")).unwrap();
    }
    // Accepted by the relay (its 202s come back over Alice's socket), not delivered: Bob is away.
    let deadline = tokio::time::Instant::now() + crate::common::PATIENCE;
    while !alice
        .client
        .last_messages(&bob_name, 1000)
        .unwrap()
        .iter()
        .all(|e| e.message.delivery == magpie_core::history::Delivery::Sent)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay never accepted them all"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let stored_before = relay.running.state.metrics.envelopes_stored.load(SeqCst);
    let mut bob_events = bob.client.events();
    let _b = go_online(&bob.client);
    for i in 0..WHILE_AWAY {
        let body = wait_for(&mut bob_events, |e| match e {
            Event::MessageReceived { message } => Some(message.body.clone()),
            _ => None,
        })
        .await;
        assert_eq!(body, format!("while away {i}"));
    }
    wait_until_all_delivered(&alice.client, &bob_name).await;
    // The catch-up handled Alice's hundred in one step, so one receipt answered them all.
    let receipts = relay.running.state.metrics.envelopes_stored.load(SeqCst) - stored_before;
    assert_eq!(receipts, 1, "Bob's receipts for {WHILE_AWAY} messages");
    // Once Bob's catch-up has acknowledged them (it may still be on its way: the receipt goes out first), a
    // second catch-up finds nothing new, and nothing was stored twice.
    let deadline = tokio::time::Instant::now() + crate::common::PATIENCE;
    while !relay.running.state.store.fetch("bob", 0, 1).await.unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "Bob's mailbox never emptied");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let again = bob.client.sync().await.unwrap();
    assert_eq!(again.handled, 0);
    let history = bob.client.last_messages(alice.client.username(), 1000).unwrap();
    assert_eq!(history.len(), WHILE_AWAY);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_profile_directory_holds_no_plaintext_and_no_private_key() {
    let relay = Relay::start().await;
    let OnlinePair { alice, bob, .. } = online_pair(&relay).await;
    let mut bob_events = bob.client.events();
    alice.client.send_text(bob.client.username(), SECRET_TEXT).unwrap();
    wait_for(&mut bob_events, |e| {
        matches!(e, Event::MessageReceived { .. }).then_some(())
    })
    .await;

    for person in [&alice, &bob] {
        let profile = person.client.profile();
        profile.history().flush().unwrap();
        let id = profile.id();
        let private_key = identity(profile.username().as_str())
            .to_pkcs8_der()
            .unwrap()
            .expose_secret()
            .to_vec();
        let history_key = person
            .keystore
            .load(&history_account(id))
            .unwrap()
            .unwrap()
            .expose()
            .to_vec();
        assert_eq!(
            person.keystore.load(&identity_account(id)).unwrap().unwrap().expose(),
            private_key.as_slice(),
            "the private key is in the credential store"
        );
        // The tail of a PKCS#8 RSA key is the CRT coefficient: private, never inside a certificate.
        let private_tail = &private_key[private_key.len() - 48..];
        let needles: [(&str, &[u8]); 4] = [
            ("message text", SECRET_TEXT.as_bytes()),
            ("private key", &private_key),
            ("private key part", private_tail),
            ("history key", &history_key),
        ];
        let files = files(&person.profile_dir());
        assert!(files.iter().any(|f| f.ends_with("history/db")), "{files:?}");
        for file in files {
            let bytes = std::fs::read(&file).unwrap();
            for (what, needle) in needles {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "{what} found in {}",
                    file.display()
                );
            }
        }
        // The text really is in the history: decrypted through the key, not lying on disk.
        let peer = if person.client.username().as_str() == "alice" {
            "bob"
        } else {
            "alice"
        };
        let history = person.client.last_messages(&crate::common::name(peer), 1).unwrap();
        assert_eq!(history[0].message.body, SECRET_TEXT);
    }
}

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

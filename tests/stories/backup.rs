//! Alice backs up, goes on chatting, then restores the backup on a "new computer" (a fresh profile directory and
//! a credential store namespace of its own): her history and contacts come back, a fresh handshake with Bob runs
//! before anything is sealed, and no (session, counter) is ever sealed twice. Bob sees one re-key, no key change.

use std::collections::HashSet;
use std::sync::atomic::AtomicBool;

use magpie_api::EnvelopeKind;
use magpie_core::history::Delivery;
use magpie_core::{Client, Error};

use crate::common::{keystore, name, ForgetKeys};
use crate::trust::{assert_sealed_once, pair_at, Operator};

const PASSPHRASE: &str = "a long and memorable passphrase";

#[tokio::test(flavor = "multi_thread")]
async fn alice_restores_her_backup_on_a_new_computer_and_chats_on() {
    let operator = Operator::start().await;
    let (alice, bob) = pair_at(&operator).await;
    let (alice_name, bob_name) = (name("alice"), name("bob"));
    for text in ["one", "two"] {
        alice.client.send_text(&bob_name, text).unwrap();
    }
    alice.client.flush_outbox().await.unwrap();
    // Every envelope Alice's computers post to Bob, each once: read before Bob takes them.
    let mut sent: HashSet<Vec<u8>> = HashSet::new();
    let collect = |sent: &mut HashSet<Vec<u8>>| sent.extend(operator.read("bob", EnvelopeKind::Message));
    collect(&mut sent);
    bob.client.sync().await.unwrap();
    bob.client.send_text(&alice_name, "hello alice").unwrap();
    bob.client.flush_outbox().await.unwrap();
    alice.client.sync().await.unwrap();

    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("alice.magpie-backup");
    let profile = alice.client.clone();
    let target = file.clone();
    let summary = tokio::task::spawn_blocking(move || {
        let never = AtomicBool::new(false);
        magpie_core::backup::write_backup(profile.profile(), &target, PASSPHRASE, &never, &mut |_| {})
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!((summary.contacts, summary.messages), (1, 3));

    // The old computer goes on with the sessions the backup also had: their next counters are used up here.
    alice.client.send_text(&bob_name, "three").unwrap();
    alice.client.flush_outbox().await.unwrap();
    collect(&mut sent);
    bob.client.sync().await.unwrap();

    // The new computer: a fresh directory and credential store. A wrong passphrase first leaves nothing.
    let new_computer = tempfile::tempdir().unwrap();
    let dir = new_computer.path().join("alice");
    let keys = keystore();
    let restore = |passphrase: &'static str| {
        let (file, dir, keys) = (file.clone(), dir.clone(), keys.clone());
        tokio::task::spawn_blocking(move || {
            let never = AtomicBool::new(false);
            magpie_core::backup::restore(&file, passphrase, &dir, keys, &never, &mut |_| {})
        })
    };
    let wrong = restore("not the passphrase at all").await.unwrap().unwrap_err();
    assert!(matches!(wrong, Error::BackupWrongPassphrase), "{wrong:?}");
    assert!(!dir.exists());
    let restored = restore(PASSPHRASE).await.unwrap().unwrap();
    let _forget = ForgetKeys::new(keys.clone(), restored.id());
    assert_eq!(
        restored.identity().fingerprint().unwrap(),
        alice.client.fingerprint(),
        "the same identity"
    );
    let new_alice = Client::open(restored).unwrap();
    let history: Vec<String> = new_alice
        .last_messages(&bob_name, 10)
        .unwrap()
        .into_iter()
        .map(|e| e.message.body)
        .collect();
    assert_eq!(history, ["one", "two", "hello alice"]);

    // Nothing is sealed before the new handshake: a text waits for it.
    let waiting = new_alice.send_text(&bob_name, "from the new computer").unwrap();
    assert_eq!(waiting.delivery, Delivery::Waiting);
    let mut bob_events = bob.client.events();
    new_alice.sync().await.unwrap(); // a new handshake with Bob
    bob.client.sync().await.unwrap(); // accepts the re-key by himself (same key)
    new_alice.sync().await.unwrap(); // the session: the waiting text goes
    collect(&mut sent);
    bob.client.sync().await.unwrap();
    new_alice.sync().await.unwrap();
    assert!(new_alice.has_session(&bob_name).unwrap());
    new_alice.send_text(&bob_name, "and on").unwrap();
    new_alice.flush_outbox().await.unwrap();
    collect(&mut sent);
    bob.client.sync().await.unwrap();

    // One, two, the receipt for Bob's hello, three; then the new session's two texts.
    assert_sealed_once(sent.iter(), "alice", 6);
    let received: Vec<String> = bob
        .client
        .last_messages(&alice_name, 10)
        .unwrap()
        .into_iter()
        .filter(|e| e.message.direction == magpie_core::history::Direction::Incoming)
        .map(|e| e.message.body)
        .collect();
    assert_eq!(received, ["one", "two", "three", "from the new computer", "and on"]);

    let contact = bob.client.contact(&alice_name).unwrap().unwrap();
    assert!(!contact.key_changed, "the same key: no key-change warning");
    assert!(contact.discarded.is_none(), "nothing Bob received was refused");
    let mut rekeys = 0;
    while let Ok(event) = bob_events.try_recv() {
        assert!(
            !matches!(event, magpie_core::Event::KeyChanged { .. }),
            "Bob was warned of a key change"
        );
        rekeys += usize::from(matches!(
            event,
            magpie_core::Event::SessionEstablished { rekey: true, .. }
        ));
    }
    assert_eq!(rekeys, 1, "Bob sees one re-key");
}

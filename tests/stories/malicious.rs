//! A relay that lies: its directory swaps Bob's certificate for another key, validly signed by its own CA.
//! Alice's client must notice the key change and refuse to send.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use magpie_core::engine::Event;
use magpie_core::Error;
use magpie_proto::{Identity, Username};
use magpie_relay::server::RunningRelay;
use magpie_relay::store::{Intercept, SledStore, UserRecord};
use magpie_relay::{AppState, Config};

use crate::common::{go_online, handshake, identity, name, wait_for, Person};

/// Alice and Bob registered and online at a [`lying_relay`]; `swap` makes its directory lie. The underscored
/// fields keep the relay serving and both clients connected while the story runs.
struct AtALyingRelay {
    _relay: RunningRelay,
    swap: Arc<AtomicBool>,
    alice: Person,
    bob: Person,
    _online: [tokio::task::JoinHandle<()>; 2],
}

async fn at_a_lying_relay(dir: &std::path::Path) -> AtALyingRelay {
    let (relay, swap) = lying_relay(dir).await;
    let alice = Person::register("alice", &relay.url("")).await;
    let bob = Person::register("bob", &relay.url("")).await;
    let _online = [go_online(&alice.client), go_online(&bob.client)];
    AtALyingRelay {
        _relay: relay,
        swap,
        alice,
        bob,
        _online,
    }
}

/// A relay whose directory answers with a certificate named "bob" for Mallory's key, signed by its own CA, while
/// the returned flag is set.
async fn lying_relay(dir: &std::path::Path) -> (RunningRelay, Arc<AtomicBool>) {
    let ca = magpie_relay::ca::load_or_create(dir).unwrap();
    // The operator's CA signs a certificate named "bob" for Mallory's key.
    let impostor =
        Identity::from_pkcs8_der(name("bob"), identity("mallory").to_pkcs8_der().unwrap().expose_secret()).unwrap();
    let forged = ca.authority.issue(&impostor.csr().unwrap(), SystemTime::now()).unwrap();
    // The real sled store, except that once `swap` is set, looking up bob returns the forged certificate.
    let swap = Arc::new(AtomicBool::new(false));
    let forged = String::from_utf8(forged.to_pem().unwrap()).unwrap();
    let lying = Arc::clone(&swap);
    let real = SledStore::open(&dir.join("store"), Default::default()).unwrap();
    let store = Arc::new(Intercept::new(Arc::new(real)).on_user(move |real, username| {
        let record = real.user(username)?;
        if username == "bob" && lying.load(Ordering::SeqCst) {
            return Ok(record.map(|r| UserRecord {
                cert_pem: forged.clone(),
                ..r
            }));
        }
        Ok(record)
    }));
    let state = AppState::new(store, ca, Config::with_data_dir(dir)).unwrap();
    (RunningRelay::start(state).await.unwrap(), swap)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_swapped_certificate_is_a_key_change_and_blocks_sending() {
    let dir = tempfile::tempdir().unwrap();
    let at = at_a_lying_relay(dir.path()).await;
    let (swap, alice, bob) = (&at.swap, &at.alice, &at.bob);
    handshake(&alice.client, &bob.client).await;
    let bob_name: Username = name("bob");
    alice.client.send_text(&bob_name, "before the swap").unwrap();

    swap.store(true, Ordering::SeqCst);
    let mut events = alice.client.events();
    let changed = alice.client.check_keys().await.unwrap();
    assert_eq!(changed, vec![bob_name.clone()]);
    let (pinned, presented) = wait_for(&mut events, |e| match e {
        Event::KeyChanged {
            peer,
            pinned,
            presented,
        } if peer == "bob" => Some((pinned.clone(), presented.clone())),
        _ => None,
    })
    .await;
    assert_eq!(pinned, bob.client.fingerprint().to_hex());
    assert_eq!(presented, identity("mallory").fingerprint().unwrap().to_hex());
    // Checking again finds the same pending key: still blocked, not announced twice.
    assert_eq!(alice.client.check_keys().await.unwrap(), vec![bob_name.clone()]);
    while let Ok(event) = events.try_recv() {
        assert!(!matches!(event, Event::KeyChanged { .. }), "announced again: {event:?}");
    }

    let refused = alice.client.send_text(&bob_name, "after the swap");
    assert!(
        matches!(refused, Err(Error::KeyChanged(ref p)) if p == "bob"),
        "{refused:?}"
    );
    assert!(matches!(
        alice.client.request(&bob_name).await,
        Err(Error::KeyChanged(_))
    ));
    let contact = alice.client.contact(&bob_name).unwrap().unwrap();
    assert!(contact.key_changed);
    assert_eq!(
        contact.fingerprint,
        bob.client.fingerprint(),
        "the pin is not moved without the user"
    );
    let history = alice.client.last_messages(&bob_name, 10).unwrap();
    assert_eq!(history.len(), 1, "nothing was queued after the change");

    // Comparing safety numbers exposes the impostor: Alice's number is now computed with the presented key.
    let alices = alice.client.safety_number(&bob_name).unwrap();
    let bobs = bob.client.safety_number(&name("alice")).unwrap();
    assert_ne!(alices.number.digits(), bobs.number.digits());
    assert_eq!(alices.fingerprint, identity("mallory").fingerprint().unwrap());

    // Accepting the new key anyway (the user's explicit choice) unblocks the chat and starts a fresh handshake.
    let request = alice
        .client
        .accept_new_key(&bob_name, &alices.fingerprint)
        .await
        .unwrap();
    assert!(request.is_some());
    let contact = alice.client.contact(&bob_name).unwrap().unwrap();
    assert!(!contact.key_changed);
    assert!(!contact.verified);
    assert_eq!(contact.fingerprint, identity("mallory").fingerprint().unwrap());
    assert!(matches!(
        alice.client.send_text(&bob_name, "x"),
        Err(Error::NoSession(_))
    ));
}

/// Bob's answer is checked against the chain Alice looked up just before her request, without a second lookup;
/// when that chain does not verify the answer (the directory changed in between), she looks up again.
#[tokio::test(flavor = "multi_thread")]
async fn an_answer_that_the_chain_from_before_the_request_fails_is_checked_again_against_a_new_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let at = at_a_lying_relay(dir.path()).await;
    let (swap, alice, bob) = (&at.swap, &at.alice, &at.bob);
    let mut alice_events = alice.client.events();
    let mut bob_events = bob.client.events();

    // First contact, no pin: the forged chain verifies against the CA, so the request goes out.
    swap.store(true, Ordering::SeqCst);
    alice.client.request(&name("bob")).await.unwrap();
    swap.store(false, Ordering::SeqCst);
    wait_for(&mut bob_events, |e| {
        matches!(e, Event::RequestReceived { .. }).then_some(())
    })
    .await;
    crate::common::accept_from(&bob.client, &name("alice")).await.unwrap();

    wait_for(&mut alice_events, |e| {
        matches!(e, Event::SessionEstablished { .. }).then_some(())
    })
    .await;
    let contact = alice.client.contact(&name("bob")).unwrap().unwrap();
    assert_eq!(
        contact.fingerprint,
        bob.client.fingerprint(),
        "pinned to Bob's real key"
    );
    assert!(!contact.key_changed);
}

//! Bad input and dead relays: typed errors and events, nothing lost, nothing panics.

use magpie_core::engine::Event;
use magpie_core::relay::RelayClient;
use magpie_core::Error;
use magpie_proto::{EnvelopeKind, KeyTransfer, SealedMessage};

use crate::common::{accept_from, go_online, identity, name, wait_for, Person, Relay};

/// Alice and Bob with a session, driven by explicit catch-ups (no push loop), so envelopes can be intercepted.
async fn pair(relay: &Relay) -> (Person, Person) {
    let alice = Person::register("alice", &relay.url()).await;
    let bob = Person::register("bob", &relay.url()).await;
    alice.client.request(&name("bob")).await.unwrap();
    alice.client.flush_outbox().await.unwrap();
    bob.client.sync().await.unwrap();
    accept_from(&bob.client, &name("alice")).await.unwrap();
    bob.client.flush_outbox().await.unwrap();
    alice.client.sync().await.unwrap();
    bob.client.sync().await.unwrap();
    alice.client.sync().await.unwrap();
    assert!(alice.client.has_session(&name("bob")).unwrap());
    assert!(bob.client.has_session(&name("alice")).unwrap());
    (alice, bob)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_message_is_rejected_and_the_genuine_one_still_opens() {
    let relay = Relay::start().await;
    let (alice, bob) = pair(&relay).await;
    alice.client.send_text(&name("bob"), "genuine").unwrap();
    let (_, item) = alice.client.profile().history().outbox().unwrap().pop().unwrap();
    let genuine = item.envelope;
    assert_eq!(genuine.kind, EnvelopeKind::Message);

    let mut sealed = SealedMessage::from_json(&genuine.body).unwrap();
    sealed.ciphertext[3] ^= 0x01;
    let mut tampered = genuine.clone();
    tampered.body = sealed.to_json().unwrap();
    let mut events = bob.client.events();
    bob.client.handle_envelope(&tampered).await.unwrap();
    let reason = wait_for(&mut events, |e| match e {
        Event::Rejected { peer, reason, .. } if peer == "alice" => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(reason.to_lowercase().contains("decrypt"), "{reason}");
    assert!(bob.client.last_messages(&name("alice"), 10).unwrap().is_empty());

    // Garbage and a stranger's name are rejected the same way, not errors.
    let mut garbage = genuine.clone();
    garbage.body = b"{not json".to_vec();
    bob.client.handle_envelope(&garbage).await.unwrap();
    let mut misaddressed = genuine.clone();
    misaddressed.to = "carol".into();
    bob.client.handle_envelope(&misaddressed).await.unwrap();

    bob.client.handle_envelope(&genuine).await.unwrap();
    let body = wait_for(&mut events, |e| match e {
        Event::MessageReceived { message } => Some(message.body.clone()),
        _ => None,
    })
    .await;
    assert_eq!(body, "genuine", "the forgery did not move the ratchet");
    // The same envelope again (the relay redelivers after a crash) is dropped, not stored twice.
    bob.client.handle_envelope(&genuine).await.unwrap();
    assert_eq!(bob.client.last_messages(&name("alice"), 10).unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_key_transfer_fails_the_handshake_on_bobs_side() {
    let relay = Relay::start().await;
    let alice = Person::register("alice", &relay.url()).await;
    let bob = Person::register("bob", &relay.url()).await;
    alice.client.request(&name("bob")).await.unwrap();
    alice.client.flush_outbox().await.unwrap();
    bob.client.sync().await.unwrap();
    accept_from(&bob.client, &name("alice")).await.unwrap();
    bob.client.flush_outbox().await.unwrap();
    alice.client.sync().await.unwrap(); // posts the KeyTransfer

    // Read Bob's mailbox as Bob, behind his client's back, and flip one bit of the wrapped key.
    let spy = RelayClient::new(&relay.url()).unwrap();
    spy.login(&identity("bob"), &bob.client.relay_ca_fingerprint().unwrap())
        .await
        .unwrap();
    let mailbox = spy.fetch(0).await.unwrap();
    let mut envelope = mailbox
        .envelopes
        .into_iter()
        .find(|e| e.kind == EnvelopeKind::KeyTransfer)
        .unwrap();
    let mut transfer = KeyTransfer::from_json(&envelope.body).unwrap();
    transfer.wrapped_key[10] ^= 0x80;
    envelope.body = transfer.to_json().unwrap();

    let mut events = bob.client.events();
    bob.client.handle_envelope(&envelope).await.unwrap();
    let (peer, reason) = wait_for(&mut events, |e| match e {
        Event::HandshakeFailed { peer, reason, .. } => Some((peer.clone(), reason.clone())),
        _ => None,
    })
    .await;
    assert_eq!(peer, "alice");
    assert!(reason.to_lowercase().contains("signature"), "{reason}");
    assert!(!bob.client.has_session(&name("alice")).unwrap());
    assert!(
        bob.client.outgoing_requests().unwrap().is_empty(),
        "nothing of the handshake is kept"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_decline_reaches_alice_signed() {
    let relay = Relay::start().await;
    let alice = Person::register("alice", &relay.url()).await;
    let bob = Person::register("bob", &relay.url()).await;
    alice.client.request(&name("bob")).await.unwrap();
    alice.client.flush_outbox().await.unwrap();
    bob.client.sync().await.unwrap();
    assert_eq!(bob.client.incoming_requests().unwrap().len(), 1);
    bob.client
        .decline(bob.client.sole_request_from(&name("alice")).unwrap().request_id)
        .await
        .unwrap();
    bob.client.flush_outbox().await.unwrap();
    assert!(bob.client.incoming_requests().unwrap().is_empty());
    assert!(matches!(
        accept_from(&bob.client, &name("alice")).await,
        Err(Error::NoRequest(_))
    ));

    let mut events = alice.client.events();
    alice.client.sync().await.unwrap();
    let peer = wait_for(&mut events, |e| match e {
        Event::RequestDeclined { peer, .. } => Some(peer.clone()),
        _ => None,
    })
    .await;
    assert_eq!(peer, "bob");
    assert!(alice.client.outgoing_requests().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_relay_is_a_typed_transient_error_and_the_message_waits() {
    let relay = Relay::start().await;
    let (alice, _bob) = pair(&relay).await;
    relay.running.stop().await.unwrap();

    let message = alice.client.send_text(&name("bob"), "while the relay is down").unwrap();
    let error = alice.client.flush_outbox().await.unwrap_err();
    assert!(matches!(error, Error::RelayUnreachable { .. }), "{error:?}");
    assert!(error.is_transient());
    assert!(error.to_string().contains("cannot be reached"), "{error}");
    let stored = alice.client.last_messages(&name("bob"), 1).unwrap();
    assert_eq!(stored[0].message.id, message.id);
    assert_eq!(stored[0].message.delivery, magpie_core::history::Delivery::Sending);
    assert_eq!(
        alice.client.profile().history().outbox().unwrap().len(),
        1,
        "kept for the retry"
    );

    assert!(matches!(
        RelayClient::new("ftp://example.org"),
        Err(Error::BadRelayUrl(_))
    ));
    assert!(matches!(RelayClient::new("not a url"), Err(Error::BadRelayUrl(_))));
}

#[tokio::test(flavor = "multi_thread")]
async fn registration_refuses_a_relay_whose_ca_is_not_the_one_confirmed() {
    let relay = Relay::start().await;
    let dir = tempfile::tempdir().unwrap();
    let profile = crate::common::create_profile(dir.path(), "alice", crate::common::keystore()).await;
    let wrong = magpie_proto::Fingerprint::from_bytes([7; 32]);
    let error = magpie_core::Client::register(profile, &relay.url(), Some(&wrong))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::RelayCaChanged { .. }), "{error:?}");
}

/// A chat request delivered again after its handshake ended (pushed, then fetched by a catch-up) is dropped: it
/// must not start the handshake over, which would answer with a second accept and leave Bob waiting for a key.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_delivered_again_after_its_handshake_is_dropped() {
    let relay = Relay::start().await;
    let alice = Person::register("alice", &relay.url()).await;
    let bob = Person::register("bob", &relay.url()).await;
    alice.client.request(&name("bob")).await.unwrap();
    alice.client.flush_outbox().await.unwrap();
    // Keep a copy of the request, as the relay would deliver it a second time.
    let spy = RelayClient::new(&relay.url()).unwrap();
    spy.login(&identity("bob"), &bob.client.relay_ca_fingerprint().unwrap())
        .await
        .unwrap();
    let request = spy
        .fetch(0)
        .await
        .unwrap()
        .envelopes
        .into_iter()
        .find(|e| e.kind == EnvelopeKind::ChatRequest)
        .unwrap();
    bob.client.sync().await.unwrap();
    accept_from(&bob.client, &name("alice")).await.unwrap();
    bob.client.flush_outbox().await.unwrap();
    alice.client.sync().await.unwrap(); // posts the KeyTransfer
    bob.client.sync().await.unwrap(); // installs the session, posts the KeyConfirm
    assert!(bob.client.has_session(&name("alice")).unwrap());

    let mut events = bob.client.events();
    bob.client.handle_envelope(&request).await.unwrap();
    assert!(bob.client.incoming_requests().unwrap().is_empty());
    assert!(
        bob.client.outgoing_requests().unwrap().is_empty(),
        "a handshake was started over"
    );
    assert!(
        bob.client.profile().history().outbox().unwrap().is_empty(),
        "something was answered"
    );
    assert!(events.try_recv().is_err(), "an event was reported");
}

/// A text sealed with keys Alice does not have yet (its KeyConfirm is held back) is left in her mailbox while her
/// handshake is under way; once the confirm installs the session she reads the mailbox again, unprompted, and the
/// text opens. (Only a parked envelope makes a new session re-read the mailbox.)
#[tokio::test(flavor = "multi_thread")]
async fn a_text_that_overtakes_its_confirm_opens_once_the_session_is_installed() {
    let relay = Relay::start().await;
    let alice = Person::register("alice", &relay.url()).await;
    let bob = Person::register("bob", &relay.url()).await;
    let _alice_online = go_online(&alice.client);
    let mut alice_events = alice.client.events();
    alice.client.request(&name("bob")).await.unwrap();
    while bob.client.incoming_requests().unwrap().is_empty() {
        bob.client.sync().await.unwrap();
    }
    accept_from(&bob.client, &name("alice")).await.unwrap();
    bob.client.flush_outbox().await.unwrap();

    // Bob takes Alice's KeyTransfer by hand, so his KeyConfirm stays in his outbox until taken out.
    let as_bob = RelayClient::new(&relay.url()).unwrap();
    as_bob
        .login(&identity("bob"), &bob.client.relay_ca_fingerprint().unwrap())
        .await
        .unwrap();
    let transfer = loop {
        let waiting = as_bob.fetch(0).await.unwrap().envelopes;
        if let Some(transfer) = waiting.into_iter().find(|e| e.kind == EnvelopeKind::KeyTransfer) {
            break transfer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    bob.client.handle_envelopes(&[transfer]).await.unwrap();
    let history = bob.client.profile().history();
    let (key, confirm) = history
        .outbox()
        .unwrap()
        .into_iter()
        .find(|(_, item)| item.envelope.kind == EnvelopeKind::KeyConfirm)
        .unwrap();
    history.remove_outbox(key).unwrap();
    bob.client.send_text(&name("alice"), "ahead of its keys").unwrap();
    bob.client.flush_outbox().await.unwrap();

    // Pushed to Alice before the confirm: parked, not shown, not rejected.
    let early = tokio::time::timeout(std::time::Duration::from_millis(500), async {
        wait_for(&mut alice_events, |e| match e {
            Event::MessageReceived { .. } | Event::Rejected { .. } => Some(format!("{e:?}")),
            _ => None,
        })
        .await
    })
    .await;
    assert!(early.is_err(), "{early:?}");

    as_bob.send(&confirm.envelope).await.unwrap();
    let body = wait_for(&mut alice_events, |e| match e {
        Event::MessageReceived { message } => Some(message.body.clone()),
        _ => None,
    })
    .await;
    assert_eq!(body, "ahead of its keys");
}

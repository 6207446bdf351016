//! The engine on in-memory stores ([`crate::store::MemoryStore`]): no sled, no credential store, no relay. Envelopes
//! go from one client's outbox to the other's inbox by hand.

use magpie_proto::Envelope;

use super::inbox::Disposition;
use super::*;
use crate::history::{Delivery, Direction};
use magpie_tests::{pair_at, username};

/// Alice and Bob in memory, each with the other pinned and their session from a real handshake.
fn alice_and_bob() -> (Client<MemoryHome>, Client<MemoryHome>) {
    // Made a minute ago: sessions have a maximum age.
    let pair = pair_at(std::time::SystemTime::now() - std::time::Duration::from_secs(60));
    let client = |credential: &Credential| {
        Client::in_memory(
            credential.identity().clone(),
            credential.certificate().clone(),
            pair.ca.clone(),
            "https://relay.invalid",
        )
        .unwrap()
    };
    let (alice, bob) = (client(&pair.alice), client(&pair.bob));
    for (me, peer, session) in [
        (&alice, &pair.bob, &pair.alice_session),
        (&bob, &pair.alice, &pair.bob_session),
    ] {
        me.store().save_session(session).unwrap();
        let contact = Contact::new(peer.username().clone(), peer.fingerprint());
        me.store()
            .update_contact(peer.username(), |slot| {
                *slot = Some(contact);
                Ok(())
            })
            .unwrap();
    }
    (alice, bob)
}

/// What `client` has queued to go out, oldest first.
fn outgoing(client: &Client<MemoryHome>) -> Vec<Envelope> {
    let queued = client.store().outbox().unwrap();
    queued.into_iter().map(|(_, item)| item.envelope).collect()
}

#[tokio::test]
async fn a_text_reaches_the_peer_and_its_receipt_comes_back() {
    let (alice, bob) = alice_and_bob();
    let sent = alice.send_text(&username("bob"), "hello from memory").unwrap();
    assert_eq!(sent.delivery, Delivery::Sending);
    let envelopes = outgoing(&alice);
    assert_eq!(envelopes.len(), 1);
    assert!(
        !envelopes[0].body.windows(5).any(|w| w == b"hello"),
        "sealed on the way"
    );

    let dispositions = bob.handle_envelopes(&envelopes).await.unwrap();
    assert_eq!(dispositions, [Disposition::Done]);
    let got = bob.last_messages(&username("alice"), 10).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message.body, "hello from memory");
    assert_eq!(got[0].message.direction, Direction::Incoming);

    // A second copy (the relay redelivers) is acknowledged and stored once.
    assert_eq!(bob.handle_envelopes(&envelopes).await.unwrap(), [Disposition::Done]);
    assert_eq!(bob.last_messages(&username("alice"), 10).unwrap().len(), 1);

    let receipts = outgoing(&bob);
    assert_eq!(receipts.len(), 1, "one receipt");
    alice.handle_envelopes(&receipts).await.unwrap();
    let mine = alice.last_messages(&username("bob"), 10).unwrap();
    assert_eq!(mine[0].message.delivery, Delivery::Delivered);
}

#[tokio::test]
async fn a_tampered_text_is_discarded_counted_and_never_shown() {
    let (alice, bob) = alice_and_bob();
    alice.send_text(&username("bob"), "to be tampered with").unwrap();
    let mut envelope = outgoing(&alice).remove(0);
    let mut sealed = magpie_proto::SealedMessage::from_json(&envelope.body).unwrap();
    sealed.ciphertext[0] ^= 1;
    envelope.body = sealed.to_json().unwrap();

    assert_eq!(bob.handle_envelopes(&[envelope]).await.unwrap(), [Disposition::Done]);
    assert!(bob.last_messages(&username("alice"), 10).unwrap().is_empty());
    let contact = bob.contact(&username("alice")).unwrap().unwrap();
    assert_eq!(contact.discarded.map(|d| d.messages), Some(1));
    assert!(outgoing(&bob).is_empty(), "no receipt for what did not open");
}

#[tokio::test]
async fn texts_to_someone_without_a_session_are_refused() {
    let (alice, _) = alice_and_bob();
    let refused = alice.send_text(&username("carol"), "hi").unwrap_err();
    assert!(matches!(refused, Error::NoSession(_)), "{refused:?}");
    assert!(outgoing(&alice).is_empty());
}

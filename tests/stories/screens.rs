//! What the app's chat screen asks of the engine: pages from the end, read marks and unread counts, and sending a
//! failed message again.

use magpie_core::engine::{Event, MessageView};
use magpie_core::history::Delivery;
use magpie_core::Error;

use crate::common::{logs, name, online_pair, wait_for, Relay};

#[tokio::test(flavor = "multi_thread")]
async fn pages_read_marks_and_resending_a_failed_message() {
    logs();
    // Envelopes over 4 KiB are refused for good: how a message ends "failed" here.
    let relay = Relay::start_configured(tempfile::tempdir().unwrap(), |config| config.max_envelope_bytes = 4096).await;
    let pair = online_pair(&relay).await;
    let (alice, bob) = (&pair.alice.client, &pair.bob.client);
    let mut bob_events = bob.events();
    let first = alice.send_text(&name("bob"), "message 0").unwrap();
    for i in 1..5 {
        alice.send_text(&name("bob"), &format!("message {i}")).unwrap();
    }
    let mut received = 0;
    while received < 5 {
        wait_for(&mut bob_events, |e| {
            matches!(e, Event::MessageReceived { .. }).then_some(())
        })
        .await;
        received += 1;
    }

    // Pages come from the end, oldest first; `before` is exclusive.
    let newest = bob.messages_before(&name("alice"), None, 2).unwrap();
    let bodies = |page: &[magpie_core::history::Entry]| page.iter().map(|e| e.message.body.clone()).collect::<Vec<_>>();
    assert_eq!(bodies(&newest), ["message 3", "message 4"]);
    let older = bob
        .messages_before(&name("alice"), Some(newest[0].cursor.value()), 10)
        .unwrap();
    assert_eq!(bodies(&older), ["message 0", "message 1", "message 2"]);

    // Unread: incoming after the read mark, which never moves back.
    assert_eq!(bob.unread(&name("alice"), 100).unwrap(), 5);
    bob.mark_read(&name("alice"), older[2].cursor.value()).unwrap();
    assert_eq!(bob.unread(&name("alice"), 100).unwrap(), 2);
    bob.mark_read(&name("alice"), older[0].cursor.value()).unwrap();
    assert_eq!(bob.unread(&name("alice"), 100).unwrap(), 2, "the read mark went back");
    assert_eq!(bob.unread(&name("alice"), 1).unwrap(), 1, "counted up to the cap");
    assert_eq!(
        alice.unread(&name("bob"), 100).unwrap(),
        0,
        "own messages are never unread"
    );

    // A message the relay refuses for good (over its envelope limit) ends "failed"; retrying sends its text again as
    // a new message and removes the failed one.
    let mut alice_events = alice.events();
    let huge = "x".repeat(8 * 1024);
    let sent = alice.send_text(&name("bob"), &huge).unwrap();
    // (Its refusal may come back before the next line runs: the message that must not be resent is one sent fine.)
    let not_failed = alice.retry_message(&name("bob"), first.id);
    assert!(
        matches!(not_failed, Err(Error::NoMessage(_))),
        "only a failed message is resent: {not_failed:?}"
    );
    wait_for(&mut alice_events, |e| match e {
        Event::DeliveryChanged {
            id,
            delivery: Delivery::Failed,
            ..
        } if *id == sent.id => Some(()),
        _ => None,
    })
    .await;
    let wrong_chat = alice.retry_message(&name("mallory"), sent.id);
    assert!(matches!(wrong_chat, Err(Error::NoMessage(_))), "{wrong_chat:?}");
    let resent: MessageView = alice.retry_message(&name("bob"), sent.id).unwrap();
    assert_ne!(resent.id, sent.id);
    assert_eq!(resent.body.len(), huge.len());
    assert!(alice.profile().history().get_message(sent.id).unwrap().is_none());
    let page = alice.messages_before(&name("bob"), None, 1).unwrap();
    assert_eq!(page[0].message.id, resent.id, "the resent message is the newest");
    // The relay refuses it again, the same way: the user sees it failed, not lost.
    wait_for(&mut alice_events, |e| match e {
        Event::DeliveryChanged {
            id,
            delivery: Delivery::Failed,
            ..
        } if *id == resent.id => Some(()),
        _ => None,
    })
    .await;
}

/// A full mailbox at the relay (507 `mailbox_full`) fails the message and says why, and holds up nothing else: a
/// text to someone else still goes, and once the reader catches up, sending it again works.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_mailbox_fails_the_message_with_its_reason_and_holds_up_nothing() {
    use magpie_core::engine::Refusal;
    logs();
    let relay = Relay::start_configured(tempfile::tempdir().unwrap(), |config| config.mailbox_max_envelopes = 3).await;
    let pair = online_pair(&relay).await;
    let alice = &pair.alice.client;
    let carol = crate::common::Person::register("carol", &relay.url()).await;
    let _carol_online = crate::common::go_online(&carol.client);
    crate::common::handshake(alice, &carol.client).await;
    // Bob goes away: his mailbox fills up with what Alice sends.
    pair.bob_online.abort();
    let _ = pair.bob_online.await;
    let mut events = alice.events();
    for i in 0..3 {
        alice.send_text(&name("bob"), &format!("waits {i}")).unwrap();
    }
    let over = alice.send_text(&name("bob"), "one too many").unwrap();
    let reason = wait_for(&mut events, |e| match e {
        Event::SendRefused { id, reason, .. } if *id == over.id => Some(*reason),
        _ => None,
    })
    .await;
    assert_eq!(reason, Refusal::MailboxFull);
    let stored = alice.last_messages(&name("bob"), 10).unwrap();
    let state_of = |body: &str| stored.iter().find(|e| e.message.body == body).unwrap().message.delivery;
    assert_eq!(state_of("one too many"), Delivery::Failed);
    assert_ne!(state_of("waits 0"), Delivery::Failed);

    // Nothing else waits on it: a text to Carol goes through.
    let to_carol = alice.send_text(&name("carol"), "not held up").unwrap();
    let delivery = wait_for(&mut events, |e| match e {
        Event::DeliveryChanged { id, delivery, .. } if *id == to_carol.id && *delivery != Delivery::Sending => {
            Some(*delivery)
        }
        _ => None,
    })
    .await;
    assert_ne!(delivery, Delivery::Failed);
}

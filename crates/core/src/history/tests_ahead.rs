//! Steps written ahead ([`super::ahead`]): seen before they are applied, applied once, kept across a crash.

use super::tests::{alice_and_bob_sessions, open, send, text};
use super::*;
use crate::test_support::username;

fn outbox_item(to: &str, message_id: uuid::Uuid) -> OutboxItem {
    OutboxItem {
        envelope: magpie_proto::Envelope {
            id: uuid::Uuid::new_v4(),
            from: "alice".into(),
            to: to.into(),
            kind: magpie_proto::EnvelopeKind::Message,
            body: b"sealed".to_vec(),
        },
        message_id: Some(message_id),
    }
}

/// Records a step storing a text to Bob and queuing its envelope.
fn queue_text(history: &History, alice: &magpie_proto::Session, body: &str) -> Message {
    let message = text("bob", body);
    history
        .record_step(alice, Some(&message), Some(&outbox_item("bob", message.id)))
        .unwrap();
    message
}

/// The envelope ids the outbox holds, in order.
fn outbox_ids(history: &History) -> Vec<uuid::Uuid> {
    history
        .outbox()
        .unwrap()
        .into_iter()
        .map(|(_, item)| item.envelope.id)
        .collect()
}

/// A step with a text and its envelope: the outbox lists it and the text is a duplicate while the step is only a
/// pending record; reading the text applies it, and the next flush removes the record.
#[test]
fn a_step_written_ahead_is_seen_before_it_is_applied() {
    let (alice, _, _) = alice_and_bob_sessions();
    let (_dir, _key, history) = open();
    history.save_session(&alice).unwrap();
    let message = text("bob", "ahead");
    let item = outbox_item("bob", message.id);
    let appended = history.record_step(&alice, Some(&message), Some(&item)).unwrap();
    assert!(matches!(appended, Some(Appended::New(_))));
    assert_eq!(history.pending_steps.len(), 1);
    assert!(history.outbox.is_empty(), "the item is still only in its record");

    let outbox = history.outbox().unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].1.envelope.id, item.envelope.id);
    let again = history
        .record_steps(&alice, SessionSlot::Current, std::slice::from_ref(&message), None)
        .unwrap();
    assert_eq!(again, [Appended::Duplicate]);

    let written = history.pending_steps.len();
    assert_eq!(history.get_message(message.id).unwrap().unwrap().message.body, "ahead");
    assert_eq!(history.pending_count().unwrap(), 0);
    assert_eq!(
        history.pending_steps.len(),
        written,
        "applied, and left for the next flush to remove"
    );
    history.flush().unwrap();
    assert!(history.pending_steps.is_empty());
    assert_eq!(history.outbox().unwrap().len(), 1);
    assert_eq!(history.last_messages(&username("bob"), 10).unwrap().len(), 1);
}

/// A crash after the flush that covers pending steps loses none of them: the next open applies every one, and the
/// session, the texts and the outbox are as if each had been a transaction.
#[test]
fn a_crash_keeps_steps_written_ahead_and_the_next_open_applies_them() {
    let (mut alice, mut bob, _) = alice_and_bob_sessions();
    let (dir, key, history) = open();
    history.save_session(&alice).unwrap();
    // Sealed without reserving, so the reloaded session is the stored one, not one moved past a record.
    let sealed: Vec<_> = (0..5)
        .map(|i| {
            let plaintext = magpie_proto::Plaintext::text(format!("text {i}"), std::time::SystemTime::now()).unwrap();
            let sealed = alice.seal(&plaintext).unwrap();
            let mut message = text("bob", &plaintext.body);
            message.id = plaintext.id;
            history.record_step(&alice, Some(&message), None).unwrap();
            sealed
        })
        .collect();
    let message = text("bob", "queued");
    history
        .record_step(&alice, Some(&message), Some(&outbox_item("bob", message.id)))
        .unwrap();
    assert_eq!(history.pending_steps.len(), 6);
    history.flush().unwrap();
    history.crash();

    let history = History::open(dir.path(), &key).unwrap();
    assert!(history.pending_steps.is_empty());
    let reloaded = history.load_session(&username("bob")).unwrap().unwrap();
    assert_eq!(reloaded.next_send_counter(), alice.next_send_counter());
    let bodies: Vec<String> = history
        .last_messages(&username("bob"), 10)
        .unwrap()
        .into_iter()
        .map(|e| e.message.body)
        .collect();
    assert_eq!(bodies, ["text 0", "text 1", "text 2", "text 3", "text 4", "queued"]);
    assert_eq!(history.outbox().unwrap().len(), 1);
    for sealed in &sealed {
        bob.open(sealed).unwrap();
    }
}

/// An envelope the relay accepted while its step was pending is gone for good: applying the step later, or after
/// a reopen, does not bring it back.
#[test]
fn an_outbox_item_removed_while_its_step_is_pending_does_not_come_back() {
    let (alice, _, _) = alice_and_bob_sessions();
    let (dir, key, history) = open();
    history.save_session(&alice).unwrap();
    let message = queue_text(&history, &alice, "accepted at once");
    let (key_of_item, _) = history.outbox().unwrap().pop().unwrap();
    history.remove_outbox(key_of_item).unwrap();
    assert!(history.outbox().unwrap().is_empty());
    history.settle().unwrap();
    assert!(history.outbox().unwrap().is_empty());
    history.flush().unwrap();
    history.crash();
    let history = History::open(dir.path(), &key).unwrap();
    assert!(history.outbox().unwrap().is_empty());
    assert!(history.contains_message(message.id).unwrap());
}

/// More steps than are kept pending are applied as they come, in order: every text once, in cursor order.
#[test]
fn many_steps_are_applied_in_order_and_each_text_once() {
    let (mut alice, _, _) = alice_and_bob_sessions();
    let (_dir, _key, history) = open();
    history.save_session(&alice).unwrap();
    send(&history, &mut alice, 600);
    assert!(history.pending_steps.len() < 600);
    let all = history.messages_after(&username("bob"), None, 1000).unwrap();
    let expected: Vec<String> = (0..600).map(|i| format!("text {i}")).collect();
    assert_eq!(all.iter().map(|e| e.message.body.clone()).collect::<Vec<_>>(), expected);
    assert!(all.windows(2).all(|w| w[0].cursor.value() < w[1].cursor.value()));
}

/// A pending record that does not open (a flipped bit on disk) is a typed error on open, not a panic.
#[test]
fn a_damaged_pending_step_is_a_typed_error() {
    let (alice, _, _) = alice_and_bob_sessions();
    let (dir, key, history) = open();
    history.save_session(&alice).unwrap();
    history.record_step(&alice, Some(&text("bob", "x")), None).unwrap();
    let (record_key, mut sealed) = history.pending_steps.iter().next().unwrap().unwrap();
    let mut bytes = sealed.to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    sealed = bytes.into();
    history.pending_steps.insert(record_key, sealed).unwrap();
    history.flush().ok();
    history.crash();
    assert!(History::open(dir.path(), &key).is_err());
}

/// Delivery states move on in pending records as they would in the trees: "sent" on the 202, "delivered" by a
/// receipt, never undone by a late 202, whether the message is pending or applied; and they survive a crash.
#[test]
fn delivery_states_move_on_in_pending_records_and_delivered_is_never_undone() {
    let (alice, _, _) = alice_and_bob_sessions();
    let (dir, key, history) = open();
    history.save_session(&alice).unwrap();
    let (pending, applied) = (text("bob", "pending"), text("bob", "applied"));
    history.record_step(&alice, Some(&applied), None).unwrap();
    history.settle().unwrap();
    history.record_step(&alice, Some(&pending), None).unwrap();
    let records = history.pending_steps.len();

    for message in [&pending, &applied] {
        assert_eq!(
            history.update_delivery(message.id, Delivery::Sent).unwrap(),
            Some(Delivery::Sent)
        );
    }
    let ids = [pending.id, applied.id];
    let (_, states) = history
        .record_steps_delivering(&alice, SessionSlot::Current, &[], None, &ids)
        .unwrap();
    assert_eq!(states, [Some(Delivery::Delivered); 2]);
    let late = history.update_deliveries(&ids, Delivery::Sent).unwrap();
    assert_eq!(late, [Some(Delivery::Delivered); 2]);
    assert_eq!(
        history.update_delivery(uuid::Uuid::new_v4(), Delivery::Sent).unwrap(),
        None
    );
    assert_eq!(
        history.pending_steps.len(),
        records + 4,
        "an unknown id writes no record"
    );

    history.flush().unwrap();
    history.crash();
    let history = History::open(dir.path(), &key).unwrap();
    for id in ids {
        assert_eq!(
            history.get_message(id).unwrap().unwrap().message.delivery,
            Delivery::Delivered
        );
    }
}

/// Records a settle applied but a crash kept from being removed (any number of them) are not applied again at the
/// next open: no text twice, no delivery state undone, no dropped outbox item back, the same session.
#[test]
fn applied_records_left_by_a_crash_change_nothing() {
    let (mut alice, _, _) = alice_and_bob_sessions();
    // The newest record only; half of them; all of them.
    for left in [1, 6, 12] {
        let (dir, key, history) = open();
        history.save_session(&alice).unwrap();
        let delivered = text("bob", "delivered");
        history.record_step(&alice, Some(&delivered), None).unwrap();
        send(&history, &mut alice, 3);
        let queued: Vec<_> = ["kept", "dropped"]
            .into_iter()
            .map(|body| queue_text(&history, &alice, body))
            .collect();
        let (dropped_key, _) = history.outbox().unwrap().pop().unwrap();
        history.remove_outbox(dropped_key).unwrap();
        history.update_delivery(queued[0].id, Delivery::Sent).unwrap();
        history.update_delivery(delivered.id, Delivery::Sent).unwrap();
        history
            .record_steps_delivering(&alice, SessionSlot::Current, &[], None, &[delivered.id])
            .unwrap();
        history.update_delivery(delivered.id, Delivery::Sent).unwrap();
        send(&history, &mut alice, 2);
        let records: Vec<_> = history.pending_steps.iter().map(Result::unwrap).collect();
        assert_eq!(records.len(), 12);

        history.settle().unwrap();
        let state = |history: &History| {
            let messages: Vec<_> = history
                .messages_after(&username("bob"), None, 100)
                .unwrap()
                .into_iter()
                .map(|e| (e.cursor.value(), e.message.body, e.message.delivery))
                .collect();
            (messages, outbox_ids(history))
        };
        let counter = |history: &History| {
            history
                .load_session(&username("bob"))
                .unwrap()
                .unwrap()
                .next_send_counter()
        };
        let settled = state(&history);
        let settled_counter = counter(&history);
        assert_eq!(settled.0.len(), 8);
        assert_eq!(settled.1.len(), 1, "only the kept item is queued");
        assert!(settled
            .0
            .iter()
            .any(|(_, body, d)| body == "delivered" && *d == Delivery::Delivered));

        for (record_key, sealed) in &records[records.len() - left..] {
            history.pending_steps.insert(record_key, sealed).unwrap();
        }
        // Not `History::flush`, which would remove them.
        history.db.flush().unwrap();
        history.crash();
        let history = History::open(dir.path(), &key).unwrap();
        assert!(history.pending_steps.is_empty());
        assert_eq!(state(&history), settled, "{left} records left");
        // After a crash the session moves past what this run reserved; it never goes back.
        assert!(counter(&history) >= settled_counter);
    }
}

/// The watermark is what keeps a leftover record from being applied again: here that would bring back an outbox item
/// the relay took after its record was applied (it would be sent again).
#[test]
fn a_leftover_record_does_not_bring_back_an_item_removed_after_it_was_applied() {
    let (alice, _, _) = alice_and_bob_sessions();
    let (dir, key, history) = open();
    history.save_session(&alice).unwrap();
    queue_text(&history, &alice, "accepted later");
    let records: Vec<_> = history.pending_steps.iter().map(Result::unwrap).collect();
    history.settle().unwrap();
    let (item_key, _) = history.outbox().unwrap().pop().unwrap();
    history.remove_outbox(item_key).unwrap();
    history.flush().unwrap();
    assert!(history.pending_steps.is_empty());

    for (record_key, sealed) in &records {
        history.pending_steps.insert(record_key, sealed).unwrap();
    }
    history.db.flush().unwrap();
    history.crash();
    let history = History::open(dir.path(), &key).unwrap();
    assert!(history.outbox().unwrap().is_empty());
    assert!(history.pending_steps.is_empty());
}

/// Flushes settle while steps go on being written (see [`super::generations`]): every text is stored once and in
/// order, and an outbox item dropped while the record queuing it was being applied never shows again.
#[test]
fn steps_written_while_a_flush_settles_are_kept_in_order_and_drops_hold() {
    const TEXTS: usize = 600;
    let (mut alice, _, _) = alice_and_bob_sessions();
    let (_dir, _key, history) = open();
    history.save_session(&alice).unwrap();
    let history = std::sync::Arc::new(history);
    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flusher = {
        let (history, writing) = (history.clone(), writing.clone());
        std::thread::spawn(move || {
            let mut flushes = 0;
            while writing.load(std::sync::atomic::Ordering::SeqCst) {
                history.flush().unwrap();
                flushes += 1;
            }
            flushes
        })
    };
    let mut kept = Vec::new();
    for i in 0..TEXTS {
        history.reserve_send(&alice).unwrap();
        let plaintext = magpie_proto::Plaintext::text(format!("text {i}"), std::time::SystemTime::now()).unwrap();
        alice.seal(&plaintext).unwrap();
        let mut message = text("bob", &plaintext.body);
        message.id = plaintext.id;
        let item = outbox_item("bob", message.id);
        history.record_step(&alice, Some(&message), Some(&item)).unwrap();
        let outbox = history.outbox().unwrap();
        let (key, _) = outbox.iter().find(|(_, o)| o.envelope.id == item.envelope.id).unwrap();
        if i % 2 == 0 {
            history.remove_outbox(*key).unwrap();
            let again = history.outbox().unwrap();
            assert!(
                !again.iter().any(|(_, o)| o.envelope.id == item.envelope.id),
                "text {i}'s item came back"
            );
        } else {
            kept.push(item.envelope.id);
        }
    }
    writing.store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(flusher.join().unwrap() > 0);

    let all = history.messages_after(&username("bob"), None, 1000).unwrap();
    let expected: Vec<String> = (0..TEXTS).map(|i| format!("text {i}")).collect();
    assert_eq!(all.iter().map(|e| e.message.body.clone()).collect::<Vec<_>>(), expected);
    assert!(all.windows(2).all(|w| w[0].cursor.value() < w[1].cursor.value()));
    assert_eq!(outbox_ids(&history), kept);
}

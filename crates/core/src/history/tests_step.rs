//! Steps ([`super::step`]): in the trees when their call returns, whole after a crash at any write, the same when
//! made again.

use super::step::Tree;
use super::tests::{alice_and_bob_sessions, open, send, text};
use super::writer::Writer;
use super::*;
use magpie_tests::username;

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

/// What a reader sees of Bob's chat: the messages (seq, body, state) and the outbox's envelope ids.
fn state(history: &History) -> (Vec<(u64, String, Delivery)>, Vec<uuid::Uuid>) {
    let messages = history
        .messages_after(&username("bob"), None, 1000)
        .unwrap()
        .into_iter()
        .map(|e| (e.cursor.value(), e.message.body, e.message.delivery))
        .collect();
    (messages, outbox_ids(history))
}

/// Ends the run as a crash would after sled wrote everything so far: steps' records are left, reservations too.
fn crash_and_reopen(dir: &tempfile::TempDir, key: &HistoryKey, history: History) -> History {
    history.db.flush().unwrap();
    history.crash();
    History::open(dir.path(), key).unwrap()
}

/// A step is in the trees when its call returns (the outbox lists the item, the text is a duplicate), and its
/// record is gone.
#[test]
fn a_step_is_in_the_trees_at_once_and_leaves_no_record() {
    let (alice, _, _) = alice_and_bob_sessions();
    let (_dir, _key, history) = open();
    history.save_session(&alice).unwrap();
    let message = text("bob", "now");
    let item = outbox_item("bob", message.id);
    let appended = history.record_step(&alice, Some(&message), Some(&item)).unwrap();
    assert!(matches!(appended, Some(Appended::New(_))));
    assert!(history.steps.is_empty());
    assert_eq!(history.outbox.len(), 1, "the item is in its tree");
    assert_eq!(outbox_ids(&history), [item.envelope.id]);
    let again = history
        .record_steps(&alice, SessionSlot::Current, std::slice::from_ref(&message), None)
        .unwrap();
    assert_eq!(again, [Appended::Duplicate]);
    assert_eq!(history.get_message(message.id).unwrap().unwrap().message.body, "now");
}

/// A crash after any write of a step (here: a text, its session and its envelope) leaves it whole at the next open:
/// the part made is made again, the rest is made, and nothing is there twice.
#[test]
fn a_step_cut_off_at_any_write_is_whole_after_the_next_open() {
    let (mut alice, _, _) = alice_and_bob_sessions();
    let mut cut = 0;
    loop {
        let (dir, key, history) = open();
        history.save_session(&alice).unwrap();
        let before = queue_text(&history, &alice, "before");
        alice
            .seal(&magpie_proto::Plaintext::text("cut".to_owned(), std::time::SystemTime::now()).unwrap())
            .unwrap();
        let message = text("bob", "cut");
        let item = outbox_item("bob", message.id);
        let row = history.prepare_row(&message).unwrap();
        let step = history.step().unwrap();
        let session_key = history.chat_id(&username("bob")).unwrap();
        step.seal_put(Tree::Sessions, &session_key, alice.export().unwrap().expose_secret())
            .unwrap();
        let outbox_key = step.next_id().unwrap().to_be_bytes();
        step.seal_put(Tree::Outbox, &outbox_key, &serde_json::to_vec(&item).unwrap())
            .unwrap();
        let mut writer = Writer::new(&history.sealer, &step);
        row.append_to(&mut writer).unwrap();
        writer.finish().unwrap();
        let writes = step.commit_cut_after(cut).unwrap();

        let history = crash_and_reopen(&dir, &key, history);
        assert!(history.steps.is_empty());
        let (messages, outbox) = state(&history);
        let bodies: Vec<_> = messages.iter().map(|(_, body, _)| body.as_str()).collect();
        assert_eq!(bodies, ["before", "cut"], "cut after {cut} of {writes} writes");
        assert_eq!(outbox.len(), 2);
        assert!(history.contains_message(before.id).unwrap());
        let stored = history.load_session(&username("bob")).unwrap().unwrap();
        assert_eq!(stored.next_send_counter(), alice.next_send_counter());
        cut += 1;
        if cut > writes {
            break;
        }
    }
    assert!(
        cut >= 4,
        "a session, an outbox item, a block, a bucket and the chat's head: {cut}"
    );
}

/// An envelope the relay took is gone for good, also when a crash leaves the record that queued it.
#[test]
fn an_outbox_item_the_relay_took_does_not_come_back_after_a_crash() {
    let (alice, _, _) = alice_and_bob_sessions();
    let (dir, key, history) = open();
    history.save_session(&alice).unwrap();
    let message = queue_text(&history, &alice, "accepted at once");
    let (key_of_item, _) = history.outbox().unwrap().pop().unwrap();
    history.remove_outbox(key_of_item).unwrap();
    assert!(history.outbox().unwrap().is_empty());
    let history = crash_and_reopen(&dir, &key, history);
    assert!(history.outbox().unwrap().is_empty());
    assert!(history.contains_message(message.id).unwrap());
}

/// Many steps come in order: every text once, in cursor order.
#[test]
fn many_steps_are_stored_in_order_and_each_text_once() {
    let (mut alice, _, _) = alice_and_bob_sessions();
    let (_dir, _key, history) = open();
    history.save_session(&alice).unwrap();
    send(&history, &mut alice, 600);
    let all = history.messages_after(&username("bob"), None, 1000).unwrap();
    let expected: Vec<String> = (0..600).map(|i| format!("text {i}")).collect();
    assert_eq!(all.iter().map(|e| e.message.body.clone()).collect::<Vec<_>>(), expected);
    assert!(all.windows(2).all(|w| w[0].cursor.value() < w[1].cursor.value()));
}

/// A record that does not decode (a cut or damaged file) is a typed error on open, not a panic.
#[test]
fn a_damaged_step_record_is_a_typed_error() {
    let (alice, _, _) = alice_and_bob_sessions();
    let (dir, key, history) = open();
    let step = history.step().unwrap();
    let session_key = history.chat_id(&username("bob")).unwrap();
    step.seal_put(Tree::Sessions, &session_key, alice.export().unwrap().expose_secret())
        .unwrap();
    step.commit_cut_after(0).unwrap();
    let (record_key, record) = history.steps.iter().next_back().unwrap().unwrap();
    history.steps.insert(record_key, &record[..record.len() - 1]).unwrap();
    history.db.flush().unwrap();
    history.crash();
    let error = History::open(dir.path(), &key).unwrap_err();
    assert!(matches!(error, Error::HistoryCorrupt { tree: STEPS }), "{error:?}");
}

/// Delivery states move on: "sent" on the 202, "delivered" by a receipt, never undone by a late 202; and they
/// survive a crash.
#[test]
fn delivery_states_move_on_and_delivered_is_never_undone() {
    let (alice, _, _) = alice_and_bob_sessions();
    let (dir, key, history) = open();
    history.save_session(&alice).unwrap();
    let (first, second) = (text("bob", "first"), text("bob", "second"));
    history.record_step(&alice, Some(&first), None).unwrap();
    history.flush().unwrap();
    history.record_step(&alice, Some(&second), None).unwrap();

    for message in [&first, &second] {
        assert_eq!(
            history.update_delivery(message.id, Delivery::Sent).unwrap(),
            Some(Delivery::Sent)
        );
    }
    let ids = [first.id, second.id];
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

    let history = crash_and_reopen(&dir, &key, history);
    for id in ids {
        assert_eq!(
            history.get_message(id).unwrap().unwrap().message.delivery,
            Delivery::Delivered
        );
    }
}

/// A step's record made again after the whole step was (a crash just before its removal), any number of times,
/// changes nothing: no text twice, no delivery state undone, the same session and outbox.
#[test]
fn a_record_made_again_after_its_step_changes_nothing() {
    let (mut alice, _, _) = alice_and_bob_sessions();
    let (dir, key, history) = open();
    history.save_session(&alice).unwrap();
    send(&history, &mut alice, 3);
    let delivered = queue_text(&history, &alice, "delivered");
    history
        .record_steps_delivering(&alice, SessionSlot::Current, &[], None, &[delivered.id])
        .unwrap();
    // The last step again, by hand, left whole with its record: a text, its envelope, the session.
    let message = text("bob", "last");
    let row = history.prepare_row(&message).unwrap();
    let step = history.step().unwrap();
    let session_key = history.chat_id(&username("bob")).unwrap();
    step.seal_put(Tree::Sessions, &session_key, alice.export().unwrap().expose_secret())
        .unwrap();
    let mut writer = Writer::new(&history.sealer, &step);
    row.append_to(&mut writer).unwrap();
    writer.finish().unwrap();
    let writes = step.commit_cut_after(usize::MAX).unwrap();
    assert!(writes >= 3);
    let before = state(&history);
    assert_eq!(before.0.len(), 5);
    let record = history.steps.iter().next_back().unwrap().unwrap();

    let mut history = crash_and_reopen(&dir, &key, history);
    for again in 0..2 {
        assert!(history.steps.is_empty());
        assert_eq!(state(&history), before, "made again {again} times");
        history.steps.insert(&record.0, &record.1).unwrap();
        history = crash_and_reopen(&dir, &key, history);
    }
    let delivery = history.get_message(delivered.id).unwrap().unwrap().message.delivery;
    assert_eq!(delivery, Delivery::Delivered);
}

/// Flushes run while steps go on being written: every text is stored once and in order, and an outbox item the
/// relay took never shows again.
#[test]
fn steps_written_while_flushes_run_are_kept_in_order_and_taken_items_stay_gone() {
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

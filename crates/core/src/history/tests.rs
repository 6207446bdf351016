use magpie_proto::{Fingerprint, MessageKind};
use uuid::Uuid;

use super::*;
use magpie_tests::username;

pub(super) fn open() -> (tempfile::TempDir, HistoryKey, History) {
    let dir = tempfile::tempdir().unwrap();
    let key = HistoryKey::generate().unwrap();
    let history = History::open(dir.path(), &key).unwrap();
    (dir, key, history)
}

pub(super) fn text(peer: &str, body: &str) -> Message {
    Message {
        id: Uuid::new_v4(),
        peer: username(peer),
        direction: Direction::Outgoing,
        kind: MessageKind::Text,
        body: body.to_owned(),
        sent_at: 1_700_000_000,
        received_at: None,
        delivery: Delivery::Sending,
    }
}

fn bodies(entries: &[Entry]) -> Vec<String> {
    entries.iter().map(|e| e.message.body.clone()).collect()
}

#[test]
fn last_messages_are_the_newest_of_that_chat_oldest_first() {
    let (_dir, _key, history) = open();
    for i in 0..120 {
        history.append_message(&text("bob", &format!("b{i}"))).unwrap();
        history.append_message(&text("carol", &format!("c{i}"))).unwrap();
    }
    let last = history.last_messages(&username("bob"), 50).unwrap();
    let expected: Vec<String> = (70..120).map(|i| format!("b{i}")).collect();
    assert_eq!(bodies(&last), expected);
    assert!(history.last_messages(&username("dave"), 50).unwrap().is_empty());
}

#[test]
fn paging_backwards_visits_every_message_once_in_order() {
    let (_dir, _key, history) = open();
    let batch: Vec<Message> = (0..237).map(|i| text("bob", &format!("m{i}"))).collect();
    history.append_messages(&batch).unwrap();
    history.append_message(&text("alice", "other chat")).unwrap();

    let mut page = history.last_messages(&username("bob"), 50).unwrap();
    let mut seen = Vec::new();
    while let Some(first) = page.first() {
        let cursor = first.cursor;
        seen.splice(0..0, bodies(&page));
        page = history.messages_before(&username("bob"), cursor, 50).unwrap();
    }
    let expected: Vec<String> = (0..237).map(|i| format!("m{i}")).collect();
    assert_eq!(seen, expected);

    let forward = history.messages_after(&username("bob"), None, 1000).unwrap();
    assert_eq!(bodies(&forward), expected);
    let rest = history
        .messages_after(&username("bob"), Some(forward[99].cursor), 1000)
        .unwrap();
    assert_eq!(bodies(&rest), expected[100..].to_vec());
}

#[test]
fn duplicates_are_dropped_by_message_id_also_within_a_batch() {
    let (_dir, _key, history) = open();
    let message = text("bob", "once");
    assert!(matches!(history.append_message(&message).unwrap(), Appended::New(_)));
    assert_eq!(history.append_message(&message).unwrap(), Appended::Duplicate);
    let other = text("bob", "twice");
    let results = history
        .append_messages(&[other.clone(), other.clone(), message.clone()])
        .unwrap();
    assert!(matches!(results[0], Appended::New(_)));
    assert_eq!(results[1..], [Appended::Duplicate, Appended::Duplicate]);
    assert!(history.contains_message(message.id).unwrap());
    assert!(!history.contains_message(Uuid::new_v4()).unwrap());
    assert_eq!(
        bodies(&history.last_messages(&username("bob"), 10).unwrap()),
        ["once", "twice"]
    );
}

#[test]
fn delivery_moves_forward_and_delivered_is_never_undone() {
    let (_dir, _key, history) = open();
    let message = text("bob", "hi");
    history.append_message(&message).unwrap();
    assert_eq!(
        history.update_delivery(message.id, Delivery::Sent).unwrap(),
        Some(Delivery::Sent)
    );
    assert_eq!(
        history.update_delivery(message.id, Delivery::Delivered).unwrap(),
        Some(Delivery::Delivered)
    );
    // The relay's 202 arriving after the receipt must not move it back.
    assert_eq!(
        history.update_delivery(message.id, Delivery::Sent).unwrap(),
        Some(Delivery::Delivered)
    );
    let stored = history.get_message(message.id).unwrap().unwrap();
    assert_eq!(stored.message.delivery, Delivery::Delivered);
    assert_eq!(stored.message.body, "hi");
    assert_eq!(history.update_delivery(Uuid::new_v4(), Delivery::Sent).unwrap(), None);
}

/// The in-memory `key_changed` follows every write and removal, and what a reopened history reads.
#[test]
fn key_changed_follows_the_stored_contact() {
    let (dir, key, history) = open();
    let bob = username("bob");
    assert!(!history.key_changed(&bob).unwrap(), "a stranger");
    let mut contact = Contact::new(bob.clone(), Fingerprint::from_bytes([7; 32]));
    history.put_contact(&contact).unwrap();
    assert!(!history.key_changed(&bob).unwrap());
    contact.key_changed = true;
    history.put_contact(&contact).unwrap();
    assert!(history.key_changed(&bob).unwrap());
    drop(history);
    let history = History::open(dir.path(), &key).unwrap();
    assert!(history.key_changed(&bob).unwrap(), "read from disk after a reopen");
    assert!(history.remove_contact(&bob).unwrap());
    assert!(!history.key_changed(&bob).unwrap());
}

#[test]
fn contacts_and_handshakes_round_trip_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let key = HistoryKey::generate().unwrap();
    let mut bob = Contact::new(username("bob"), Fingerprint::from_bytes([7; 32]));
    {
        let history = History::open(dir.path(), &key).unwrap();
        history
            .put_contact(&Contact::new(username("carol"), Fingerprint::from_bytes([9; 32])))
            .unwrap();
        history.put_contact(&bob).unwrap();
        bob.verified = true;
        bob.last_activity = Some(42);
        history.put_contact(&bob).unwrap();
        history.save_handshake("req-1", b"state one").unwrap();
        history.save_handshake("req-2", b"state two").unwrap();
        assert!(history.remove_handshake("req-2").unwrap());
        assert!(!history.remove_handshake("req-2").unwrap());
        history.append_message(&text("bob", "before restart")).unwrap();
        history.flush().unwrap();
    }
    let history = History::open(dir.path(), &key).unwrap();
    assert_eq!(history.contact(&username("bob")).unwrap(), Some(bob));
    let names: Vec<String> = history
        .contacts()
        .unwrap()
        .iter()
        .map(|c| c.username.to_string())
        .collect();
    assert_eq!(names, ["bob", "carol"]);
    assert!(history.remove_contact(&username("carol")).unwrap());
    assert_eq!(history.contact(&username("carol")).unwrap(), None);
    assert_eq!(history.load_handshake("req-1").unwrap().unwrap().expose(), b"state one");
    assert!(history.load_handshake("req-2").unwrap().is_none());
    let stored = history.handshakes().unwrap();
    let ids: Vec<&str> = stored.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["req-1"]);
    assert_eq!(stored[0].1.expose(), b"state one");
    assert!(history.load_session(&username("bob")).unwrap().is_none());

    // Sequence numbers keep growing across a restart: new messages sort after old ones.
    history.append_message(&text("bob", "after restart")).unwrap();
    let last = history.last_messages(&username("bob"), 10).unwrap();
    assert_eq!(bodies(&last), ["before restart", "after restart"]);
}

#[test]
fn a_wrong_key_is_refused_on_open() {
    let (dir, _key, history) = open();
    history.append_message(&text("bob", "secret")).unwrap();
    drop(history);
    let error = History::open(dir.path(), &HistoryKey::generate().unwrap()).unwrap_err();
    assert!(matches!(error, Error::HistoryWrongKey), "{error:?}");
}

#[test]
fn a_history_in_a_newer_format_is_refused_and_left_as_it_is() {
    let (dir, key, history) = open();
    let newer = HISTORY_FORMAT + 1;
    let sealed = history.sealer.seal(META, FORMAT, &newer.to_be_bytes()).unwrap();
    history.meta.insert(FORMAT, sealed.clone()).unwrap();
    drop(history);
    let error = History::open(dir.path(), &key).unwrap_err();
    assert!(
        matches!(error, Error::HistoryFormat { found } if found == newer),
        "{error:?}"
    );
    let db = sled::open(dir.path()).unwrap();
    let kept = db.open_tree(META).unwrap().get(FORMAT).unwrap();
    assert_eq!(
        kept.as_deref(),
        Some(sealed.as_slice()),
        "the refusal wrote nothing over it"
    );
}

#[test]
fn tampered_or_swapped_values_are_a_typed_error_not_a_panic() {
    let (_dir, _key, history) = open();
    let first = text("bob", "first");
    let second = text("bob", "second");
    let other = text("carol", "other");
    history
        .append_messages(&[first.clone(), second.clone(), other.clone()])
        .unwrap();
    let bob_block = block_of(&history, "bob");
    let carol_block = block_of(&history, "carol");
    let bob_value = history.blocks.get(&bob_block).unwrap().unwrap();
    let carol_value = history.blocks.get(&carol_block).unwrap().unwrap();

    // Swap two blocks: each is intact but sealed for the other slot.
    history.blocks.insert(&bob_block, &carol_value).unwrap();
    history.blocks.insert(&carol_block, &bob_value).unwrap();
    let error = history.last_messages(&username("bob"), 10).unwrap_err();
    assert!(
        matches!(error, Error::HistoryCorrupt { tree: "message_blocks" }),
        "{error:?}"
    );

    // Flip one bit of a block: its messages are lost to reads, other chats are not.
    let mut flipped = bob_value.to_vec();
    flipped[20] ^= 0x40;
    history.blocks.insert(&bob_block, flipped).unwrap();
    history.blocks.insert(&carol_block, &carol_value).unwrap();
    assert!(matches!(
        history.get_message(first.id),
        Err(Error::HistoryCorrupt { .. })
    ));
    assert!(matches!(
        history.update_delivery(second.id, Delivery::Sent),
        Err(Error::HistoryCorrupt { .. })
    ));
    assert!(matches!(
        history.append_message(&text("bob", "more")),
        Err(Error::HistoryCorrupt { .. })
    ));
    assert_eq!(history.get_message(other.id).unwrap().unwrap().message.body, "other");

    // A bucket of the id index that does not open.
    let bucket = history.sealer.index(b"message", other.id.as_bytes()).unwrap();
    history
        .message_index
        .insert(&bucket[..2], &b"junk-junk-junk-junk-junk-junk-junk"[..])
        .unwrap();
    let error = history.contains_message(other.id).unwrap_err();
    assert!(
        matches!(error, Error::HistoryCorrupt { tree: "message_index" }),
        "{error:?}"
    );

    // A contact's value moved under another contact's key.
    history
        .put_contact(&Contact::new(username("bob"), Fingerprint::from_bytes([1; 32])))
        .unwrap();
    history
        .put_contact(&Contact::new(username("eve"), Fingerprint::from_bytes([2; 32])))
        .unwrap();
    let bob_key = history.chat_id(&username("bob")).unwrap();
    let eve_key = history.chat_id(&username("eve")).unwrap();
    let eve_value = history.contacts.get(eve_key).unwrap().unwrap();
    history.contacts.insert(bob_key, eve_value).unwrap();
    assert!(matches!(
        history.contact(&username("bob")),
        Err(Error::HistoryCorrupt { tree: "contacts" })
    ));

    // Garbage and truncation.
    history
        .handshakes
        .insert(history.sealer.index(b"handshake", b"r").unwrap(), &b"junk"[..])
        .unwrap();
    assert!(matches!(history.load_handshake("r"), Err(Error::HistoryCorrupt { .. })));
    assert!(matches!(history.handshakes(), Err(Error::HistoryCorrupt { .. })));
}

#[test]
fn keys_hold_no_peer_names_or_message_ids() {
    let (_dir, _key, history) = open();
    let message = text("bobthebuilder", "x");
    history.append_message(&message).unwrap();
    history
        .put_contact(&Contact::new(
            username("bobthebuilder"),
            Fingerprint::from_bytes([1; 32]),
        ))
        .unwrap();
    history.save_handshake("request-id-123", b"s").unwrap();
    for tree in [
        &history.blocks,
        &history.message_index,
        &history.contacts,
        &history.handshakes,
    ] {
        for row in tree.iter() {
            let (key, _) = row.unwrap();
            for needle in [&b"bobthebuilder"[..], message.id.as_bytes(), b"request-id-123"] {
                assert!(
                    !key.windows(needle.len()).any(|w| w == needle),
                    "a key holds {needle:?}"
                );
            }
        }
    }
}

#[test]
fn message_debug_shows_no_body() {
    let printed = format!("{:?}", text("bob", "attack at dawn"));
    assert!(
        !printed.contains("attack at dawn") && printed.contains("body_len"),
        "{printed}"
    );
}

#[test]
fn a_history_open_elsewhere_is_a_typed_error() {
    let (dir, key, _history) = open();
    assert!(matches!(History::open(dir.path(), &key), Err(Error::HistoryInUse)));
}

/// A fresh session between Alice and Bob from a real handshake, as (Alice's, Bob's), and the time it was made at.
pub(super) fn alice_and_bob_sessions() -> (magpie_proto::Session, magpie_proto::Session, std::time::SystemTime) {
    let pair = magpie_tests::pair();
    (pair.alice_session, pair.bob_session, pair.now)
}

/// A real session saved, reloaded, and still in step with its peer.
#[test]
fn a_session_survives_save_and_load() {
    use magpie_proto::Plaintext;

    let (mut alice_session, bob_session, now) = alice_and_bob_sessions();
    let (_dir, _key, history) = open();
    history.save_session(&bob_session).unwrap();
    let sealed = alice_session
        .seal(&Plaintext::text("after reload", now).unwrap())
        .unwrap();
    let mut reloaded = history.load_session(&username("alice")).unwrap().unwrap();
    assert_eq!(reloaded.open(&sealed).unwrap().body, "after reload");
    assert!(history.remove_session(&username("alice")).unwrap());
    assert!(history.load_session(&username("alice")).unwrap().is_none());
}

/// A late message opened with a session a re-key replaced advances that one, where it is kept: the current
/// session stays as it was. (It used to be written over the current one.)
#[test]
fn a_step_of_a_replaced_session_leaves_the_current_one_alone() {
    use magpie_proto::Plaintext;

    let (mut old_alice, old_bob, now) = alice_and_bob_sessions();
    let (_, current_bob, _) = alice_and_bob_sessions();
    let (_dir, _key, history) = open();
    history.save_session(&current_bob).unwrap();
    history.save_previous_session(&old_bob).unwrap();

    let late = old_alice
        .seal(&Plaintext::text("sealed before the re-key", now).unwrap())
        .unwrap();
    let mut previous = history
        .load_previous_session(&username("alice"), old_bob.session_id())
        .unwrap()
        .unwrap();
    let opened = previous.open(&late).unwrap();
    let mut message = text("alice", &opened.body);
    message.id = opened.id;
    let appended = history
        .record_steps(&previous, SessionSlot::Previous, std::slice::from_ref(&message), None)
        .unwrap();
    assert!(matches!(appended.as_slice(), [Appended::New(_)]));

    let alice = username("alice");
    let current = history.load_session(&alice).unwrap().unwrap();
    assert_eq!(current.session_id(), current_bob.session_id());
    // The kept old session moved on: the same message again is a replay.
    let mut kept = history
        .load_previous_session(&alice, old_bob.session_id())
        .unwrap()
        .unwrap();
    assert!(matches!(kept.open(&late), Err(magpie_proto::Error::Replay)));
    assert_eq!(
        history.get_message(opened.id).unwrap().unwrap().message.body,
        "sealed before the re-key"
    );
}

/// Alice seals `count` texts as the engine does (reserve, seal, record), returning them.
pub(super) fn send(
    history: &History,
    session: &mut magpie_proto::Session,
    count: usize,
) -> Vec<magpie_proto::SealedMessage> {
    (0..count)
        .map(|i| {
            history.reserve_send(session).unwrap();
            let plaintext = magpie_proto::Plaintext::text(format!("text {i}"), std::time::SystemTime::now()).unwrap();
            let sealed = session.seal(&plaintext).unwrap();
            let mut message = text("bob", &plaintext.body);
            message.id = plaintext.id;
            history.record_step(session, Some(&message), None).unwrap();
            sealed
        })
        .collect()
}

/// A crash that loses the last steps (the disk holds a session from before them) costs counters, never reuses
/// one: the reloaded session skips past everything the reservation covered, and Bob opens all of it.
#[test]
fn after_a_crash_that_lost_steps_no_send_counter_is_used_twice() {
    let (mut alice, mut bob, _) = alice_and_bob_sessions();
    let (dir, key, history) = open();
    history.save_session(&alice).unwrap();
    let stored_before = history.load_session(&username("bob")).unwrap().unwrap();
    let before_crash = send(&history, &mut alice, 3);
    assert_eq!(
        history.reservation(alice.session_id()),
        Some((RESERVE_AHEAD, RESERVE_AHEAD))
    );
    // The three steps are lost: what is on disk is the session from before them.
    history.save_session(&stored_before).unwrap();
    history.flush().unwrap();
    history.crash();

    let history = History::open(dir.path(), &key).unwrap();
    let mut restarted = history.load_session(&username("bob")).unwrap().unwrap();
    assert_eq!(restarted.next_send_counter(), RESERVE_AHEAD);
    let after_crash = send(&history, &mut restarted, 2);
    for sealed in after_crash.iter().chain(&before_crash) {
        bob.open(sealed).unwrap();
    }
    assert_eq!(bob.skipped_keys(), usize::try_from(RESERVE_AHEAD).unwrap() - 3);
}

/// Runs that end between reserving and sealing, again and again, keep records within a reservation of the stored
/// session: it is stored where a load moved it, so loading never fails however many such runs came before.
#[test]
fn runs_that_crash_before_sealing_keep_records_within_reach_of_the_stored_session() {
    let (alice, _, _) = alice_and_bob_sessions();
    let (dir, key, history) = open();
    history.save_session(&alice).unwrap();
    history.reserve_send(&alice).unwrap();
    history.crash();
    let rounds = magpie_proto::MAX_SKIP / RESERVE_AHEAD + 2;
    for round in 1..=rounds {
        let history = History::open(dir.path(), &key).unwrap();
        let loaded = history.load_session(&username("bob")).unwrap().unwrap();
        assert_eq!(loaded.next_send_counter(), round * RESERVE_AHEAD);
        history.reserve_send(&loaded).unwrap();
        history.crash();
    }
}

/// A receipt's deliveries are stored in the step that opened it, beside the text that step stored.
#[test]
fn a_step_stores_a_text_and_the_deliveries_its_receipt_answered_together() {
    let (_, bob_session, _) = alice_and_bob_sessions();
    let (_dir, _key, history) = open();
    let ours = text("alice", "sent earlier");
    history.append_message(&ours).unwrap();
    let mut theirs = text("alice", "arrived now");
    theirs.direction = Direction::Incoming;
    let (appended, states) = history
        .record_steps_delivering(
            &bob_session,
            SessionSlot::Current,
            std::slice::from_ref(&theirs),
            None,
            &[ours.id, Uuid::new_v4()],
        )
        .unwrap();
    assert!(matches!(appended.as_slice(), [Appended::New(_)]));
    assert_eq!(states, [Some(Delivery::Delivered), None]);
    let stored = history.get_message(ours.id).unwrap().unwrap().message;
    assert_eq!(
        (stored.delivery, stored.body.as_str()),
        (Delivery::Delivered, "sent earlier")
    );
    assert_eq!(
        history.get_message(theirs.id).unwrap().unwrap().message.body,
        "arrived now"
    );
    // A receipt alone (no text) still lands.
    let later = text("alice", "sent later");
    history.append_message(&later).unwrap();
    let (appended, states) = history
        .record_steps_delivering(&bob_session, SessionSlot::Current, &[], None, &[later.id])
        .unwrap();
    assert!(appended.is_empty());
    assert_eq!(states, [Some(Delivery::Delivered)]);
}

/// A clean close drops the records: the next run goes on from the next counter, skipping none.
#[test]
fn after_a_clean_close_sending_goes_on_from_the_next_counter() {
    let (mut alice, _, _) = alice_and_bob_sessions();
    let (dir, key, history) = open();
    history.save_session(&alice).unwrap();
    send(&history, &mut alice, 3);
    drop(history);
    let history = History::open(dir.path(), &key).unwrap();
    let reloaded = history.load_session(&username("bob")).unwrap().unwrap();
    assert_eq!(reloaded.next_send_counter(), 3);
}

/// Records move ahead with the steps, half a reservation before they are needed, and become usable only once a
/// flush that started after them completes; reloading within the run skips nothing.
#[test]
fn records_are_written_ahead_with_the_steps_and_count_once_flushed() {
    let (mut alice, _, _) = alice_and_bob_sessions();
    let (_dir, _key, history) = open();
    history.save_session(&alice).unwrap();
    let half = usize::try_from(RESERVE_AHEAD / 2).unwrap();
    send(&history, &mut alice, half - 1);
    assert_eq!(
        history.reservation(alice.session_id()),
        Some((RESERVE_AHEAD, RESERVE_AHEAD))
    );
    send(&history, &mut alice, 1);
    let moved = RESERVE_AHEAD / 2 + RESERVE_AHEAD;
    assert_eq!(history.reservation(alice.session_id()), Some((moved, RESERVE_AHEAD)));
    history.flush().unwrap();
    assert_eq!(history.reservation(alice.session_id()), Some((moved, moved)));
    let reloaded = history.load_session(&username("bob")).unwrap().unwrap();
    assert_eq!(reloaded.next_send_counter(), alice.next_send_counter());
}

#[test]
fn the_relay_token_is_kept_sealed_and_survives_reopen() {
    let (dir, key, history) = open();
    assert!(history.relay_login().unwrap().is_none());
    let token = "bearer-token-that-must-not-show";
    history.set_relay_login(token, 1_800_000_000).unwrap();
    let (kept, expires_at) = history.relay_login().unwrap().unwrap();
    assert_eq!((kept.as_str(), expires_at), (token, 1_800_000_000));
    drop(history);

    for file in magpie_tests::files_under(dir.path()) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "{} holds the token in clear",
            file.display()
        );
    }
    let history = History::open(dir.path(), &key).unwrap();
    assert_eq!(history.relay_login().unwrap().unwrap().0.as_str(), token);
}

#[test]
fn clearing_a_chat_removes_its_messages_and_their_index_and_nothing_else() {
    let (_dir, _key, history) = open();
    let to_bob: Vec<Message> = (0..100).map(|i| text("bob", &format!("b{i}"))).collect();
    history.append_messages(&to_bob).unwrap();
    history.append_message(&text("carol", "stays")).unwrap();
    let bob_blocks = history.blocks.len() - 2 - 1 - 1;
    assert!(bob_blocks >= 4, "{bob_blocks} blocks");

    // Slices of 3 blocks: the last one is partial, and the loop must end on an empty one.
    assert_eq!(history.clear_chat_in_slices(&username("bob"), 3).unwrap(), 100);
    assert!(history.last_messages(&username("bob"), 100).unwrap().is_empty());
    assert_eq!(
        bodies(&history.last_messages(&username("carol"), 10).unwrap()),
        ["stays"]
    );
    assert_eq!(history.message_index.len(), 1, "only carol's message is indexed");
    assert_eq!(history.blocks.len(), 2, "carol's head and block are all that is left");
    // A late receipt for a deleted message finds nothing, without an error.
    assert!(!history.contains_message(to_bob[0].id).unwrap());
    assert_eq!(
        history.update_delivery(to_bob[0].id, Delivery::Delivered).unwrap(),
        None
    );

    // The chat goes on.
    assert!(matches!(
        history.append_message(&text("bob", "again")).unwrap(),
        Appended::New(_)
    ));
    assert_eq!(bodies(&history.last_messages(&username("bob"), 10).unwrap()), ["again"]);
    assert_eq!(history.clear_chat(&username("nobody")).unwrap(), 0);
}

#[test]
fn the_open_after_a_deletion_rewrites_the_history_and_its_order_goes_on() {
    let (dir, key, history) = open();
    for i in 0..50 {
        history.append_message(&text("bob", &format!("b{i}"))).unwrap();
        history.append_message(&text("carol", &format!("c{i}"))).unwrap();
    }
    history
        .put_contact(&Contact::new(username("carol"), Fingerprint::from_bytes([3; 32])))
        .unwrap();
    assert_eq!(history.clear_chat(&username("bob")).unwrap(), 50);
    drop(history);
    // Opened three times: the first rewrites, the later ones find a consistent id counter.
    for round in 0..3 {
        let history = History::open(dir.path(), &key).unwrap();
        assert!(!history.meta.contains_key(rewrite::REWRITE_DUE).unwrap());
        assert!(history.last_messages(&username("bob"), 10).unwrap().len() <= round);
        assert!(
            history.contact(&username("carol")).unwrap().is_some(),
            "the rest is kept"
        );
        history
            .append_message(&text("carol", &format!("after {round}")))
            .unwrap();
        history
            .append_message(&text("bob", &format!("bob after {round}")))
            .unwrap();
        let carol = bodies(&history.last_messages(&username("carol"), 100).unwrap());
        assert_eq!(carol.len(), 51 + round, "{carol:?}");
        assert_eq!(
            carol.last().unwrap(),
            &format!("after {round}"),
            "new messages come after the old"
        );
        history.flush().unwrap();
    }
    assert!(!dir.path().with_extension("old").exists());
    assert!(!dir.path().with_extension("rewrite").exists());
}

#[test]
fn a_rewrite_interrupted_by_a_crash_is_finished_or_undone_at_the_next_open() {
    let (dir, key, history) = open();
    history.append_message(&text("bob", "kept")).unwrap();
    history.flush().unwrap();
    drop(history);
    // Crashed between the renames: only the old database, under its temporary name.
    std::fs::rename(dir.path(), dir.path().with_extension("old")).unwrap();
    std::fs::create_dir_all(dir.path().with_extension("rewrite")).unwrap();
    let history = History::open(dir.path(), &key).unwrap();
    assert_eq!(bodies(&history.last_messages(&username("bob"), 10).unwrap()), ["kept"]);
    assert!(!dir.path().with_extension("rewrite").exists());
    drop(history);
    // Crashed after the new one was in place: the old files are removed.
    std::fs::create_dir_all(dir.path().with_extension("old")).unwrap();
    let history = History::open(dir.path(), &key).unwrap();
    assert_eq!(bodies(&history.last_messages(&username("bob"), 10).unwrap()), ["kept"]);
    assert!(!dir.path().with_extension("old").exists());
}

#[test]
fn rekey_marks_fall_between_messages_and_only_the_newest_are_kept() {
    let (_dir, _key, history) = open();
    let before = history.append_message(&text("bob", "before")).unwrap();
    let mark = history.mark_position().unwrap();
    let after = history.append_message(&text("bob", "after")).unwrap();
    let (Appended::New(before), Appended::New(after)) = (before, after) else {
        panic!("not stored")
    };
    assert!(before.value() < mark && mark < after.value());

    let mut contact = Contact::new(username("bob"), Fingerprint::from_bytes([1; 32]));
    for position in 0..(REKEY_MARKS as u64 + 10) {
        contact.mark_rekey(position);
    }
    assert_eq!(contact.rekeys.len(), REKEY_MARKS);
    assert_eq!(contact.rekeys.first(), Some(&10));
    history.put_contact(&contact).unwrap();
    let stored = history.contact(&contact.username).unwrap().unwrap();
    assert_eq!(stored.rekeys, contact.rekeys);
}

/// The key of the one block of `peer`'s chat.
fn block_of(history: &History, peer: &str) -> sled::IVec {
    let chat = history.chat_id(&username(peer)).unwrap();
    let keys: Vec<_> = history
        .blocks
        .scan_prefix(chat)
        .keys()
        .map(Result::unwrap)
        .filter(|k| k.len() == 40)
        .collect();
    assert_eq!(keys.len(), 1);
    keys[0].clone()
}

#[test]
fn messages_pack_into_few_blocks_and_a_long_one_gets_its_own() {
    let (_dir, _key, history) = open();
    let batch: Vec<Message> = (0..1_000).map(|i| text("bob", &format!("message {i}"))).collect();
    history.append_messages(&batch).unwrap();
    history.append_message(&text("bob", &"x".repeat(20_000))).unwrap();
    history.append_message(&text("bob", "short after long")).unwrap();
    // 1,000 messages of ~210 bytes with their headers: about 19 per 4 KiB block, never more than 32; then the long
    // one's block, the block after it, and the head.
    let values = history.blocks.len();
    assert!(
        (1_000 / 32 + 3..=1_000 / 16 + 3).contains(&values),
        "{values} values for 1,002 messages"
    );
    let last = history.last_messages(&username("bob"), 3).unwrap();
    assert_eq!(last[1].message.body.len(), 20_000);
    assert_eq!(bodies(&last)[2], "short after long");
    assert_eq!(bodies(&last)[0], "message 999");
}

#[test]
fn removing_a_chat_s_newest_messages_lets_new_ones_start_a_block() {
    let (_dir, _key, history) = open();
    let first = text("bob", "first");
    let second = text("bob", "second");
    history.append_messages(&[first.clone(), second.clone()]).unwrap();
    assert!(history.remove_message(second.id).unwrap());
    assert!(history.remove_message(first.id).unwrap());
    assert!(!history.remove_message(first.id).unwrap());
    assert_eq!(history.blocks.len(), 0, "no block and no head left");
    assert_eq!(history.message_index.len(), 0);
    history.append_message(&text("bob", "third")).unwrap();
    assert_eq!(bodies(&history.last_messages(&username("bob"), 10).unwrap()), ["third"]);
    // A removed message may be stored again (it was sent again).
    assert!(matches!(history.append_message(&first).unwrap(), Appended::New(_)));
}

#[test]
fn concurrent_writers_keep_each_chat_in_cursor_order() {
    let (_dir, _key, history) = open();
    let history = std::sync::Arc::new(history);
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let history = history.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    history.append_message(&text("bob", &format!("{t}-{i}"))).unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let all = history.messages_after(&username("bob"), None, 10_000).unwrap();
    assert_eq!(all.len(), 800);
    assert!(
        all.windows(2).all(|w| w[0].cursor < w[1].cursor),
        "cursors out of order"
    );
    for t in 0..4 {
        let mine: Vec<String> = bodies(&all)
            .into_iter()
            .filter(|b| b.starts_with(&format!("{t}-")))
            .collect();
        let expected: Vec<String> = (0..200).map(|i| format!("{t}-{i}")).collect();
        assert_eq!(mine, expected, "writer {t}'s messages out of order");
    }
    let middle = all[333].cursor;
    let after = history.messages_after(&username("bob"), Some(middle), 5).unwrap();
    assert_eq!(after[0].cursor, all[334].cursor);
    let before = history.messages_before(&username("bob"), middle, 5).unwrap();
    assert_eq!(before.last().unwrap().cursor, all[332].cursor);
}

/// The engine reads the outbox on from the last key it sent; an item committed behind that key would wait for the
/// next full pass (a message stuck at "sending"). Writers racing a reader must never leave one behind.
#[test]
fn an_outbox_read_on_from_its_last_key_misses_nothing_that_writers_race_in() {
    const WRITERS: usize = 4;
    const EACH: usize = 400;
    let (_dir, _key, history) = open();
    let history = std::sync::Arc::new(history);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let (history, done) = (history.clone(), done.clone());
            std::thread::spawn(move || {
                for _ in 0..EACH {
                    let envelope = magpie_proto::Envelope {
                        id: Uuid::new_v4(),
                        from: "alice".into(),
                        to: "bob".into(),
                        kind: magpie_proto::EnvelopeKind::Message,
                        body: b"x".to_vec(),
                    };
                    let item = OutboxItem {
                        envelope,
                        message_id: None,
                    };
                    history.queue_envelope(&item).unwrap();
                }
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            })
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    let mut last = None;
    loop {
        let finished = done.load(std::sync::atomic::Ordering::SeqCst) == WRITERS;
        for (key, item) in history.outbox_after(last).unwrap() {
            seen.insert(item.envelope.id);
            last = Some(key);
        }
        if finished {
            break;
        }
    }
    for writer in writers {
        writer.join().unwrap();
    }
    let all = history.outbox().unwrap();
    let left_behind = all.iter().filter(|(_, item)| !seen.contains(&item.envelope.id)).count();
    assert_eq!((all.len(), left_behind), (WRITERS * EACH, 0));
}

#[test]
fn ended_handshakes_are_forgotten_by_the_first_sweep_and_then_hourly() {
    let (_dir, _key, history) = open();
    let start = 1_000_000;
    history.finish_handshake("old", start, 0).unwrap();
    // Within the hour nothing is read back, even once "old" is past keeping.
    history.finish_handshake("newer", start + 60, start + 1).unwrap();
    assert!(history.handshake_finished("old").unwrap());
    history
        .finish_handshake("latest", start + FINISHED_SWEEP_EVERY_SECS, start + 1)
        .unwrap();
    assert!(!history.handshake_finished("old").unwrap());
    assert!(history.handshake_finished("newer").unwrap());
    assert!(history.handshake_finished("latest").unwrap());
}

#[test]
fn the_first_ended_handshake_of_a_run_sweeps_what_earlier_runs_left() {
    let (dir, key, history) = open();
    history.finish_handshake("left", 100, 0).unwrap();
    drop(history);
    let history = History::open(dir.path(), &key).unwrap();
    history.finish_handshake("next", 200, 150).unwrap();
    assert!(!history.handshake_finished("left").unwrap());
    assert!(history.handshake_finished("next").unwrap());
}

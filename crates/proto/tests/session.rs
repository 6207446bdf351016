//! Full round trips and session behaviour: ordering, the window, replay, re-key, export/import.
// Helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use magpie_proto::*;

/// A deterministic permutation of 0..n (xorshift-driven Fisher–Yates).
fn permutation(n: usize, seed: &mut u64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let j = (*seed % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

fn reimport(s: &Session) -> Session {
    let bytes = s.export().unwrap();
    Session::import(bytes.expose_secret()).unwrap()
}

#[test]
fn ten_thousand_each_way_interleaved_out_of_order_across_export() {
    let (mut alice, mut bob) = handshake();
    assert_eq!(alice.session_id(), bob.session_id());
    const TOTAL: usize = 10_000;
    const BATCH: usize = 100;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut delivered = (0usize, 0usize);
    for batch in 0..TOTAL / BATCH {
        let mut to_bob = Vec::with_capacity(BATCH);
        let mut to_alice = Vec::with_capacity(BATCH);
        for i in 0..BATCH {
            let k = batch * BATCH + i;
            let a = Plaintext::text(format!("a{k}"), now()).unwrap();
            let b = Plaintext::text(format!("b{k}"), now()).unwrap();
            to_bob.push((alice.seal(&a).unwrap(), a));
            to_alice.push((bob.seal(&b).unwrap(), b));
        }
        let order_b = permutation(BATCH, &mut seed);
        let order_a = permutation(BATCH, &mut seed);
        for step in 0..BATCH {
            if step == BATCH / 2 && batch % 25 == 12 {
                // Half a batch in flight: skipped keys must survive export/import.
                alice = reimport(&alice);
                bob = reimport(&bob);
                assert!(bob.skipped_keys() > 0);
            }
            let (sealed, plain) = &to_bob[order_b[step]];
            assert_eq!(&bob.open(sealed).unwrap(), plain);
            let (sealed, plain) = &to_alice[order_a[step]];
            assert_eq!(&alice.open(sealed).unwrap(), plain);
            delivered.0 += 1;
            delivered.1 += 1;
        }
    }
    assert_eq!(delivered, (TOTAL, TOTAL));
    assert_eq!(alice.sent_count(), TOTAL as u64);
    assert_eq!(bob.received_count(), TOTAL as u64);
    assert_eq!(alice.skipped_keys(), 0);
    assert_eq!(bob.skipped_keys(), 0);
}

#[test]
fn replayed_message_is_rejected() {
    let (mut alice, mut bob) = handshake();
    let m = alice.seal(&Plaintext::text("hi", now()).unwrap()).unwrap();
    bob.open(&m).unwrap();
    assert!(matches!(bob.open(&m), Err(Error::Replay)));
    // A replay of a message received out of order, too.
    let m1 = alice.seal(&Plaintext::text("1", now()).unwrap()).unwrap();
    let m2 = alice.seal(&Plaintext::text("2", now()).unwrap()).unwrap();
    bob.open(&m2).unwrap();
    bob.open(&m1).unwrap();
    assert!(matches!(bob.open(&m1), Err(Error::Replay)));
    assert!(matches!(bob.open(&m2), Err(Error::Replay)));
}

#[test]
fn skipping_sends_never_reuses_a_counter_and_the_peer_opens_what_follows() {
    let (mut alice, mut bob) = handshake();
    // Alice's state as last stored; she then seals a message and crashes before storing that step.
    let mut restarted = reimport(&alice);
    let first = alice.seal(&Plaintext::text("before", now()).unwrap()).unwrap();
    assert!(restarted.skip_sends_to(0).is_ok(), "staying put is allowed");
    restarted.skip_sends_to(40).unwrap();
    assert_eq!(restarted.next_send_counter(), 40);
    let after = restarted.seal(&Plaintext::text("after", now()).unwrap()).unwrap();
    assert_eq!(after.n, 40);
    assert_eq!(bob.open(&after).unwrap().body, "after");
    // The key of a counter passed over sealed nothing else: the one message sealed with it still opens, once.
    assert_eq!(bob.open(&first).unwrap().body, "before");
    assert!(matches!(bob.open(&first), Err(Error::Replay)));
    assert!(matches!(restarted.skip_sends_to(39), Err(Error::Malformed(_))));
    assert!(matches!(
        restarted.skip_sends_to(42 + MAX_SKIP),
        Err(Error::TooFarAhead)
    ));
    assert_eq!(restarted.next_send_counter(), 41, "a refused skip changes nothing");
    restarted.skip_sends_to(41 + MAX_SKIP).unwrap();
    let far = restarted.seal(&Plaintext::text("far", now()).unwrap()).unwrap();
    assert_eq!(
        bob.open(&far).unwrap().body,
        "far",
        "the largest skip stays within the peer's window"
    );
}

#[test]
fn message_beyond_the_skip_window_is_rejected() {
    let (mut alice, mut bob) = handshake();
    let mut last = None;
    for _ in 0..=MAX_SKIP + 1 {
        last = Some(alice.seal(&Plaintext::text("x", now()).unwrap()).unwrap());
    }
    let far = last.unwrap();
    assert_eq!(far.n, MAX_SKIP + 1);
    assert!(matches!(bob.open(&far), Err(Error::TooFarAhead)));
    // Exactly at the edge (n = MAX_SKIP, 1,000 skipped keys) is still fine.
    let mut alice2 = handshake();
    let mut edge = None;
    for _ in 0..=MAX_SKIP {
        edge = Some(alice2.0.seal(&Plaintext::text("x", now()).unwrap()).unwrap());
    }
    alice2.1.open(&edge.unwrap()).unwrap();
    assert_eq!(alice2.1.skipped_keys(), MAX_SKIP as usize);
}

#[test]
fn message_older_than_the_window_is_out_of_order() {
    let (mut alice, mut bob) = handshake();
    let first = alice.seal(&Plaintext::text("first", now()).unwrap()).unwrap();
    let mut msgs = Vec::new();
    for _ in 0..MAX_SKIP + 5 {
        msgs.push(alice.seal(&Plaintext::text("x", now()).unwrap()).unwrap());
    }
    // Walk forward in steps within the window so the first key falls out of it.
    for m in msgs.iter().step_by(500) {
        bob.open(m).unwrap();
    }
    bob.open(msgs.last().unwrap()).unwrap();
    assert!(bob.skipped_keys() <= MAX_SKIP as usize);
    assert!(matches!(bob.open(&first), Err(Error::OutOfOrder)));
}

#[test]
fn reflected_message_is_rejected() {
    let (mut alice, _bob) = handshake();
    let m = alice.seal(&Plaintext::text("to bob", now()).unwrap()).unwrap();
    assert!(matches!(alice.open(&m), Err(Error::WrongPeer)));
    // Relabelled as from bob, it still cannot open: other chain, other AD.
    let mut relabelled = m.clone();
    relabelled.from = "bob".into();
    assert!(matches!(alice.open(&relabelled), Err(Error::Decrypt)));
}

#[test]
fn tampered_messages_fail_opaquely_and_do_not_advance_state() {
    let (mut alice, mut bob) = handshake();
    let m = alice.seal(&Plaintext::text("hello", now()).unwrap()).unwrap();
    for i in 0..m.ciphertext.len() {
        let mut t = m.clone();
        flip(&mut t.ciphertext, i);
        assert!(matches!(bob.open(&t), Err(Error::Decrypt)), "byte {i}");
    }
    let mut t = m.clone();
    t.ciphertext.truncate(10);
    assert!(matches!(bob.open(&t), Err(Error::Decrypt)));
    let mut t = m.clone();
    t.n += 1;
    assert!(matches!(bob.open(&t), Err(Error::Decrypt)));
    let mut t = m.clone();
    flip(&mut t.session_id, 0);
    assert!(matches!(bob.open(&t), Err(Error::WrongSession)));
    let mut t = m.clone();
    t.from = "carol".into();
    assert!(matches!(bob.open(&t), Err(Error::WrongPeer)));
    let mut t = m.clone();
    t.v = 2;
    assert!(matches!(bob.open(&t), Err(Error::UnsupportedVersion(2))));
    // Nothing of that moved the receiving chain: the real message still opens.
    assert_eq!(bob.skipped_keys(), 0);
    assert_eq!(bob.open(&m).unwrap().body, "hello");
}

#[test]
fn message_from_another_session_is_rejected() {
    let (mut alice, _) = handshake();
    let (_, mut bob2) = handshake();
    let m = alice.seal(&Plaintext::text("hi", now()).unwrap()).unwrap();
    assert!(matches!(bob2.open(&m), Err(Error::WrongSession)));
}

#[test]
fn rekey_signal_after_1000_messages_or_7_days() {
    let (mut alice, mut bob) = handshake();
    assert!(!alice.needs_rekey(now()));
    assert!(!alice.needs_rekey(now() + Duration::from_secs(REKEY_AFTER_SECS - 1)));
    assert!(alice.needs_rekey(now() + Duration::from_secs(REKEY_AFTER_SECS)));
    for i in 0..REKEY_AFTER_MESSAGES {
        let m = if i % 2 == 0 {
            let m = alice.seal(&Plaintext::text("x", now()).unwrap()).unwrap();
            bob.open(&m).unwrap();
            continue;
        } else {
            bob.seal(&Plaintext::text("y", now()).unwrap()).unwrap()
        };
        assert!(!alice.needs_rekey(now()), "{i}");
        alice.open(&m).unwrap();
    }
    assert!(alice.needs_rekey(now()));
    assert!(!bob.needs_rekey(now() - Duration::from_secs(1)) || bob.sent_count() + bob.received_count() >= 1000);
}

#[test]
fn exported_state_round_trips_and_never_shows_secrets() {
    let (mut alice, mut bob) = handshake();
    let m0 = alice.seal(&Plaintext::text("0", now()).unwrap()).unwrap();
    let m1 = alice.seal(&Plaintext::text("1", now()).unwrap()).unwrap();
    bob.open(&m1).unwrap();
    let exported = bob.export().unwrap();
    assert_eq!(format!("{exported:?}"), "SecretBytes(<redacted>)");
    let dbg = format!("{bob:?}");
    assert!(dbg.contains("ChainKey(<redacted>)"), "{dbg}");
    let json: serde_json::Value = serde_json::from_slice(exported.expose_secret()).unwrap();
    let send_chain = json["send_chain"].as_str().unwrap();
    assert!(!dbg.contains(send_chain));
    let mut bob2 = Session::import(exported.expose_secret()).unwrap();
    assert!(bob2.handshake_report().is_none());
    assert_eq!(
        format!("{:?}", bob2.peer_fingerprint()),
        format!("{:?}", bob.peer_fingerprint())
    );
    assert_eq!(bob2.open(&m0).unwrap().body, "0");
    // The imported copy and the original agree on the next message too.
    let m2 = alice.seal(&Plaintext::text("2", now()).unwrap()).unwrap();
    assert_eq!(bob2.open(&m2).unwrap().body, "2");
    assert_eq!(bob.open(&m2).unwrap().body, "2");
}

#[test]
fn import_refuses_broken_state() {
    let (_alice, bob) = handshake();
    let good: serde_json::Value = serde_json::from_slice(bob.export().unwrap().expose_secret()).unwrap();
    let mut cases = Vec::new();
    let mut v = good.clone();
    v["v"] = 2.into();
    cases.push(v);
    let mut v = good.clone();
    v["send_chain"] = "AAAA".into();
    cases.push(v);
    let mut v = good.clone();
    v["skipped"] = serde_json::json!([[5, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]]);
    cases.push(v);
    let mut v = good.clone();
    v["peer"] = v["me"].clone();
    cases.push(v);
    let mut v = good.clone();
    v["extra"] = 1.into();
    cases.push(v);
    for case in cases {
        assert!(Session::import(&serde_json::to_vec(&case).unwrap()).is_err(), "{case}");
    }
    assert!(Session::import(b"").is_err());
}

#[test]
fn sealed_message_json_round_trip() {
    let (mut alice, mut bob) = handshake();
    let p = Plaintext::new(MessageKind::Receipt, "some-id", now()).unwrap();
    let wire = alice.seal(&p).unwrap().to_json().unwrap();
    let opened = bob.open(&SealedMessage::from_json(&wire).unwrap()).unwrap();
    assert_eq!(opened, p);
    assert!(!format!("{opened:?}").contains("some-id"));
}

#[test]
fn a_replaced_session_opens_late_messages_and_seals_nothing() {
    let (mut alice, bob) = handshake();
    let late = alice.seal(&Plaintext::text("late", now()).unwrap()).unwrap();
    let replaced = bob.into_receive_only();
    assert!(!replaced.can_send());
    // Kept across export, without any sending key in the stored state.
    let exported = replaced.export().unwrap();
    let text = std::str::from_utf8(exported.expose_secret()).unwrap();
    assert!(text.contains("\"send_chain\":null"), "{text}");
    let mut replaced = Session::import(exported.expose_secret()).unwrap();
    assert!(!replaced.can_send());
    assert_eq!(replaced.open(&late).unwrap().body, "late");
    let refused = replaced.seal(&Plaintext::text("no", now()).unwrap());
    assert!(matches!(refused, Err(Error::ReceiveOnly)), "{refused:?}");
    replaced.skip_sends_to(replaced.next_send_counter() + 3).unwrap();
    assert!(matches!(
        replaced.seal(&Plaintext::text("still no", now()).unwrap()),
        Err(Error::ReceiveOnly)
    ));
}

#[test]
fn a_session_is_exhausted_at_twice_the_rekey_point() {
    let (mut alice, mut bob) = handshake();
    assert!(!alice.exhausted(now() + Duration::from_secs(SESSION_MAX_SECS - 1)));
    assert!(alice.exhausted(now() + Duration::from_secs(SESSION_MAX_SECS)));
    for _ in 0..SESSION_MAX_MESSAGES - 1 {
        let m = alice.seal(&Plaintext::text("x", now()).unwrap()).unwrap();
        bob.open(&m).unwrap();
    }
    assert!(alice.needs_rekey(now()) && !alice.exhausted(now()));
    alice.seal(&Plaintext::text("x", now()).unwrap()).unwrap();
    assert!(alice.exhausted(now()));
}

//! The handshake through the public API: success, decline, pins, reports, and typestate hygiene.
// Helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::*;
use magpie_proto::*;

#[test]
fn full_handshake_then_messages_both_ways() {
    let w = world();
    let (a1, req) = Initiator::request(&w.alice, w.bob.username(), now()).unwrap();
    // Every message survives its JSON form.
    let req = ChatRequest::from_json(&req.to_json().unwrap()).unwrap();
    let incoming = Responder::on_request(&w.bob, &w.trust, &req, None, now()).unwrap();
    assert_eq!(incoming.from().as_str(), "alice");
    assert_eq!(incoming.pin_check(), PinCheck::New);
    assert_eq!(incoming.peer().fingerprint(), w.alice.fingerprint());
    let (b1, accept) = incoming.accept().unwrap();
    let accept = ChatAccept::from_json(&accept.to_json().unwrap()).unwrap();
    let bob_chain = [w.bob.certificate().clone()];
    let (a2, transfer) = a1.on_accept(&accept, &bob_chain, &w.trust, None, now()).unwrap();
    let transfer = KeyTransfer::from_json(&transfer.to_json().unwrap()).unwrap();
    assert_eq!(transfer.wrapped_key.len(), 384);
    let (mut bob, confirm) = b1.on_key_transfer(&transfer, now()).unwrap();
    let confirm = KeyConfirm::from_json(&confirm.to_json().unwrap()).unwrap();
    let mut alice = a2.on_confirm(&confirm, now()).unwrap();

    assert_eq!(alice.session_id(), bob.session_id());
    assert_eq!(alice.role(), Role::Initiator);
    assert_eq!(bob.role(), Role::Responder);
    assert_eq!(alice.peer_fingerprint(), w.bob.fingerprint());
    assert_eq!(bob.peer_fingerprint(), w.alice.fingerprint());

    // Both sides' reports agree on every public value.
    let ra = alice.handshake_report().unwrap().clone();
    let rb = bob.handshake_report().unwrap().clone();
    assert_eq!(ra, rb);
    assert_eq!(ra.wrapped_key.as_deref(), Some(transfer.wrapped_key.as_slice()));
    assert_eq!(ra.confirm_mac.map(|m| m.to_vec()), Some(confirm.mac.clone()));
    assert_eq!(ra.session_id.as_ref(), Some(alice.session_id()));
    assert_eq!(
        ra.responder_ephemeral.map(|e| e.to_vec()),
        Some(accept.ephemeral.clone())
    );

    let m = alice.seal(&Plaintext::text("hello bob", now()).unwrap()).unwrap();
    assert_eq!(bob.open(&m).unwrap().body, "hello bob");
    let m = bob.seal(&Plaintext::text("hello alice", now()).unwrap()).unwrap();
    assert_eq!(alice.open(&m).unwrap().body, "hello alice");
}

#[test]
fn reports_show_each_step_without_secrets() {
    let w = world();
    let (a1, _req) = Initiator::request(&w.alice, w.bob.username(), now()).unwrap();
    assert!(a1.report().initiator_fingerprint.is_some());
    assert!(a1.report().responder_ephemeral.is_none());
    let (alice, bob) = handshake();
    for s in [&alice, &bob] {
        let text = format!("{s:?} {:?}", s.handshake_report());
        assert!(!text.contains(&format!("{:?}", s.export().unwrap().expose_secret())));
        let exported: serde_json::Value = serde_json::from_slice(s.export().unwrap().expose_secret()).unwrap();
        for key in ["send_chain", "recv_chain"] {
            assert!(!text.contains(exported[key].as_str().unwrap()), "{key} leaked");
        }
    }
}

#[test]
fn states_debug_shows_no_secret() {
    let w = world();
    let (a1, req) = Initiator::request(&w.alice, w.bob.username(), now()).unwrap();
    let incoming = Responder::on_request(&w.bob, &w.trust, &req, None, now()).unwrap();
    let (b1, accept) = incoming.accept().unwrap();
    let dbg_b1 = format!("{b1:?}");
    assert!(dbg_b1.contains("EphemeralSecret(<redacted>)"), "{dbg_b1}");
    let (a2, _transfer) = a1
        .on_accept(&accept, &[w.bob.certificate().clone()], &w.trust, None, now())
        .unwrap();
    let dbg_a2 = format!("{a2:?}");
    for secret in ["RootKey(<redacted>)", "ChainKey(<redacted>)", "ConfirmKey(<redacted>)"] {
        assert!(dbg_a2.contains(secret), "{dbg_a2}");
    }
    let dbg_cred = format!("{:?}", w.alice);
    assert!(
        dbg_cred.contains("<redacted>") && !dbg_cred.contains("BEGIN"),
        "{dbg_cred}"
    );
    let dbg_ca = format!("{:?}", w.ca);
    assert!(dbg_ca.contains("<redacted>"), "{dbg_ca}");
    let inputs = KeyTransferInputs {
        secret: SessionSecret::from_bytes([7; 32]),
        ephemeral_private: zeroize::Zeroizing::new([7; 32]),
        wrap_for: None,
    };
    assert_eq!(format!("{inputs:?}"), "KeyTransferInputs(<redacted>)");
}

#[test]
fn decline_is_signed_and_verified() {
    let w = world();
    let (a1, req) = Initiator::request(&w.alice, w.bob.username(), now()).unwrap();
    let incoming = Responder::on_request(&w.bob, &w.trust, &req, None, now()).unwrap();
    let decline = incoming.decline().unwrap();
    let decline = ChatDecline::from_json(&decline.to_json().unwrap()).unwrap();
    let declined = a1
        .on_decline(&decline, &[w.bob.certificate().clone()], &w.trust, None, now())
        .unwrap();
    assert_eq!(declined.request_id, req.request_id);
    assert_eq!(declined.peer.as_str(), "bob");
}

#[test]
fn pins_same_and_changed() {
    let w = world();
    let alice_fp = w.alice.fingerprint();
    let bob_fp = w.bob.fingerprint();
    let mallory_fp = w.mallory.fingerprint();
    let (a1, req) = Initiator::request(&w.alice, w.bob.username(), now()).unwrap();
    let incoming = Responder::on_request(&w.bob, &w.trust, &req, Some(&alice_fp), now()).unwrap();
    assert_eq!(incoming.pin_check(), PinCheck::Same);
    match Responder::on_request(&w.bob, &w.trust, &req, Some(&mallory_fp), now()) {
        Err(Error::KeyChanged { pinned, presented }) => {
            assert_eq!(pinned, mallory_fp);
            assert_eq!(presented, alice_fp);
        }
        other => panic!("{other:?}"),
    }
    let (_b1, accept) = incoming.accept().unwrap();
    let chain = [w.bob.certificate().clone()];
    assert!(matches!(
        a1.on_accept(&accept, &chain, &w.trust, Some(&mallory_fp), now()),
        Err(Error::KeyChanged { .. })
    ));
    assert_eq!(PinCheck::check(Some(&bob_fp), &bob_fp), PinCheck::Same);
    assert_eq!(PinCheck::check(None, &bob_fp), PinCheck::New);
    assert_eq!(
        PinCheck::check(Some(&alice_fp), &bob_fp),
        PinCheck::Changed {
            old: alice_fp,
            new: bob_fp
        }
    );
}

#[test]
fn request_to_oneself_is_refused() {
    let w = world();
    assert!(matches!(
        Initiator::request(&w.alice, w.alice.username(), now()),
        Err(Error::WrongPeer)
    ));
}

#[test]
fn handshake_message_from_another_handshake_is_refused() {
    let w = world();
    let chain = [w.bob.certificate().clone()];
    // Two handshakes in parallel: each state refuses the other's messages.
    let (a1, req1) = Initiator::request(&w.alice, w.bob.username(), now()).unwrap();
    let (a1b, req2) = Initiator::request(&w.alice, w.bob.username(), now()).unwrap();
    let (b1, acc1) = Responder::on_request(&w.bob, &w.trust, &req1, None, now())
        .unwrap()
        .accept()
        .unwrap();
    let (b2, acc2) = Responder::on_request(&w.bob, &w.trust, &req2, None, now())
        .unwrap()
        .accept()
        .unwrap();
    assert!(matches!(
        a1.on_accept(&acc2, &chain, &w.trust, None, now()),
        Err(Error::WrongSession)
    ));
    let (a2b, kt2) = a1b.on_accept(&acc2, &chain, &w.trust, None, now()).unwrap();
    assert!(matches!(b1.on_key_transfer(&kt2, now()), Err(Error::WrongSession)));
    let (_bob2, confirm2) = b2.on_key_transfer(&kt2, now()).unwrap();
    let _ = acc1;
    let alice2 = a2b.on_confirm(&confirm2, now()).unwrap();
    assert_eq!(alice2.peer().as_str(), "bob");
}

#[test]
fn safety_numbers_agree_across_sides() {
    let w = world();
    let a = SafetyNumber::from_certificates(
        (w.alice.username(), w.alice.certificate()),
        (w.bob.username(), w.bob.certificate()),
    )
    .unwrap();
    let b = SafetyNumber::from_certificates(
        (w.bob.username(), w.bob.certificate()),
        (w.alice.username(), w.alice.certificate()),
    )
    .unwrap();
    assert_eq!(a, b);
    assert_eq!(a.to_string().len(), 60 + 11);
    assert!(b.matches_qr(&a.qr_payload()));
}

//! Handshake states exported and imported between steps (the client runs as separate processes): each
//! restored state finishes the handshake, and broken or foreign states are refused with a typed error.
// Helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use base64::Engine as _;
use common::*;
use magpie_proto::*;
use serde_json::Value;

/// The four states through one interface, so every test covers all of them.
trait Persisted: Sized {
    fn export_state(&self) -> SecretBytes;
    fn import_state(me: Credential, bytes: &[u8]) -> Result<Self>;
    fn state_report(&self) -> &HandshakeReport;
}

macro_rules! persisted {
    ($($t:ty),*) => {$(
        impl Persisted for $t {
            fn export_state(&self) -> SecretBytes {
                self.export().unwrap()
            }
            fn import_state(me: Credential, bytes: &[u8]) -> Result<Self> {
                <$t>::import(me, bytes)
            }
            fn state_report(&self) -> &HandshakeReport {
                self.report()
            }
        }
    )*};
}
persisted!(AwaitingAccept, IncomingRequest, AwaitingKeyTransfer, AwaitingConfirm);

/// Exports `state`, drops it (the process exits) and imports it with `me`'s credential.
fn reload<T: Persisted>(state: T, me: &Credential) -> T {
    let bytes = state.export_state();
    assert_eq!(format!("{bytes:?}"), "SecretBytes(<redacted>)");
    let restored = T::import_state(me.clone(), bytes.expose_secret()).unwrap();
    assert_eq!(restored.state_report(), state.state_report());
    // Nothing lost or changed: the restored state exports to the same bytes.
    assert_eq!(restored.export_state().expose_secret(), bytes.expose_secret());
    drop(state);
    restored
}

const ACCEPT: u8 = 1;
const INCOMING: u8 = 2;
const KEY_TRANSFER: u8 = 4;
const CONFIRM: u8 = 8;

/// A handshake Alice → Bob reloading the states named in `reload_mask`, then messages both ways.
fn handshake_reloading(reload_mask: u8) {
    let w = world();
    let chain = [w.bob.certificate().clone()];
    let (mut a1, req) = Initiator::request(&w.alice, w.bob.username(), now()).unwrap();
    if reload_mask & ACCEPT != 0 {
        a1 = reload(a1, &w.alice);
    }
    let mut incoming = Responder::on_request(&w.bob, &w.trust, &req, None, now()).unwrap();
    if reload_mask & INCOMING != 0 {
        incoming = reload(incoming, &w.bob);
        assert_eq!(incoming.from().as_str(), "alice");
        assert_eq!(incoming.peer().fingerprint(), w.alice.fingerprint());
        assert_eq!(incoming.request_id(), req.request_id);
        assert_eq!(incoming.sent_at(), req.sent_at);
        assert_eq!(incoming.pin_check(), PinCheck::New);
    }
    let (mut b1, accept) = incoming.accept().unwrap();
    if reload_mask & KEY_TRANSFER != 0 {
        b1 = reload(b1, &w.bob);
    }
    let (mut a2, transfer) = a1.on_accept(&accept, &chain, &w.trust, None, now()).unwrap();
    if reload_mask & CONFIRM != 0 {
        a2 = reload(a2, &w.alice);
        assert_eq!(a2.peer().fingerprint(), w.bob.fingerprint());
        assert_eq!(a2.peer().username().as_str(), "bob");
    }
    let (mut bob, confirm) = b1.on_key_transfer(&transfer, now()).unwrap();
    let mut alice = a2.on_confirm(&confirm, now()).unwrap();

    assert_eq!(alice.session_id(), bob.session_id());
    assert_eq!(alice.handshake_report(), bob.handshake_report());
    assert_eq!(alice.peer_fingerprint(), w.bob.fingerprint());
    assert_eq!(bob.peer_fingerprint(), w.alice.fingerprint());
    let m = alice.seal(&Plaintext::text("hello bob", now()).unwrap()).unwrap();
    assert_eq!(bob.open(&m).unwrap().body, "hello bob");
    let m = bob.seal(&Plaintext::text("hello alice", now()).unwrap()).unwrap();
    assert_eq!(alice.open(&m).unwrap().body, "hello alice");
}

#[test]
fn awaiting_accept_survives_export_import() {
    handshake_reloading(ACCEPT);
}

#[test]
fn incoming_request_survives_export_import() {
    handshake_reloading(INCOMING);
}

#[test]
fn awaiting_key_transfer_survives_export_import() {
    handshake_reloading(KEY_TRANSFER);
}

#[test]
fn awaiting_confirm_survives_export_import() {
    handshake_reloading(CONFIRM);
}

#[test]
fn every_state_persisted_in_turn() {
    handshake_reloading(ACCEPT | INCOMING | KEY_TRANSFER | CONFIRM);
}

#[test]
fn restored_incoming_request_can_decline_and_keeps_its_pin() {
    let w = world();
    let alice_fp = w.alice.fingerprint();
    let (a1, req) = Initiator::request(&w.alice, w.bob.username(), now()).unwrap();
    let a1 = reload(a1, &w.alice);
    let incoming = Responder::on_request(&w.bob, &w.trust, &req, Some(&alice_fp), now()).unwrap();
    let incoming = reload(incoming, &w.bob);
    assert_eq!(incoming.pin_check(), PinCheck::Same);
    let decline = incoming.decline().unwrap();
    let declined = a1
        .on_decline(&decline, &[w.bob.certificate().clone()], &w.trust, None, now())
        .unwrap();
    assert_eq!(declined.request_id, req.request_id);
}

/// One exported state of each kind, with the credential that owns it.
struct States {
    accept: SecretBytes,
    incoming: SecretBytes,
    key_transfer: SecretBytes,
    confirm: SecretBytes,
}

fn states() -> States {
    let w = world();
    let (a1, req) = Initiator::request(&w.alice, w.bob.username(), now()).unwrap();
    let accept = a1.export().unwrap();
    let incoming = Responder::on_request(&w.bob, &w.trust, &req, None, now()).unwrap();
    let incoming_bytes = incoming.export().unwrap();
    let (b1, acc) = incoming.accept().unwrap();
    let key_transfer = b1.export().unwrap();
    let (a2, _kt) = a1
        .on_accept(&acc, &[w.bob.certificate().clone()], &w.trust, None, now())
        .unwrap();
    States {
        accept,
        incoming: incoming_bytes,
        key_transfer,
        confirm: a2.export().unwrap(),
    }
}

fn json(bytes: &SecretBytes) -> Value {
    serde_json::from_slice(bytes.expose_secret()).unwrap()
}

/// Imports `value` as `T` with `me`; must fail.
fn refused<T: Persisted + std::fmt::Debug>(me: &Credential, value: &Value) -> Error {
    let bytes = serde_json::to_vec(value).unwrap();
    match T::import_state(me.clone(), &bytes) {
        // The JSON holds (fixture) secrets: show the state's redacted Debug only.
        Ok(state) => panic!("imported {state:?}"),
        Err(e) => e,
    }
}

fn assert_malformed(e: Error, case: &str) {
    assert!(matches!(e, Error::Malformed(_)), "{case}: {e:?}");
}

/// Applies every generic corruption to a state of kind `T` owned by `me`.
fn common_refusals<T: Persisted + std::fmt::Debug>(me: &Credential, good: &SecretBytes) {
    let w = world();
    let v = json(good);
    // Sanity: the unmodified JSON (re-serialized) imports.
    T::import_state(me.clone(), &serde_json::to_vec(&v).unwrap()).unwrap();

    assert_malformed(refused::<T>(&w.mallory, &v), "another user's credential");
    let other = if me.username() == w.alice.username() {
        &w.bob
    } else {
        &w.alice
    };
    assert_malformed(refused::<T>(other, &v), "the peer's credential");

    let mut c = v.clone();
    c["v"] = 2.into();
    assert!(matches!(refused::<T>(me, &c), Error::UnsupportedVersion(2)));
    // A future version is refused as such even if its layout changed.
    let mut c = v.clone();
    c["v"] = 2.into();
    c["new_field"] = 1.into();
    assert!(matches!(refused::<T>(me, &c), Error::UnsupportedVersion(2)));

    let mut c = v.clone();
    c["extra"] = 1.into();
    assert_malformed(refused::<T>(me, &c), "unknown field");

    let mut c = v.clone();
    c["me"] = v["peer"].clone();
    assert_malformed(refused::<T>(me, &c), "me swapped for the peer");

    let mut c = v.clone();
    c["peer"] = "mallory".into();
    assert_malformed(refused::<T>(me, &c), "another peer");

    let mut c = v.clone();
    c["report"]["request_id"] = "00000000-0000-4000-8000-000000000000".into();
    assert_malformed(refused::<T>(me, &c), "report of another request");

    let mut c = v.clone();
    c["report"]["responder_ephemeral"] = "AAAA".into();
    assert_malformed(refused::<T>(me, &c), "report ephemeral of the wrong length");

    let bytes = good.expose_secret();
    for cut in [0, 1, bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
        let e = T::import_state(me.clone(), &bytes[..cut]).err().unwrap();
        assert_malformed(e, &format!("truncated at {cut}"));
    }
    let e = T::import_state(me.clone(), b"\xff\x00garbage").err().unwrap();
    assert_malformed(e, "garbage");
    let mut huge = bytes.to_vec();
    huge.resize(MAX_STATE_LEN + 1, b' ');
    let e = T::import_state(me.clone(), &huge).err().unwrap();
    assert_malformed(e, "oversize");
}

#[test]
fn broken_awaiting_accept_is_refused() {
    let w = world();
    let s = states();
    common_refusals::<AwaitingAccept>(&w.alice, &s.accept);
    let v = json(&s.accept);
    let mut c = v.clone();
    c["request"]["signature"] = "AAAA".into();
    assert_malformed(
        refused::<AwaitingAccept>(&w.alice, &c),
        "request signature not the report's",
    );
    let mut c = v.clone();
    c["report"]["initiator_fingerprint"] = w.mallory.fingerprint().to_hex().into();
    assert_malformed(
        refused::<AwaitingAccept>(&w.alice, &c),
        "initiator fingerprint not the credential's",
    );
    // Another kind of state is not this one.
    assert_malformed(
        refused::<AwaitingAccept>(&w.alice, &json(&s.confirm)),
        "AwaitingConfirm",
    );
}

#[test]
fn broken_incoming_request_is_refused() {
    let w = world();
    let s = states();
    common_refusals::<IncomingRequest>(&w.bob, &s.incoming);
    let v = json(&s.incoming);
    let mut c = v.clone();
    c["peer_fingerprint"] = w.mallory.fingerprint().to_hex().into();
    assert_malformed(
        refused::<IncomingRequest>(&w.bob, &c),
        "peer fingerprint not the cert's",
    );
    // Both fingerprints changed together still do not match the request's certificate.
    c["report"]["initiator_fingerprint"] = w.mallory.fingerprint().to_hex().into();
    assert_malformed(refused::<IncomingRequest>(&w.bob, &c), "fingerprints not the cert's");
    let mut c = v.clone();
    c["request"]["cert_chain"] = serde_json::json!([base64_of(&w.mallory.certificate().to_der().unwrap())]);
    assert_malformed(refused::<IncomingRequest>(&w.bob, &c), "another certificate");
    let mut c = v.clone();
    c["pin"] = "changed".into();
    assert_malformed(refused::<IncomingRequest>(&w.bob, &c), "pin changed");
    assert_malformed(
        refused::<IncomingRequest>(&w.bob, &json(&s.key_transfer)),
        "AwaitingKeyTransfer",
    );
}

#[test]
fn broken_awaiting_key_transfer_is_refused() {
    let w = world();
    let s = states();
    common_refusals::<AwaitingKeyTransfer>(&w.bob, &s.key_transfer);
    let v = json(&s.key_transfer);
    for bad in ["AAAA", "", "not base64!", &base64_of(&[7; 33])] {
        let mut c = v.clone();
        c["ephemeral_private"] = bad.into();
        assert_malformed(refused::<AwaitingKeyTransfer>(&w.bob, &c), bad);
    }
    let mut c = v.clone();
    c["ephemeral_private"] = base64_of(&[7; 32]).into();
    assert_malformed(refused::<AwaitingKeyTransfer>(&w.bob, &c), "eB not the report's");
    let mut c = v.clone();
    c["peer_fingerprint"] = w.mallory.fingerprint().to_hex().into();
    assert_malformed(
        refused::<AwaitingKeyTransfer>(&w.bob, &c),
        "peer fingerprint not the cert's",
    );
    let mut c = v.clone();
    c["report"]["accept_signature"] = Value::Null;
    assert_malformed(refused::<AwaitingKeyTransfer>(&w.bob, &c), "no accept in the report");
}

#[test]
fn broken_awaiting_confirm_is_refused() {
    let w = world();
    let s = states();
    common_refusals::<AwaitingConfirm>(&w.alice, &s.confirm);
    let v = json(&s.confirm);
    for bad in ["AAAA", "", "not base64!", &base64_of(&[7; 31])] {
        let mut c = v.clone();
        c["root_key"] = bad.into();
        assert_malformed(refused::<AwaitingConfirm>(&w.alice, &c), bad);
    }
    let mut c = v.clone();
    c["root_key"] = base64_of(&[7; 32]).into();
    assert_malformed(
        refused::<AwaitingConfirm>(&w.alice, &c),
        "root not the report's session",
    );
    let mut c = v.clone();
    c["peer_fingerprint"] = w.mallory.fingerprint().to_hex().into();
    assert_malformed(
        refused::<AwaitingConfirm>(&w.alice, &c),
        "peer fingerprint not the report's",
    );
    c["report"]["responder_fingerprint"] = w.mallory.fingerprint().to_hex().into();
    assert_malformed(
        refused::<AwaitingConfirm>(&w.alice, &c),
        "peer fingerprint not the cert's",
    );
    let mut c = v.clone();
    c["peer_certificate"] = base64_of(&w.mallory.certificate().to_der().unwrap()).into();
    assert_malformed(refused::<AwaitingConfirm>(&w.alice, &c), "certificate of another name");
    let mut c = v.clone();
    c["peer_certificate"] = base64_of(b"not a certificate").into();
    assert_malformed(refused::<AwaitingConfirm>(&w.alice, &c), "unparsable certificate");
    let mut c = v.clone();
    c["report"]["transcript_hash"] = Value::Null;
    assert_malformed(refused::<AwaitingConfirm>(&w.alice, &c), "no transcript hash");
    let mut c = v.clone();
    c["report"]["session_id"] = base64_of(&[0; 16]).into();
    assert_malformed(refused::<AwaitingConfirm>(&w.alice, &c), "another session id");
}

#[test]
fn state_of_same_name_but_another_key_is_refused() {
    let w = world();
    let s = states();
    // "alice" re-registered with a new key (here: Bob's fixture key) cannot resume the old handshake.
    let id = identity("bob", "alice");
    let cert = w.ca.issue(&id.csr().unwrap(), at(T0)).unwrap();
    let new_alice = Credential::new(id, cert).unwrap();
    let e = AwaitingAccept::import(new_alice.clone(), s.accept.expose_secret()).unwrap_err();
    assert_malformed(e, "AwaitingAccept");
    let e = AwaitingConfirm::import(new_alice, s.confirm.expose_secret()).unwrap_err();
    assert_malformed(e, "AwaitingConfirm");
}

fn base64_of(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn hex(bytes: &[u8]) -> String {
    magpie_proto::encoding::hex(bytes)
}

/// Neither the base64 nor the hex form (nor an 8-byte prefix of it) of `secret` shows in `shown`.
fn assert_hidden(shown: &str, secret: &[u8], what: &str) {
    assert!(!shown.contains(&base64_of(secret)), "{what} (base64) in {shown}");
    assert!(!shown.contains(&hex(secret)[..16]), "{what} (hex) in {shown}");
    assert!(
        !shown.contains(&hex(&secret[..8]).to_uppercase()),
        "{what} (HEX) in {shown}"
    );
}

#[test]
fn debug_of_states_shows_no_secret() {
    let w = world();
    let s = states();
    let b1 = AwaitingKeyTransfer::import(w.bob.clone(), s.key_transfer.expose_secret()).unwrap();
    let eb = base64::engine::general_purpose::STANDARD
        .decode(json(&s.key_transfer)["ephemeral_private"].as_str().unwrap())
        .unwrap();
    assert_eq!(eb.len(), 32);
    for shown in [format!("{b1:?}"), format!("{b1:#?}")] {
        assert!(shown.contains("EphemeralSecret(<redacted>)"), "{shown}");
        assert_hidden(&shown, &eb, "eB");
    }
    let a2 = AwaitingConfirm::import(w.alice.clone(), s.confirm.expose_secret()).unwrap();
    let root = base64::engine::general_purpose::STANDARD
        .decode(json(&s.confirm)["root_key"].as_str().unwrap())
        .unwrap();
    assert_eq!(root.len(), 32);
    for shown in [format!("{a2:?}"), format!("{a2:#?}")] {
        assert!(shown.contains("RootKey(<redacted>)"), "{shown}");
        assert_hidden(&shown, &root, "root key");
    }
    for bytes in [&s.accept, &s.incoming, &s.key_transfer, &s.confirm] {
        assert_eq!(format!("{bytes:?}"), "SecretBytes(<redacted>)");
    }
    // The credential's private key is never part of a state.
    let pkcs8 = w.alice.identity().to_pkcs8_der().unwrap();
    for bytes in [&s.accept, &s.confirm] {
        let text = std::str::from_utf8(bytes.expose_secret()).unwrap();
        assert!(!text.contains(&base64_of(&pkcs8.expose_secret()[..48])));
        assert!(!text.contains("PRIVATE KEY"));
    }
}

#[test]
fn handshake_report_json_round_trip() {
    let (alice, _bob) = handshake();
    let report = alice.handshake_report().unwrap();
    let text = serde_json::to_string(report).unwrap();
    let back: HandshakeReport = serde_json::from_str(&text).unwrap();
    assert_eq!(&back, report);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["session_id"].as_str().unwrap(),
        base64_of(alice.session_id()),
        "{text}"
    );
    assert_eq!(
        v["responder_fingerprint"].as_str().unwrap(),
        alice.peer_fingerprint().to_hex()
    );
    assert!(
        v["confirm_mac"].is_string() && v["request_signature"].is_string(),
        "{text}"
    );
}

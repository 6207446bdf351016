//! proptest: any bytes fed to every parser and opener give `Ok` or `Err`, never a panic.
// Helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::*;
use magpie_proto::*;
use proptest::prelude::*;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

/// Mostly-valid JSON objects with random values, to get past the parser into the checks.
fn json_like() -> impl Strategy<Value = Vec<u8>> {
    let key = prop::sample::select(vec![
        "v",
        "request_id",
        "from",
        "to",
        "sent_at",
        "cert_chain",
        "signature",
        "ephemeral",
        "wrapped_key",
        "mac",
        "session_id",
        "n",
        "ciphertext",
        "id",
        "kind",
        "body",
    ]);
    let value = prop_oneof![
        Just("1".to_owned()),
        any::<u64>().prop_map(|n| n.to_string()),
        "[a-z`{]{0,40}".prop_map(|s| format!("\"{s}\"")),
        Just("\"00000000-0000-4000-8000-000000000000\"".to_owned()),
        bytes(64).prop_map(|b| format!("\"{}\"", base64_encode(&b))),
        bytes(64).prop_map(|b| format!("[\"{}\"]", base64_encode(&b))),
    ];
    prop::collection::vec((key, value), 0..10).prop_map(|kv| {
        let body: Vec<String> = kv.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", body.join(",")).into_bytes()
    })
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn wire_parsers_never_panic(data in prop_oneof![bytes(512), json_like()]) {
        let _ = ChatRequest::from_json(&data);
        let _ = ChatAccept::from_json(&data);
        let _ = ChatDecline::from_json(&data);
        let _ = KeyTransfer::from_json(&data);
        let _ = KeyConfirm::from_json(&data);
        let _ = SealedMessage::from_json(&data);
        let _ = Envelope::from_json(&data);
        let _ = Plaintext::decode(&data);
        let mut framed = vec![PLAINTEXT_FORMAT];
        framed.extend_from_slice(&data);
        let _ = Plaintext::decode(&framed);
    }

    #[test]
    fn certificate_key_and_csr_parsers_never_panic(data in bytes(2048)) {
        let _ = Certificate::from_der(&data).map(|c| (c.common_name(), c.spki_fingerprint(), c.validity_unix()));
        let _ = Certificate::from_pem(&data);
        let _ = Csr::from_der(&data).map(|c| c.verify());
        let _ = Csr::from_pem(&data);
        let _ = Identity::from_pkcs8_der(Username::canonical("alice").unwrap(), &data);
        let _ = Session::import(&data);
        let w = world();
        let _ = AwaitingAccept::import(w.alice.clone(), &data);
        let _ = IncomingRequest::import(w.bob.clone(), &data);
        let _ = AwaitingKeyTransfer::import(w.bob.clone(), &data);
        let _ = AwaitingConfirm::import(w.alice.clone(), &data);
        let text = String::from_utf8_lossy(&data);
        let _ = Username::parse(&text);
        let _ = Fingerprint::from_hex(&text);
        let _ = magpie_proto::encoding::unhex(&text);
    }

    #[test]
    fn mutated_certificates_never_panic(i in 0usize..2000, bit in 0u8..8, extra in bytes(8)) {
        let w = world();
        let mut der = w.alice.certificate().to_der().unwrap();
        let len = der.len();
        der[i % len] ^= 1 << bit;
        der.extend_from_slice(&extra);
        if let Ok(cert) = Certificate::from_der(&der) {
            let _ = w.trust.verify(&[cert], w.alice.username(), now());
        }
    }

    #[test]
    fn session_open_never_panics(
        ciphertext in bytes(256),
        n in prop_oneof![0u64..3, any::<u64>()],
        from in prop_oneof![Just("alice".to_owned()), Just("bob".to_owned()), "[a-z]{0,8}"],
        keep_session_id in any::<bool>(),
        v in prop_oneof![Just(1u32), any::<u32>()],
    ) {
        let (alice, mut bob) = session_pair();
        let msg = SealedMessage {
            v,
            session_id: if keep_session_id { alice.session_id().to_vec() } else { ciphertext.iter().copied().take(16).collect() },
            from,
            n,
            ciphertext,
        };
        prop_assert!(bob.open(&msg).is_err());
    }

    #[test]
    fn session_import_of_mutated_state_never_panics(i in 0usize..4096, byte in any::<u8>()) {
        let (_alice, bob) = session_pair();
        let mut state = bob.export().unwrap().expose_secret().to_vec();
        let len = state.len();
        state[i % len] = byte;
        let _ = Session::import(&state);
    }

    #[test]
    fn handshake_state_import_of_mutated_state_never_panics(which in 0usize..4, i in 0usize..16384, byte in any::<u8>()) {
        let w = world();
        let mut state = handshake_states()[which].expose_secret().to_vec();
        let len = state.len();
        state[i % len] = byte;
        for me in [&w.alice, &w.bob] {
            let _ = AwaitingAccept::import(me.clone(), &state);
            let _ = IncomingRequest::import(me.clone(), &state);
            let _ = AwaitingKeyTransfer::import(me.clone(), &state);
            let _ = AwaitingConfirm::import(me.clone(), &state);
        }
    }
}

proptest! {
    // Each case consumes a fresh handshake state (RSA operations): fewer cases.
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn responder_on_request_never_panics(data in json_like(), sig in bytes(400), chain in bytes(64)) {
        let w = world();
        if let Ok(mut req) = ChatRequest::from_json(&data) {
            prop_assert!(Responder::on_request(&w.bob, &w.trust, &req, None, now()).is_err());
            req.signature = sig;
            req.cert_chain.push(chain);
            prop_assert!(Responder::on_request(&w.bob, &w.trust, &req, None, now()).is_err());
        }
    }

    #[test]
    fn initiator_on_accept_never_panics(ephemeral in bytes(40), signature in bytes(400), same_id in any::<bool>()) {
        let w = world();
        let (a1, req) = Initiator::request(&w.alice, w.bob.username(), now()).unwrap();
        let accept = ChatAccept {
            v: 1,
            request_id: if same_id { req.request_id } else { uuid::Uuid::nil() },
            from: "bob".into(),
            to: "alice".into(),
            ephemeral,
            signature,
        };
        prop_assert!(a1.on_accept(&accept, &[w.bob.certificate().clone()], &w.trust, None, now()).is_err());
    }

    #[test]
    fn responder_on_key_transfer_never_panics(wrapped in bytes(500), ephemeral in bytes(40), signature in bytes(400)) {
        let w = world();
        let (_a1, req) = Initiator::request(&w.alice, w.bob.username(), now()).unwrap();
        let (b1, _accept) = Responder::on_request(&w.bob, &w.trust, &req, None, now()).unwrap().accept().unwrap();
        let kt = KeyTransfer {
            v: 1,
            request_id: req.request_id,
            from: "alice".into(),
            to: "bob".into(),
            wrapped_key: wrapped,
            ephemeral,
            signature,
        };
        prop_assert!(b1.on_key_transfer(&kt, now()).is_err());
    }

    #[test]
    fn initiator_on_confirm_never_panics(mac in bytes(64)) {
        let w = world();
        let (a1, req) = Initiator::request(&w.alice, w.bob.username(), now()).unwrap();
        let (_b1, accept) = Responder::on_request(&w.bob, &w.trust, &req, None, now()).unwrap().accept().unwrap();
        let (a2, _kt) = a1.on_accept(&accept, &[w.bob.certificate().clone()], &w.trust, None, now()).unwrap();
        let confirm = KeyConfirm { v: 1, request_id: req.request_id, from: "bob".into(), to: "alice".into(), mac };
        prop_assert!(a2.on_confirm(&confirm, now()).is_err());
    }
}

/// One handshake per test binary; each case works on copies made by export/import.
fn session_pair() -> (Session, Session) {
    use std::sync::OnceLock;
    static PAIR: OnceLock<(SecretBytes, SecretBytes)> = OnceLock::new();
    let (a, b) = PAIR.get_or_init(|| {
        let (a, b) = handshake();
        (a.export().unwrap(), b.export().unwrap())
    });
    (
        Session::import(a.expose_secret()).unwrap(),
        Session::import(b.expose_secret()).unwrap(),
    )
}

/// One exported state of each handshake kind (AwaitingAccept, IncomingRequest, AwaitingKeyTransfer,
/// AwaitingConfirm), made once per test binary.
fn handshake_states() -> &'static [SecretBytes; 4] {
    use std::sync::OnceLock;
    static STATES: OnceLock<[SecretBytes; 4]> = OnceLock::new();
    STATES.get_or_init(|| {
        let w = world();
        let (a1, req) = Initiator::request(&w.alice, w.bob.username(), now()).unwrap();
        let incoming = Responder::on_request(&w.bob, &w.trust, &req, None, now()).unwrap();
        let (accept_state, incoming_state) = (a1.export().unwrap(), incoming.export().unwrap());
        let (b1, accept) = incoming.accept().unwrap();
        let (a2, _kt) = a1
            .on_accept(&accept, &[w.bob.certificate().clone()], &w.trust, None, now())
            .unwrap();
        [accept_state, incoming_state, b1.export().unwrap(), a2.export().unwrap()]
    })
}

//! Writes the seed files of `fuzz/corpus/<target>/`: real messages, certificates, requests and log segments, so
//! that the fuzzer starts past the parsers' first checks. Run from `fuzz/`: `cargo run --example seeds`.
//! Signatures (PSS), serials and ids are random, so a rerun rewrites most seeds with other bytes of the same kind;
//! the CA root of `fixtures/ca-root.pem` is written only when it is missing (the login seed is signed over it).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use magpie_fuzz::relay::{self, Fixture, METRICS_TOKEN, NEW_USER, NONCE, PEER_HEADER, USERS};
use magpie_proto::*;
use magpie_relay::store::{LogStore, MailboxQuota, NewEnvelope, Store, SyncMode};
use uuid::Uuid;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn main() {
    let root = PathBuf::from(relay::CA_ROOT);
    if !root.exists() {
        std::fs::create_dir_all(root.parent().unwrap()).unwrap();
        std::fs::write(&root, relay::new_ca_root()).unwrap();
    }
    let fixture = Fixture::new();
    protocol(&fixture);
    requests(&fixture);
    frames();
    log_records();
}

/// wire_json, certificate, session_state, open_message and handshake_steps: one real handshake and its messages.
fn protocol(fixture: &Fixture) {
    let now = SystemTime::now();
    let trust = fixture.ca.authority.trust_anchor().unwrap();
    let credential = |name: &str| {
        let id = relay::user_identity(name);
        let cert = fixture.ca.authority.issue(&id.csr().unwrap(), now).unwrap();
        Credential::new(id, cert).unwrap()
    };
    let (alice, bob) = (credential("alice"), credential("bob"));
    let (a1, request) = Initiator::request(&alice, bob.username(), now).unwrap();
    let (b1, accept) = Responder::on_request(&bob, &trust, &request, None, now)
        .unwrap()
        .accept()
        .unwrap();
    let (a2, transfer) = a1
        .on_accept(&accept, &[bob.certificate().clone()], &trust, None, now)
        .unwrap();
    let (bob_session, confirm) = b1.on_key_transfer(&transfer, now).unwrap();
    let mut alice_session = a2.on_confirm(&confirm, now).unwrap();
    let (_, request2) = Initiator::request(&alice, bob.username(), now).unwrap();
    let decline = Responder::on_request(&bob, &trust, &request2, None, now)
        .unwrap()
        .decline()
        .unwrap();
    let sealed = alice_session.seal(&Plaintext::text("hello bob", now).unwrap()).unwrap();
    let envelope = Envelope {
        id: Uuid::new_v4(),
        from: "alice".into(),
        to: "bob".into(),
        kind: EnvelopeKind::Message,
        body: sealed.to_json().unwrap(),
    };

    for (name, json) in [
        ("chat_request.json", request.to_json().unwrap()),
        ("chat_accept.json", accept.to_json().unwrap()),
        ("chat_decline.json", decline.to_json().unwrap()),
        ("key_transfer.json", transfer.to_json().unwrap()),
        ("key_confirm.json", confirm.to_json().unwrap()),
        ("sealed_message.json", sealed.to_json().unwrap()),
        ("envelope.json", envelope.to_json().unwrap()),
    ] {
        write("wire_json", name, &json);
    }
    write("wire_json", "username", b"alice");
    write(
        "wire_json",
        "fingerprint",
        alice.certificate().spki_fingerprint().unwrap().to_hex().as_bytes(),
    );

    for (selector, name, json) in [
        (0u8, "0_chat_request", request.to_json().unwrap()),
        (1, "1_chat_accept", accept.to_json().unwrap()),
        (2, "2_chat_decline", decline.to_json().unwrap()),
        (3, "3_key_transfer", transfer.to_json().unwrap()),
    ] {
        write("handshake_steps", name, &[&[selector][..], &json].concat());
    }

    let cert = alice.certificate();
    write("certificate", "alice.cert.der", &cert.to_der().unwrap());
    write("certificate", "alice.cert.pem", &cert.to_pem().unwrap());
    write(
        "certificate",
        "ca.cert.der",
        &fixture.ca.authority.certificate().to_der().unwrap(),
    );
    write(
        "certificate",
        "alice.csr.der",
        &relay::user_identity("alice").csr().unwrap().to_der().unwrap(),
    );
    write(
        "certificate",
        "alice.key.pkcs8",
        relay::user_identity("alice").to_pkcs8_der().unwrap().expose_secret(),
    );

    write(
        "session_state",
        "bob.json",
        bob_session.export().unwrap().expose_secret(),
    );
    write(
        "session_state",
        "alice.json",
        alice_session.export().unwrap().expose_secret(),
    );

    // open_message opens with bob's side of fixed chain keys (its STATE); alice's side of the same keys seals
    // messages it can open.
    let bob_state = r#"{"v":1,"session_id":"WlpaWlpaWlpaWlpaWlpaWg==","me":"bob","peer":"alice","role":"responder","peer_fingerprint":"0000000000000000000000000000000000000000000000000000000000000000","send_chain":"EBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8=","send_n":0,"recv_chain":"EBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8=","recv_next":0,"skipped":[],"established_at":0,"sent":0,"received":0}"#;
    let alice_state = bob_state.replace(
        r#""me":"bob","peer":"alice","role":"responder""#,
        r#""me":"alice","peer":"bob","role":"initiator""#,
    );
    let mut sealer = Session::import(alice_state.as_bytes()).unwrap();
    let mut opener = Session::import(bob_state.as_bytes()).unwrap();
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_660);
    for (i, text) in ["hello bob", "", "a longer message, padded to the next size class"]
        .iter()
        .enumerate()
    {
        let message = sealer.seal(&Plaintext::text(*text, at).unwrap()).unwrap();
        opener
            .open(&message)
            .expect("the seed opens under open_message's state");
        write("open_message", &format!("sealed_{i}.json"), &message.to_json().unwrap());
    }
    write(
        "open_message",
        "plaintext",
        &Plaintext::text("hello bob", at).unwrap().encode().unwrap(),
    );
}

/// relay_request: one valid request per route, as its user would send it.
fn requests(fixture: &Fixture) {
    let json = [("content-type", "application/json")];
    let alice = format!("Bearer {}", USERS[0].1);
    let bob = format!("Bearer {}", USERS[1].1);
    let as_alice = [("authorization", alice.as_str()), json[0]];
    let as_bob = [("authorization", bob.as_str()), json[0]];
    let id = Uuid::new_v4();
    let csr = relay::identity(NEW_USER.1, NEW_USER.0).csr().unwrap().to_pem().unwrap();
    let register = serde_json::json!({ "csr": String::from_utf8(csr).unwrap() });
    let signature = relay::user_identity("alice")
        .sign_login(&fixture.ca.fingerprint, &NONCE)
        .unwrap();
    let login = serde_json::json!({
        "username": "alice",
        "nonce": STANDARD.encode(NONCE),
        "signature": STANDARD.encode(signature),
    });
    let send = serde_json::json!({ "id": id, "to": "bob", "kind": "message", "body": STANDARD.encode(b"sealed") });
    let send_from = serde_json::json!({
        "id": Uuid::new_v4(), "from": "alice", "to": "bob", "kind": "chat_request", "body": "",
    });
    let metrics = format!("Bearer {METRICS_TOKEN}");
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        ("health", relay::write_request("GET", "/v1/health", &[], b"")),
        ("ca", relay::write_request("GET", "/v1/ca", &[], b"")),
        ("openapi", relay::write_request("GET", "/v1/openapi.json", &[], b"")),
        (
            "metrics",
            relay::write_request("GET", "/metrics", &[("authorization", &metrics)], b""),
        ),
        (
            "register",
            relay::write_request("POST", "/v1/register", &json, register.to_string().as_bytes()),
        ),
        (
            "challenge",
            relay::write_request("POST", "/v1/login/challenge", &json, br#"{"username":"alice"}"#),
        ),
        (
            "challenge_via_proxy",
            relay::write_request(
                "POST",
                "/v1/login/challenge",
                &[
                    json[0],
                    (PEER_HEADER, "127.0.0.1:40000"),
                    ("x-forwarded-for", "203.0.113.7, 198.51.100.2"),
                ],
                br#"{"username":"bob"}"#,
            ),
        ),
        (
            "login",
            relay::write_request("POST", "/v1/login", &json, login.to_string().as_bytes()),
        ),
        (
            "directory",
            relay::write_request("GET", "/v1/directory/bob", &as_alice, b""),
        ),
        (
            "send",
            relay::write_request("POST", "/v1/envelopes", &as_alice, send.to_string().as_bytes()),
        ),
        (
            "send_from",
            relay::write_request("POST", "/v1/envelopes", &as_alice, send_from.to_string().as_bytes()),
        ),
        (
            "fetch",
            relay::write_request("GET", "/v1/envelopes?after=0&limit=10", &as_bob, b""),
        ),
        (
            "ack",
            relay::write_request(
                "POST",
                "/v1/envelopes/ack",
                &as_bob,
                format!(r#"{{"ids":["{id}"]}}"#).as_bytes(),
            ),
        ),
        (
            "push",
            relay::write_request(
                "GET",
                "/v1/push",
                &[
                    as_bob[0],
                    ("connection", "upgrade"),
                    ("upgrade", "websocket"),
                    ("sec-websocket-version", "13"),
                    ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ],
                b"",
            ),
        ),
    ];
    for (name, bytes) in seeds {
        write("relay_request", name, &bytes);
    }
}

/// push_frame: a send, a send to oneself, and the ack of that one, as the app writes them.
fn frames() {
    let (id, own) = (Uuid::new_v4(), Uuid::new_v4());
    let send = format!(r#"{{"type":"send","id":"{id}","to":"bob","kind":"message","body":"c2VhbGVk"}}"#);
    write("push_frame", "send", send.as_bytes());
    let send_from =
        format!(r#"{{"type":"send","id":"{own}","from":"alice","to":"alice","kind":"key_confirm","body":""}}"#);
    write("push_frame", "send_from", send_from.as_bytes());
    write(
        "push_frame",
        "ack",
        format!(r#"{{"type":"ack","ids":["{own}"]}}"#).as_bytes(),
    );
}

/// log_record: a segment the log store wrote (envelopes, then an ack), each of its records, and their payloads.
fn log_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), SyncMode::Flush).unwrap();
    let kinds = [
        EnvelopeKind::ChatRequest,
        EnvelopeKind::KeyTransfer,
        EnvelopeKind::Message,
    ];
    let ids: Vec<Uuid> = kinds.iter().map(|_| Uuid::new_v4()).collect();
    for (id, kind) in ids.iter().zip(kinds) {
        let envelope = NewEnvelope {
            id: *id,
            from: "alice".into(),
            to: "bob".into(),
            kind,
            body_b64: STANDARD.encode(format!("{kind:?} body")),
            received_at: 1_767_225_600,
        };
        store.insert_envelope_within(envelope, MailboxQuota::UNLIMITED).unwrap();
    }
    store.ack("bob", &ids[..2], 1_767_225_700).unwrap();
    store.flush().unwrap();
    drop(store);
    let mailbox = dir.path().join("mailbox");
    let segment = std::fs::read_dir(&mailbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "log") && std::fs::metadata(p).unwrap().len() > 0)
        .expect("a written segment");
    let bytes = std::fs::read(segment).unwrap();
    write("log_record", "segment", &bytes);
    let mut at = 0;
    let mut n = 0;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let record = &bytes[at..at + 8 + len];
        write("log_record", &format!("record_{n}"), record);
        write("log_record", &format!("payload_{n}"), &record[8..]);
        at += 8 + len;
        n += 1;
    }
}

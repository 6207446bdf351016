//! Known-answer vectors: fixed inputs → fixed outputs, stored in `tests/vectors/*.json`.
//! A change of format fails here. To regenerate after an intended change:
//! `MAGPIE_REGEN_VECTORS=1 cargo test -p magpie-proto --test vectors` (and update docs/PROTOCOL.md).
// Helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::*;
use magpie_proto::encoding::{hex, unhex};
use magpie_proto::keys::*;
use magpie_proto::*;
use serde_json::{json, Value};

fn check(name: &str, computed: Value) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name);
    if std::env::var_os("MAGPIE_REGEN_VECTORS").is_some() {
        let mut text = serde_json::to_string_pretty(&computed).unwrap();
        text.push('\n');
        std::fs::write(&path, text).unwrap();
        return;
    }
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(stored, computed, "{name} differs from the stored vector");
}

fn bytes32(b: u8) -> [u8; 32] {
    std::array::from_fn(|i| b.wrapping_add(i as u8))
}

/// X25519 public key of a raw private key, via OpenSSL directly (independent of the crate's code path).
fn x25519_public(private: &[u8; 32]) -> Vec<u8> {
    let key = openssl::pkey::PKey::private_key_from_raw_bytes(private, openssl::pkey::Id::X25519).unwrap();
    key.raw_public_key().unwrap()
}

fn x25519_dh(private: &[u8; 32], public: &[u8]) -> [u8; 32] {
    let ours = openssl::pkey::PKey::private_key_from_raw_bytes(private, openssl::pkey::Id::X25519).unwrap();
    let theirs = openssl::pkey::PKey::public_key_from_raw_bytes(public, openssl::pkey::Id::X25519).unwrap();
    let mut d = openssl::derive::Deriver::new(&ours).unwrap();
    d.set_peer(&theirs).unwrap();
    d.derive_to_vec().unwrap().try_into().unwrap()
}

#[test]
fn kdf_vector() {
    let k = bytes32(0x00);
    let ea_private = bytes32(0x40);
    let eb_private = bytes32(0x80);
    let transcript = bytes32(0xc0);
    let ea_public = x25519_public(&ea_private);
    let eb_public = x25519_public(&eb_private);
    let dh = x25519_dh(&ea_private, &eb_public);
    assert_eq!(dh, x25519_dh(&eb_private, &ea_public));
    let keys = derive_session_keys(
        &SessionSecret::from_bytes(k),
        &SharedSecret::from_bytes(dh),
        &transcript,
    )
    .unwrap();
    let mac = confirm_mac(&keys.confirm, &transcript).unwrap();
    check(
        "kdf.json",
        json!({
            "description": "root = HKDF-SHA256(ikm = K || dh, salt = T, info = \"magpie v1 session\"); chain, confirm keys and session id by HKDF-Expand(root, label); confirm MAC = HMAC-SHA256(confirm, \"confirm\" || T)",
            "input": {
                "K": hex(&k),
                "eA_private": hex(&ea_private),
                "eB_private": hex(&eb_private),
                "T": hex(&transcript),
            },
            "output": {
                "eA_public": hex(&ea_public),
                "eB_public": hex(&eb_public),
                "dh": hex(&dh),
                "root": hex(keys.root.expose_secret()),
                "chain_initiator_to_responder": hex(keys.initiator_chain.expose_secret()),
                "chain_responder_to_initiator": hex(keys.responder_chain.expose_secret()),
                "confirm_key": hex(keys.confirm.expose_secret()),
                "session_id": hex(&keys.session_id),
                "confirm_mac": hex(&mac),
            }
        }),
    );
}

#[test]
fn ratchet_and_message_vector() {
    let ck0 = ChainKey::from_bytes(bytes32(0x10));
    let mut steps = Vec::new();
    let mut ck = ck0.clone();
    let mut first_mk = None;
    for n in 0..3u64 {
        let (mk, next) = ratchet_step(&ck).unwrap();
        steps.push(json!({ "n": n, "ck": hex(ck.expose_secret()), "mk": hex(mk.expose_secret()) }));
        if n == 0 {
            first_mk = Some(mk);
        }
        ck = next;
    }
    let mk0 = first_mk.unwrap();
    let session_id = [0x5au8; 16];
    let plaintext = Plaintext {
        id: uuid::Uuid::parse_str("7f1c2b3a-4d5e-4f60-8172-8394a5b6c7d8").unwrap(),
        kind: MessageKind::Text,
        body: "hello bob".into(),
        sent_at: T0,
    };
    let encoded = plaintext.encode().unwrap();
    let sealed = seal_with_key(&mk0, &session_id, "alice", 0, &encoded).unwrap();
    let opened = open_with_key(&mk0, &session_id, "alice", 0, &sealed).unwrap();
    assert_eq!(Plaintext::decode(&opened).unwrap(), plaintext);
    check(
        "ratchet.json",
        json!({
            "description": "mk_n || ck_{n+1} = AES-256-CTR(key = ck_n, counter block = 0^128) of 64 zero bytes; nonce_n = 0x00000000 || u64be(n); AD = canonical(\"magpie v1 message\", session_id, sender, n); AES-256-GCM(mk_n) of the plaintext bytes 0x02 || kind || id || u64be(sent_at) || u32be(len) || body || zeros to the bucket (plaintext.json)",
            "input": {
                "ck0": hex(ck0.expose_secret()),
                "session_id": hex(&session_id),
                "sender": "alice",
                "n": 0,
                "plaintext": {
                    "id": plaintext.id.to_string(),
                    "kind": "text",
                    "body": plaintext.body,
                    "sent_at": plaintext.sent_at,
                },
            },
            "output": {
                "steps": steps,
                "ck3": hex(ck.expose_secret()),
                "nonce0": hex(&message_nonce(0)),
                "nonce258": hex(&message_nonce(258)),
                "ad0": hex(&message_ad(&session_id, "alice", 0)),
                "plaintext_bytes": hex(&encoded),
                "ciphertext_and_tag0": hex(&sealed),
            }
        }),
    );
}

/// The padded plaintext format: sizes by bucket, and the unpadded format of earlier clients still read.
#[test]
fn plaintext_padding_vector() {
    let id = uuid::Uuid::parse_str("7f1c2b3a-4d5e-4f60-8172-8394a5b6c7d8").unwrap();
    let text = |body: &str| Plaintext {
        id,
        kind: MessageKind::Text,
        body: body.into(),
        sent_at: T0,
    };
    let receipt = Plaintext {
        kind: MessageKind::Receipt,
        body: id.to_string(),
        ..text("")
    };
    let sized = |p: &Plaintext| {
        let bytes = p.encode().unwrap();
        assert_eq!(&Plaintext::decode(&bytes).unwrap(), p);
        // What the wire carries: the padded plaintext and the 16-byte tag.
        json!({ "body_len": p.body.len(), "plaintext_len": bytes.len(), "ciphertext_len": bytes.len() + 16 })
    };
    let one = text("a");
    let unpadded = unhex("01017f1c2b3a4d5e4f6081728394a5b6c7d8000000006955b90068656c6c6f20626f62").unwrap();
    assert_eq!(Plaintext::decode(&unpadded).unwrap(), text("hello bob"));
    check(
        "plaintext.json",
        json!({
            "description": "plaintext = 0x02 || kind (1 text, 2 receipt, 3 typing) || id || u64be(sent_at) || u32be(len) || body || zero bytes up to the smallest of 256, 512, ... 32768 that holds it, else 32798 (a full 32 KiB body); 0x01 || kind || id || u64be(sent_at) || body (unpadded, earlier clients) is still read",
            "one_byte_text": { "bytes": hex(&one.encode().unwrap()), "sizes": sized(&one) },
            "sizes": {
                "text_1_byte": sized(&one),
                "text_200_bytes": sized(&text(&"a".repeat(200))),
                "receipt_of_one_id": sized(&receipt),
                "text_226_bytes": sized(&text(&"a".repeat(226))),
                "text_227_bytes": sized(&text(&"a".repeat(227))),
                "text_32768_bytes": sized(&text(&"a".repeat(MAX_BODY_LEN))),
            },
            "unpadded_hello_bob": hex(&unpadded),
        }),
    );
}

#[test]
fn safety_number_vector() {
    let w = world();
    let alice_spki = w.alice.certificate().public_key_der().unwrap();
    let bob_spki = w.bob.certificate().public_key_der().unwrap();
    let real = SafetyNumber::compute((w.alice.username(), &alice_spki), (w.bob.username(), &bob_spki));
    let carol = Username::canonical("carol").unwrap();
    let dave = Username::canonical("dave").unwrap();
    let synthetic = SafetyNumber::compute((&carol, &[0x01; 32]), (&dave, &[0x02; 32]));
    check(
        "safety.json",
        json!({
            "description": "per side: h = SHA-512(0x0001 || u32be(len spki) || spki || u32be(len name) || name), then 5200 x h = SHA-512(h || spki); digits = six 5-byte BE integers of h[0..30] mod 100000, zero-padded; both halves sorted ascending and concatenated",
            "cases": [
                {
                    "a": { "username": "alice", "spki_der": hex(&alice_spki) },
                    "b": { "username": "bob", "spki_der": hex(&bob_spki) },
                    "safety_number": real.to_string(),
                    "qr_payload": real.qr_payload(),
                },
                {
                    "a": { "username": "carol", "spki_der": hex(&[0x01; 32]) },
                    "b": { "username": "dave", "spki_der": hex(&[0x02; 32]) },
                    "safety_number": synthetic.to_string(),
                    "qr_payload": synthetic.qr_payload(),
                }
            ]
        }),
    );
    // The stored SPKI inputs give the same answer from the file alone.
    let stored: Value = serde_json::from_str(
        &std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/safety.json"))
            .unwrap(),
    )
    .unwrap();
    for case in stored["cases"].as_array().unwrap() {
        let a = Username::canonical(case["a"]["username"].as_str().unwrap()).unwrap();
        let b = Username::canonical(case["b"]["username"].as_str().unwrap()).unwrap();
        let sa = unhex(case["a"]["spki_der"].as_str().unwrap()).unwrap();
        let sb = unhex(case["b"]["spki_der"].as_str().unwrap()).unwrap();
        assert_eq!(
            SafetyNumber::compute((&b, &sb), (&a, &sa)).to_string(),
            case["safety_number"]
        );
    }
}

#[test]
fn canonical_encoding_vector() {
    let request = ChatRequest {
        v: 1,
        request_id: uuid::Uuid::parse_str("0f8e7d6c-5b4a-4938-a716-152433425160").unwrap(),
        from: "alice".into(),
        to: "bob".into(),
        sent_at: T0,
        cert_chain: vec![vec![0x30, 0x03, 0x02, 0x01, 0x01]],
        signature: vec![0xaa, 0xbb],
    };
    let accept = ChatAccept {
        v: 1,
        request_id: request.request_id,
        from: "bob".into(),
        to: "alice".into(),
        ephemeral: vec![0x09; 32],
        signature: vec![0xcc],
    };
    let transfer = KeyTransfer {
        v: 1,
        request_id: request.request_id,
        from: "alice".into(),
        to: "bob".into(),
        wrapped_key: vec![0x77; 4],
        ephemeral: vec![0x08; 32],
        signature: vec![0xdd],
    };
    let decline = ChatDecline {
        v: 1,
        request_id: request.request_id,
        from: "bob".into(),
        to: "alice".into(),
        signature: vec![],
    };
    check(
        "canonical.json",
        json!({
            "description": "canonical bytes: u32be(len label) || label, then the fields in order; byte strings as u32be(len) || bytes; v as u32be; sent_at as u64be; lists as u32be(count) then each element",
            "chat_request": {
                "json": String::from_utf8(request.to_json().unwrap()).unwrap(),
                "signed_bytes": hex(&request.signed_bytes()),
                "canonical_bytes": hex(&request.canonical_bytes()),
            },
            "chat_accept": {
                "json": String::from_utf8(accept.to_json().unwrap()).unwrap(),
                "signed_bytes": hex(&accept.signed_bytes()),
            },
            "chat_decline": { "signed_bytes": hex(&decline.signed_bytes()) },
            "key_transfer": {
                "json": String::from_utf8(transfer.to_json().unwrap()).unwrap(),
                "signed_bytes": hex(&transfer.signed_bytes()),
            },
        }),
    );
}

/// What a client signs to log in, and one signature that verifies (RSA-PSS is randomized: any valid signature
/// does; the stored one must keep verifying with Alice's fixed key).
#[test]
fn login_vector() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let w = world();
    let ca_fingerprint = bytes32(0x10);
    let nonce = bytes32(0x20);
    let signed = magpie_proto::login::login_signed_bytes(&ca_fingerprint, "alice", &nonce);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/login.json");
    let signature = match std::fs::read_to_string(&path) {
        Ok(text) if std::env::var_os("MAGPIE_REGEN_VECTORS").is_none() => {
            let stored: Value = serde_json::from_str(&text).unwrap();
            b64.decode(stored["signature_b64"].as_str().unwrap()).unwrap()
        }
        _ => w.alice.identity().sign_login(&ca_fingerprint, &nonce).unwrap(),
    };
    w.alice
        .certificate()
        .verify_login(&ca_fingerprint, "alice", &nonce, &signature)
        .unwrap();
    check(
        "login.json",
        json!({
            "description": "signed = lp(\"magpie v1 login\") || lp(ca_fingerprint) || lp(username) || lp(nonce), lp(x) = u32be(len x) || x; signature = RSA-PSS-SHA256 (MGF1-SHA256, salt 32) with the user's key (tests/vectors/keys/alice.pem); the request carries nonce and signature in standard base64 with padding",
            "ca_fingerprint_hex": hex(&ca_fingerprint),
            "username": "alice",
            "nonce_b64": b64.encode(nonce),
            "signed_bytes_hex": hex(&signed),
            "signature_b64": b64.encode(&signature),
        }),
    );
}

#[test]
fn file_vector() {
    use magpie_proto::file::{seal_segment, FileLayout};
    use openssl::sha::sha256;
    let key = FileKey::from_bytes(bytes32(0x40));
    let seal = |plain: &[u8]| -> Vec<Vec<u8>> {
        let layout = FileLayout::new(plain.len() as u64);
        let mut start = 0;
        (0..layout.segments())
            .map(|i| {
                let end = start + layout.plain_len(i);
                let sealed = seal_segment(&key, &layout, i, &plain[start..end]).unwrap();
                start = end;
                sealed
            })
            .collect()
    };
    let pattern: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let segments = seal(&pattern);
    let blob = segments.concat();
    check(
        "file.json",
        json!({
            "description": "key = 32 bytes; segment i = plaintext[i*65536, (i+1)*65536) (an empty file is one empty segment); nonce_i = u64be(i) || u32be(1 if last else 0); AD = u32be(14) || \"magpie v1 file\"; blob = AES-256-GCM(key, nonce_i, AD, segment i) || tag_i for each segment in order",
            "key": hex(key.expose_secret()),
            "ad": hex(&[&14u32.to_be_bytes()[..], b"magpie v1 file"].concat()),
            "empty_file": { "blob": hex(&seal(&[]).concat()) },
            "abc": { "plaintext": hex(b"abc"), "nonce_0": "000000000000000000000001", "blob": hex(&seal(b"abc").concat()) },
            "pattern_70000": {
                "plaintext": "byte i = i mod 251, 70000 bytes",
                "segments": segments.len(),
                "sealed_len": blob.len(),
                "nonces": ["000000000000000000000000", "000000000000000100000001"],
                "segment_sha256": segments.iter().map(|s| hex(&sha256(s))).collect::<Vec<_>>(),
                "blob_sha256": hex(&sha256(&blob)),
            },
        }),
    );
}

#[test]
fn backup_vector() {
    use magpie_proto::backup::{BackupHeader, BackupKey, KdfParams};
    let kdf = KdfParams {
        log2_n: 10,
        r: 8,
        p: 1,
        salt: std::array::from_fn(|i| 0x10 + i as u8),
    };
    let passphrase = "correct horse battery staple";
    let key = BackupKey::derive(passphrase, &kdf).unwrap();
    let mut header = BackupHeader::new(kdf, &key).unwrap();
    header.segment_bytes = 16;
    let payload = b"forty bytes of payload, in 3 segments!!!"; // 16 + 16 + 8
    assert_eq!(payload.len(), 40);
    let segments: Vec<Vec<u8>> = payload
        .chunks(16)
        .enumerate()
        .map(|(i, part)| header.seal_segment(&key, i as u64, i == 2, part).unwrap())
        .collect();
    let mut file = header.encode().to_vec();
    file.extend(segments.concat());
    check(
        "backup.json",
        json!({
            "description": "header = \"MAGPIEBK\" || u16be(1) || u8(1: scrypt) || u8(log2 N) || u32be(r) || u32be(p) || salt(16) || u32be(segment bytes) || key check(16); key = scrypt(passphrase, salt, N, r, p, 32); key check = HMAC-SHA256(key, \"magpie v1 backup key check\")[0..16]; nonce_i = u64be(i) || u32be(1 if last else 0); AD = u32be(16) || \"magpie v1 backup\" || header; file = header || AES-256-GCM(key, nonce_i, AD, segment i) || tag_i ...",
            "passphrase": passphrase,
            "scrypt": { "n": 1024, "r": 8, "p": 1, "salt": hex(&kdf.salt) },
            "key_check": hex(&key.check_value().unwrap()),
            "segment_bytes": 16,
            "header": hex(&header.encode()),
            "payload": hex(payload),
            "file": hex(&file),
        }),
    );
}

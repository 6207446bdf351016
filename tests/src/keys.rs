//! Keys without the wait: RSA-3072 key generation takes up to 2 s, so names with a fixed key in proto's test
//! vectors get that one, and any other name gets one key made once per test binary.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use magpie_proto::{Certificate, CertificateAuthority, Credential, Identity, Initiator, Responder, Session, Username};

/// A username that must parse.
pub fn username(name: &str) -> Username {
    Username::canonical(name).unwrap()
}

fn vector_key(name: &str) -> Option<&'static str> {
    Some(match name {
        "alice" => include_str!("../../crates/proto/tests/vectors/keys/alice.pem"),
        "bob" => include_str!("../../crates/proto/tests/vectors/keys/bob.pem"),
        "mallory" => include_str!("../../crates/proto/tests/vectors/keys/mallory.pem"),
        "magpie-ca" => include_str!("../../crates/proto/tests/vectors/keys/ca1.pem"),
        _ => return None,
    })
}

/// `name`'s identity: a fixed key for alice, bob, mallory and magpie-ca, else one generated the first time the name is asked
/// for in this process.
pub fn identity(name: &str) -> Identity {
    let der = match vector_key(name) {
        Some(pem) => openssl::pkey::PKey::private_key_from_pem(pem.as_bytes())
            .unwrap()
            .private_key_to_pkcs8()
            .unwrap(),
        None => generated(name),
    };
    Identity::from_pkcs8_der(username(name), &der).unwrap()
}

fn generated(name: &str) -> Vec<u8> {
    static MADE: OnceLock<Mutex<HashMap<String, Vec<u8>>>> = OnceLock::new();
    let made = MADE.get_or_init(Mutex::default);
    if let Some(der) = made.lock().unwrap().get(name) {
        return der.clone();
    }
    let der = Identity::generate(username(name))
        .unwrap()
        .to_pkcs8_der()
        .unwrap()
        .expose_secret()
        .to_vec();
    made.lock().unwrap().entry(name.to_owned()).or_insert(der).clone()
}

/// A test CA on proto's fixed CA key, made at `at`.
pub fn ca(at: SystemTime) -> CertificateAuthority {
    CertificateAuthority::create_with_key("Test CA", identity("magpie-ca"), at).unwrap()
}

/// Alice and Bob with certificates from one test CA, and a session between them from a real handshake.
#[derive(Debug)]
pub struct Pair {
    pub alice: Credential,
    pub bob: Credential,
    pub ca: Certificate,
    pub alice_session: Session,
    pub bob_session: Session,
    /// When the session was made.
    pub now: SystemTime,
}

/// [`pair_at`] a fixed time (2026-01-01), for tests that compare times.
pub fn pair() -> Pair {
    pair_at(SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600))
}

/// The CA and the certificates made at `t0`, the session a minute later.
pub fn pair_at(t0: SystemTime) -> Pair {
    let now = t0 + Duration::from_secs(60);
    let ca = ca(t0);
    let credential = |name: &str| {
        let identity = identity(name);
        let certificate = ca.issue(&identity.csr().unwrap(), t0).unwrap();
        Credential::new(identity, certificate).unwrap()
    };
    let (alice, bob) = (credential("alice"), credential("bob"));
    let trust = ca.trust_anchor().unwrap();
    let (a1, request) = Initiator::request(&alice, bob.username(), now).unwrap();
    let (b1, accept) = Responder::on_request(&bob, &trust, &request, None, now)
        .unwrap()
        .accept()
        .unwrap();
    let (a2, transfer) = a1
        .on_accept(&accept, &[bob.certificate().clone()], &trust, None, now)
        .unwrap();
    let (bob_session, confirm) = b1.on_key_transfer(&transfer, now).unwrap();
    Pair {
        alice_session: a2.on_confirm(&confirm, now).unwrap(),
        bob_session,
        ca: ca.certificate().clone(),
        alice,
        bob,
        now,
    }
}

//! Shared fixtures: fixed RSA-3072 keys from `tests/vectors/keys` (generating them costs seconds), two CAs,
//! and certificates for Alice, Bob and Mallory, made once per test binary.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use magpie_proto::*;

/// 2026-01-01T00:00:00Z: every fixture certificate is issued at this time.
pub const T0: u64 = 1_767_225_600;

pub fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

pub fn now() -> SystemTime {
    at(T0 + 60)
}

pub fn key_pem(name: &str) -> &'static str {
    match name {
        "alice" => include_str!("../vectors/keys/alice.pem"),
        "bob" => include_str!("../vectors/keys/bob.pem"),
        "mallory" => include_str!("../vectors/keys/mallory.pem"),
        "ca1" => include_str!("../vectors/keys/ca1.pem"),
        "ca2" => include_str!("../vectors/keys/ca2.pem"),
        other => panic!("no fixture key {other}"),
    }
}

pub fn pkcs8_der(name: &str) -> Vec<u8> {
    let key = openssl::pkey::PKey::private_key_from_pem(key_pem(name).as_bytes()).unwrap();
    key.private_key_to_pkcs8().unwrap()
}

pub fn identity(key: &str, username: &str) -> Identity {
    Identity::from_pkcs8_der(Username::canonical(username).unwrap(), &pkcs8_der(key)).unwrap()
}

pub struct World {
    pub ca: CertificateAuthority,
    pub other_ca: CertificateAuthority,
    pub trust: TrustAnchor,
    pub alice: Credential,
    pub bob: Credential,
    pub mallory: Credential,
    /// Bob's key certified by the other CA.
    pub bob_other_ca: Certificate,
}

impl World {
    pub fn name(&self, s: &str) -> Username {
        Username::canonical(s).unwrap()
    }
}

pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let t0 = at(T0);
        let ca =
            CertificateAuthority::create_with_key("Magpie Test Relay CA", identity("ca1", "magpie-ca"), t0).unwrap();
        let other_ca =
            CertificateAuthority::create_with_key("Other Relay CA", identity("ca2", "magpie-ca"), t0).unwrap();
        let cred = |ca: &CertificateAuthority, key: &str, user: &str| {
            let id = identity(key, user);
            let cert = ca.issue(&id.csr().unwrap(), t0).unwrap();
            Credential::new(id, cert).unwrap()
        };
        let bob_id = identity("bob", "bob");
        let bob_other_ca = other_ca.issue(&bob_id.csr().unwrap(), t0).unwrap();
        World {
            trust: ca.trust_anchor().unwrap(),
            alice: cred(&ca, "alice", "alice"),
            bob: cred(&ca, "bob", "bob"),
            mallory: cred(&ca, "mallory", "mallory"),
            bob_other_ca,
            ca,
            other_ca,
        }
    })
}

/// A full handshake Alice → Bob at `now()`; returns (alice's session, bob's session).
pub fn handshake() -> (Session, Session) {
    let w = world();
    let (a1, req) = Initiator::request(&w.alice, w.bob.username(), now()).unwrap();
    let incoming = Responder::on_request(&w.bob, &w.trust, &req, None, now()).unwrap();
    let (b1, accept) = incoming.accept().unwrap();
    let bob_chain = [w.bob.certificate().clone()];
    let (a2, transfer) = a1.on_accept(&accept, &bob_chain, &w.trust, None, now()).unwrap();
    let (bob, confirm) = b1.on_key_transfer(&transfer, now()).unwrap();
    let alice = a2.on_confirm(&confirm, now()).unwrap();
    (alice, bob)
}

/// Flips the lowest bit of byte `i` (wrapping) of `bytes`.
pub fn flip(bytes: &mut [u8], i: usize) {
    let len = bytes.len();
    bytes[i % len] ^= 0x01;
}

/// Flips the lowest bit of the first byte of a string field (it stays ASCII).
pub fn flip_str(s: &str) -> String {
    let mut b = s.as_bytes().to_vec();
    b[0] ^= 0x01;
    String::from_utf8(b).unwrap()
}

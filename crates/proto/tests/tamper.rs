//! The tamper matrix: every case is a named test that must return the right error (and never panic).
// Helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use magpie_proto::*;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Signer};

fn bob_chain() -> Vec<Certificate> {
    vec![world().bob.certificate().clone()]
}

fn request() -> (AwaitingAccept, ChatRequest) {
    Initiator::request(&world().alice, world().bob.username(), now()).unwrap()
}

fn on_request(req: &ChatRequest) -> Result<IncomingRequest> {
    Responder::on_request(&world().bob, &world().trust, req, None, now())
}

fn accepted() -> (AwaitingAccept, AwaitingKeyTransfer, ChatAccept) {
    let (a1, req) = request();
    let (b1, accept) = on_request(&req).unwrap().accept().unwrap();
    (a1, b1, accept)
}

fn declined() -> (AwaitingAccept, ChatDecline) {
    let (a1, req) = request();
    (a1, on_request(&req).unwrap().decline().unwrap())
}

fn transferred() -> (AwaitingConfirm, AwaitingKeyTransfer, KeyTransfer) {
    let (a1, b1, accept) = accepted();
    let (a2, kt) = a1
        .on_accept(&accept, &bob_chain(), &world().trust, None, now())
        .unwrap();
    (a2, b1, kt)
}

fn confirmed() -> (AwaitingConfirm, KeyConfirm) {
    let (a2, b1, kt) = transferred();
    let (_bob, confirm) = b1.on_key_transfer(&kt, now()).unwrap();
    (a2, confirm)
}

/// Runs `tamper` on a fresh ChatAccept and feeds it to its initiator.
fn with_accept(tamper: impl FnOnce(&mut ChatAccept)) -> Result<(AwaitingConfirm, KeyTransfer)> {
    let (a1, _b1, mut accept) = accepted();
    tamper(&mut accept);
    a1.on_accept(&accept, &bob_chain(), &world().trust, None, now())
}

fn with_request(tamper: impl FnOnce(&mut ChatRequest)) -> Result<IncomingRequest> {
    let (_a1, mut req) = request();
    tamper(&mut req);
    on_request(&req)
}

fn with_decline(tamper: impl FnOnce(&mut ChatDecline)) -> Result<Declined> {
    let (a1, mut decline) = declined();
    tamper(&mut decline);
    a1.on_decline(&decline, &bob_chain(), &world().trust, None, now())
}

fn with_transfer(tamper: impl FnOnce(&mut KeyTransfer)) -> Result<(Session, KeyConfirm)> {
    let (_a2, b1, mut kt) = transferred();
    tamper(&mut kt);
    b1.on_key_transfer(&kt, now())
}

fn with_confirm(tamper: impl FnOnce(&mut KeyConfirm)) -> Result<Session> {
    let (a2, mut confirm) = confirmed();
    tamper(&mut confirm);
    a2.on_confirm(&confirm, now())
}

fn flip_uuid(id: &mut uuid::Uuid) {
    let mut b = *id.as_bytes();
    b[15] ^= 1;
    *id = uuid::Uuid::from_bytes(b);
}

fn pss_sign(key: &str, data: &[u8]) -> Vec<u8> {
    let key = PKey::private_key_from_pem(key_pem(key).as_bytes()).unwrap();
    let mut s = Signer::new(MessageDigest::sha256(), &key).unwrap();
    s.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
    s.set_rsa_pss_saltlen(RsaPssSaltlen::custom(32)).unwrap();
    s.set_rsa_mgf1_md(MessageDigest::sha256()).unwrap();
    s.update(data).unwrap();
    s.sign_to_vec().unwrap()
}

/// A credential for `name` on `key`'s key, issued by the real CA (an impostor the relay should never make).
fn impostor(key: &str, name: &str) -> Credential {
    let id = identity(key, name);
    let cert = world().ca.issue(&id.csr().unwrap(), at(T0)).unwrap();
    Credential::new(id, cert).unwrap()
}

macro_rules! expect {
    ($result:expr, $pat:pat) => {{
        match $result {
            Err($pat) => {}
            Err(other) => panic!("expected {}, got error {other:?}", stringify!($pat)),
            Ok(_) => panic!("expected {}, got Ok", stringify!($pat)),
        }
    }};
}

// ---------------------------------------------------------------- ChatRequest fields

#[test]
fn request_flipped_v() {
    expect!(with_request(|r| r.v ^= 1), Error::UnsupportedVersion(0));
}

#[test]
fn request_flipped_request_id() {
    expect!(with_request(|r| flip_uuid(&mut r.request_id)), Error::BadSignature);
}

#[test]
fn request_flipped_from() {
    // "alice" → "`lice": not a username at all.
    expect!(with_request(|r| r.from = flip_str(&r.from)), Error::InvalidUsername(_));
}

#[test]
fn request_from_renamed_to_other_user() {
    expect!(
        with_request(|r| r.from = "mallory".into()),
        Error::BadCertificate(CertProblem::WrongName { .. })
    );
}

#[test]
fn request_flipped_to() {
    expect!(with_request(|r| r.to = flip_str(&r.to)), Error::WrongPeer);
}

#[test]
fn request_flipped_sent_at() {
    expect!(with_request(|r| r.sent_at ^= 1), Error::BadSignature);
}

#[test]
fn request_flipped_cert_chain_every_byte() {
    let (_a1, req) = request();
    let len = req.cert_chain[0].len();
    // Every byte of the DER: header, names, validity, key, extensions, signature.
    for i in 0..len {
        let mut r = req.clone();
        flip(&mut r.cert_chain[0], i);
        expect!(on_request(&r), Error::BadCertificate(_));
    }
}

#[test]
fn request_flipped_signature() {
    expect!(with_request(|r| flip(&mut r.signature, 100)), Error::BadSignature);
}

#[test]
fn request_signed_by_wrong_key() {
    expect!(
        with_request(|r| r.signature = pss_sign("mallory", &r.signed_bytes())),
        Error::BadSignature
    );
}

#[test]
fn request_empty_or_long_chain() {
    expect!(with_request(|r| r.cert_chain.clear()), Error::Malformed(_));
    expect!(
        with_request(|r| r.cert_chain = vec![r.cert_chain[0].clone(); MAX_CHAIN_LEN + 1]),
        Error::Malformed(_)
    );
}

#[test]
fn request_stale_or_future_dated() {
    let w = world();
    let (_, req) = request();
    let late = now() + Duration::from_secs(REQUEST_MAX_AGE_SECS + 1);
    expect!(
        Responder::on_request(&w.bob, &w.trust, &req, None, late),
        Error::BadTimestamp
    );
    let early = now() - Duration::from_secs(MAX_CLOCK_SKEW_SECS + 1);
    expect!(
        Responder::on_request(&w.bob, &w.trust, &req, None, early),
        Error::BadTimestamp
    );
}

// ---------------------------------------------------------------- ChatAccept fields

#[test]
fn accept_flipped_v() {
    expect!(with_accept(|a| a.v ^= 1), Error::UnsupportedVersion(0));
}

#[test]
fn accept_flipped_request_id() {
    expect!(with_accept(|a| flip_uuid(&mut a.request_id)), Error::WrongSession);
}

#[test]
fn accept_flipped_from() {
    expect!(with_accept(|a| a.from = flip_str(&a.from)), Error::WrongPeer);
}

#[test]
fn accept_flipped_to() {
    expect!(with_accept(|a| a.to = flip_str(&a.to)), Error::WrongPeer);
}

#[test]
fn accept_flipped_ephemeral() {
    expect!(with_accept(|a| flip(&mut a.ephemeral, 3)), Error::BadSignature);
}

#[test]
fn accept_truncated_ephemeral() {
    expect!(with_accept(|a| a.ephemeral.truncate(31)), Error::Malformed(_));
}

#[test]
fn accept_flipped_signature() {
    expect!(with_accept(|a| flip(&mut a.signature, 7)), Error::BadSignature);
}

#[test]
fn accept_signed_by_wrong_key() {
    // Mallory holds a certificate named "bob" and answers Alice's request; Alice checks against the
    // directory's (real) Bob.
    let w = world();
    let fake_bob = impostor("mallory", "bob");
    let (a1, req) = request();
    let (_b1, accept) = Responder::on_request(&fake_bob, &w.trust, &req, None, now())
        .unwrap()
        .accept()
        .unwrap();
    expect!(
        a1.on_accept(&accept, &bob_chain(), &w.trust, None, now()),
        Error::BadSignature
    );
}

#[test]
fn accept_with_certificate_from_another_ca() {
    let w = world();
    let (a1, _b1, accept) = accepted();
    expect!(
        a1.on_accept(&accept, std::slice::from_ref(&w.bob_other_ca), &w.trust, None, now()),
        Error::BadCertificate(CertProblem::Untrusted(_))
    );
}

#[test]
fn accept_with_certificate_whose_cn_is_not_the_expected_user() {
    let w = world();
    let (a1, _b1, accept) = accepted();
    expect!(
        a1.on_accept(&accept, &[w.mallory.certificate().clone()], &w.trust, None, now()),
        Error::BadCertificate(CertProblem::WrongName { .. })
    );
}

#[test]
fn accept_with_changed_key() {
    let w = world();
    let (a1, _b1, accept) = accepted();
    let pinned = w.mallory.fingerprint();
    expect!(
        a1.on_accept(&accept, &bob_chain(), &w.trust, Some(&pinned), now()),
        Error::KeyChanged { .. }
    );
}

// ---------------------------------------------------------------- ChatDecline fields

#[test]
fn decline_flipped_v() {
    expect!(with_decline(|d| d.v ^= 1), Error::UnsupportedVersion(0));
}

#[test]
fn decline_flipped_request_id() {
    expect!(with_decline(|d| flip_uuid(&mut d.request_id)), Error::WrongSession);
}

#[test]
fn decline_flipped_from() {
    expect!(with_decline(|d| d.from = flip_str(&d.from)), Error::WrongPeer);
}

#[test]
fn decline_flipped_to() {
    expect!(with_decline(|d| d.to = flip_str(&d.to)), Error::WrongPeer);
}

#[test]
fn decline_flipped_signature() {
    expect!(with_decline(|d| flip(&mut d.signature, 9)), Error::BadSignature);
}

#[test]
fn decline_signed_by_wrong_key() {
    let w = world();
    let fake_bob = impostor("mallory", "bob");
    let (a1, req) = request();
    let decline = Responder::on_request(&fake_bob, &w.trust, &req, None, now())
        .unwrap()
        .decline()
        .unwrap();
    expect!(
        a1.on_decline(&decline, &bob_chain(), &w.trust, None, now()),
        Error::BadSignature
    );
}

// ---------------------------------------------------------------- KeyTransfer fields

#[test]
fn key_transfer_flipped_v() {
    expect!(with_transfer(|k| k.v ^= 1), Error::UnsupportedVersion(0));
}

#[test]
fn key_transfer_flipped_request_id() {
    expect!(with_transfer(|k| flip_uuid(&mut k.request_id)), Error::WrongSession);
}

#[test]
fn key_transfer_flipped_from() {
    expect!(with_transfer(|k| k.from = flip_str(&k.from)), Error::WrongPeer);
}

#[test]
fn key_transfer_flipped_to() {
    expect!(with_transfer(|k| k.to = flip_str(&k.to)), Error::WrongPeer);
}

#[test]
fn key_transfer_flipped_wrapped_key() {
    expect!(with_transfer(|k| flip(&mut k.wrapped_key, 200)), Error::BadSignature);
}

#[test]
fn key_transfer_flipped_ephemeral() {
    expect!(with_transfer(|k| flip(&mut k.ephemeral, 0)), Error::BadSignature);
}

#[test]
fn key_transfer_flipped_signature() {
    expect!(with_transfer(|k| flip(&mut k.signature, 0)), Error::BadSignature);
}

#[test]
fn key_transfer_signed_by_wrong_key() {
    expect!(
        with_transfer(|k| k.signature = pss_sign("mallory", &k.signed_bytes())),
        Error::BadSignature
    );
}

#[test]
fn key_transfer_with_key_wrapped_for_someone_else() {
    // Validly signed by Alice, but K is wrapped for Mallory: Bob's unwrap fails, opaquely.
    let w = world();
    let (a1, b1, accept) = accepted();
    let inputs = KeyTransferInputs {
        secret: SessionSecret::from_bytes([0x42; 32]),
        ephemeral_private: zeroize::Zeroizing::new([0x24; 32]),
        wrap_for: Some(w.mallory.certificate().clone()),
    };
    let (_a2, kt) = a1
        .on_accept_with(&accept, &bob_chain(), &w.trust, None, now(), inputs)
        .unwrap();
    expect!(b1.on_key_transfer(&kt, now()), Error::Decrypt);
}

// ---------------------------------------------------------------- KeyConfirm fields

#[test]
fn key_confirm_flipped_v() {
    expect!(with_confirm(|c| c.v ^= 1), Error::UnsupportedVersion(0));
}

#[test]
fn key_confirm_flipped_request_id() {
    expect!(with_confirm(|c| flip_uuid(&mut c.request_id)), Error::WrongSession);
}

#[test]
fn key_confirm_flipped_from() {
    expect!(with_confirm(|c| c.from = flip_str(&c.from)), Error::WrongPeer);
}

#[test]
fn key_confirm_flipped_to() {
    expect!(with_confirm(|c| c.to = flip_str(&c.to)), Error::WrongPeer);
}

#[test]
fn key_confirm_with_wrong_mac() {
    for i in [0, 13, 31] {
        expect!(with_confirm(|c| flip(&mut c.mac, i)), Error::BadConfirm);
    }
    expect!(with_confirm(|c| c.mac = vec![0; 32]), Error::BadConfirm);
    expect!(with_confirm(|c| c.mac.truncate(16)), Error::BadConfirm);
    // The MAC of another, complete handshake.
    let (_a2, other) = confirmed();
    expect!(with_confirm(|c| c.mac = other.mac.clone()), Error::BadConfirm);
}

// ---------------------------------------------------------------- certificates and CSRs

#[test]
fn request_with_certificate_from_another_ca() {
    let w = world();
    let bob = Credential::new(identity("bob", "bob"), w.bob_other_ca.clone()).unwrap();
    let (_a, req) = Initiator::request(&bob, w.alice.username(), now()).unwrap();
    expect!(
        Responder::on_request(&w.alice, &w.trust, &req, None, now()),
        Error::BadCertificate(CertProblem::Untrusted(_))
    );
}

#[test]
fn expired_certificate() {
    let w = world();
    let later = at(T0 + (USER_CERT_DAYS as u64 + 1) * 86_400);
    let (_a, req) = Initiator::request(&w.alice, w.bob.username(), later).unwrap();
    expect!(
        Responder::on_request(&w.bob, &w.trust, &req, None, later),
        Error::BadCertificate(CertProblem::Expired)
    );
    expect!(
        w.trust.verify(&bob_chain(), w.bob.username(), later),
        Error::BadCertificate(CertProblem::Expired)
    );
}

#[test]
fn not_yet_valid_certificate() {
    let w = world();
    let earlier = at(T0 - 86_400);
    let (_a, req) = Initiator::request(&w.alice, w.bob.username(), earlier).unwrap();
    expect!(
        Responder::on_request(&w.bob, &w.trust, &req, None, earlier),
        Error::BadCertificate(CertProblem::NotYetValid)
    );
}

#[test]
fn certificate_whose_cn_is_not_the_expected_user() {
    let w = world();
    expect!(
        w.trust
            .verify(&[w.mallory.certificate().clone()], w.bob.username(), now()),
        Error::BadCertificate(CertProblem::WrongName { .. })
    );
}

#[test]
fn ca_certificate_as_peer_is_refused() {
    let w = world();
    let ca_name = Username::canonical("magpie-ca").unwrap();
    expect!(
        w.trust.verify(&[w.ca.certificate().clone()], &ca_name, now()),
        Error::BadCertificate(_)
    );
}

#[test]
fn csr_with_bad_self_signature() {
    use openssl::nid::Nid;
    use openssl::x509::{X509Name, X509ReqBuilder};
    let bob_key = PKey::private_key_from_pem(key_pem("bob").as_bytes()).unwrap();
    let mallory_key = PKey::private_key_from_pem(key_pem("mallory").as_bytes()).unwrap();
    let mut name = X509Name::builder().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, "bob").unwrap();
    let name = name.build();
    let mut req = X509ReqBuilder::new().unwrap();
    req.set_subject_name(&name).unwrap();
    req.set_pubkey(&bob_key).unwrap();
    req.sign(&mallory_key, MessageDigest::sha256()).unwrap();
    let csr = Csr::from_der(&req.build().to_der().unwrap()).unwrap();
    expect!(csr.verify(), Error::BadCsr(_));
    expect!(world().ca.issue(&csr, now()), Error::BadCsr(_));
}

#[test]
fn csr_with_invalid_username_or_weak_key() {
    use openssl::nid::Nid;
    use openssl::rsa::Rsa;
    use openssl::x509::{X509Name, X509ReqBuilder};
    let make = |cn: &str, key: &PKey<openssl::pkey::Private>| {
        let mut name = X509Name::builder().unwrap();
        name.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
        let name = name.build();
        let mut req = X509ReqBuilder::new().unwrap();
        req.set_subject_name(&name).unwrap();
        req.set_pubkey(key).unwrap();
        req.sign(key, MessageDigest::sha256()).unwrap();
        Csr::from_der(&req.build().to_der().unwrap()).unwrap()
    };
    let bob_key = PKey::private_key_from_pem(key_pem("bob").as_bytes()).unwrap();
    expect!(world().ca.issue(&make("Bob", &bob_key), now()), Error::BadCsr(_));
    expect!(world().ca.issue(&make("bob\u{0}x", &bob_key), now()), Error::BadCsr(_));
    let weak = PKey::from_rsa(Rsa::generate(1024).unwrap()).unwrap();
    expect!(world().ca.issue(&make("bob", &weak), now()), Error::BadCsr(_));
}

// ---------------------------------------------------------------- messages

#[test]
fn replayed_message() {
    let (mut alice, mut bob) = handshake();
    let m = alice.seal(&Plaintext::text("once", now()).unwrap()).unwrap();
    bob.open(&m).unwrap();
    expect!(bob.open(&m), Error::Replay);
}

#[test]
fn message_from_beyond_the_skip_window() {
    let (mut alice, mut bob) = handshake();
    let mut m = None;
    for _ in 0..=MAX_SKIP + 1 {
        m = Some(alice.seal(&Plaintext::text("x", now()).unwrap()).unwrap());
    }
    expect!(bob.open(&m.unwrap()), Error::TooFarAhead);
}

#[test]
fn reflected_message() {
    let (mut alice, _bob) = handshake();
    let m = alice.seal(&Plaintext::text("to bob", now()).unwrap()).unwrap();
    expect!(alice.open(&m), Error::WrongPeer);
}

#[test]
fn tampered_message_ciphertext() {
    let (mut alice, mut bob) = handshake();
    let mut m = alice.seal(&Plaintext::text("x", now()).unwrap()).unwrap();
    flip(&mut m.ciphertext, 0);
    expect!(bob.open(&m), Error::Decrypt);
}

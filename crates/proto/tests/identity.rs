//! Identities, PKCS#8 round trips, CSRs and the CA (one fresh key generation; the rest uses fixtures).
// Helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::*;
use magpie_proto::*;

#[test]
fn generate_export_import_csr_issue() {
    let name = Username::parse("Carol").unwrap();
    let carol = Identity::generate(name.clone()).unwrap();
    let der = carol.to_pkcs8_der().unwrap();
    // Fits Windows' 2,560-byte credential blob.
    assert!(der.len() < 2_560, "{}", der.len());
    assert_eq!(format!("{der:?}"), "SecretBytes(<redacted>)");
    let again = Identity::from_pkcs8_der(name.clone(), der.expose_secret()).unwrap();
    assert_eq!(again.fingerprint().unwrap(), carol.fingerprint().unwrap());
    let dbg = format!("{carol:?}");
    assert!(dbg.contains("<redacted>") && dbg.contains("carol"), "{dbg}");

    let csr = carol.csr().unwrap();
    assert_eq!(csr.verify().unwrap(), name);
    let csr = Csr::from_der(&csr.to_der().unwrap()).unwrap();
    let w = world();
    let cert = w.ca.issue(&csr, now()).unwrap();
    let cred = Credential::new(carol, cert.clone()).unwrap();
    let peer = w.trust.verify(&[cert], &name, now()).unwrap();
    assert_eq!(peer.fingerprint(), cred.fingerprint());
    assert_eq!(peer.username(), &name);
}

#[test]
fn pkcs8_import_refuses_garbage_and_weak_keys() {
    let name = Username::canonical("carol").unwrap();
    assert!(matches!(
        Identity::from_pkcs8_der(name.clone(), b"nope"),
        Err(Error::Malformed(_))
    ));
    let weak = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    let weak = weak.private_key_to_pkcs8().unwrap();
    assert!(matches!(
        Identity::from_pkcs8_der(name.clone(), &weak),
        Err(Error::Malformed(_))
    ));
    let ec = openssl::pkey::PKey::generate_x25519()
        .unwrap()
        .private_key_to_pkcs8()
        .unwrap();
    assert!(matches!(Identity::from_pkcs8_der(name, &ec), Err(Error::Malformed(_))));
}

#[test]
fn credential_refuses_mismatched_key_or_name() {
    let w = world();
    assert!(matches!(
        Credential::new(identity("mallory", "bob"), w.bob.certificate().clone()),
        Err(Error::BadCertificate(CertProblem::KeyMismatch))
    ));
    assert!(matches!(
        Credential::new(identity("bob", "robert"), w.bob.certificate().clone()),
        Err(Error::BadCertificate(CertProblem::WrongName { .. }))
    ));
}

#[test]
fn ca_create_and_restore() {
    let ca = CertificateAuthority::create("Fresh CA", at(T0)).unwrap();
    let trust = ca.trust_anchor().unwrap();
    assert_eq!(
        trust.fingerprint().unwrap(),
        ca.certificate().sha256_fingerprint().unwrap()
    );
    let key = ca.key_to_pkcs8_der().unwrap();
    let pem = ca.certificate().to_pem().unwrap();
    let restored = CertificateAuthority::from_parts(Certificate::from_pem(&pem).unwrap(), key.expose_secret()).unwrap();
    let alice = identity("alice", "alice");
    let cert = restored.issue(&alice.csr().unwrap(), at(T0)).unwrap();
    trust.verify(&[cert], alice.username(), now()).unwrap();
    // Another CA's key does not fit this root.
    let other = world().other_ca.key_to_pkcs8_der().unwrap();
    assert!(CertificateAuthority::from_parts(ca.certificate().clone(), other.expose_secret()).is_err());
    // A user certificate is not a trust anchor.
    assert!(TrustAnchor::new(world().alice.certificate().clone()).is_err());
}

#[test]
fn username_rules() {
    assert_eq!(
        Username::parse("  ").map_err(|e| e.to_string()).unwrap_err(),
        "invalid username \"  \""
    );
    assert_eq!(Username::parse("Bob.Smith_1-2").unwrap().as_str(), "bob.smith_1-2");
    assert!(Username::parse("bo").is_err());
    assert!(Username::parse(&"a".repeat(33)).is_err());
}

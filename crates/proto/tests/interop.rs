//! Interop with an independent implementation: the `openssl` command-line tool.
// Helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use magpie_proto::*;

fn openssl_cli() -> Option<PathBuf> {
    let candidates = [PathBuf::from("/usr/bin/openssl"), PathBuf::from("openssl")];
    candidates.into_iter().find(|p| {
        Command::new(p)
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

macro_rules! require_openssl {
    () => {
        match openssl_cli() {
            Some(p) => p,
            None => {
                eprintln!("SKIPPED: the openssl command-line tool is not installed");
                return;
            }
        }
    };
}

fn run(bin: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(bin).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_owned()
}

const ATTIME: &str = "1767225660"; // T0 + 60

#[test]
fn openssl_verify_accepts_issued_certificates() {
    let bin = require_openssl!();
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "ca.pem", &w.ca.certificate().to_pem().unwrap());
    let alice = write(dir.path(), "alice.pem", &w.alice.certificate().to_pem().unwrap());
    let (ok, text) = run(
        &bin,
        &["verify", "-x509_strict", "-attime", ATTIME, "-CAfile", &ca, &alice],
    );
    assert!(ok && text.contains("OK"), "{text}");

    // And refuses Bob's certificate from the other CA.
    let other = write(dir.path(), "other.pem", &w.bob_other_ca.to_pem().unwrap());
    let (ok, text) = run(&bin, &["verify", "-attime", ATTIME, "-CAfile", &ca, &other]);
    assert!(!ok, "{text}");
}

#[test]
fn issued_certificate_has_the_designed_fields() {
    let bin = require_openssl!();
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let alice = write(dir.path(), "alice.pem", &w.alice.certificate().to_pem().unwrap());
    let (ok, text) = run(
        &bin,
        &["x509", "-in", &alice, "-noout", "-text", "-fingerprint", "-sha256"],
    );
    assert!(ok, "{text}");
    for needle in [
        "Version: 3 (0x2)",
        "Signature Algorithm: sha256WithRSAEncryption",
        "Subject: CN = alice",
        "Issuer: CN = Magpie Test Relay CA",
        "Public-Key: (3072 bit)",
        "X509v3 Basic Constraints: critical",
        "CA:FALSE",
        "X509v3 Key Usage: critical",
        "Digital Signature, Key Encipherment",
        "X509v3 Subject Key Identifier",
        "X509v3 Authority Key Identifier",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    let fp = w
        .alice
        .certificate()
        .sha256_fingerprint()
        .unwrap()
        .to_hex()
        .to_uppercase();
    let cli_fp: String = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("sha256 Fingerprint=")
                .or_else(|| l.strip_prefix("SHA256 Fingerprint="))
        })
        .unwrap()
        .replace(':', "");
    assert_eq!(cli_fp, fp);
    // A 128-bit serial, top bit set: always 16 bytes.
    let serial = w.alice.certificate().serial_hex().unwrap();
    assert_eq!(serial.len(), 32, "{serial}");
    let (nb, na) = w.alice.certificate().validity_unix().unwrap();
    assert_eq!(na - nb, USER_CERT_DAYS * 86_400 + BACKDATE_SECS);

    let ca = write(dir.path(), "ca.pem", &w.ca.certificate().to_pem().unwrap());
    let (ok, text) = run(&bin, &["x509", "-in", &ca, "-noout", "-text"]);
    assert!(ok, "{text}");
    assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
    assert!(text.contains("Certificate Sign, CRL Sign"), "{text}");
}

#[test]
fn openssl_req_verify_accepts_our_csr() {
    let bin = require_openssl!();
    let dir = tempfile::tempdir().unwrap();
    let csr = identity("alice", "alice").csr().unwrap();
    let path = write(dir.path(), "alice.csr", &csr.to_pem().unwrap());
    let (ok, text) = run(&bin, &["req", "-verify", "-noout", "-in", &path]);
    assert!(ok && text.to_lowercase().contains("verify ok"), "{text}");
    let (ok, text) = run(&bin, &["req", "-noout", "-subject", "-in", &path]);
    assert!(ok && text.contains("CN = alice"), "{text}");
}

#[test]
fn our_ca_issues_for_an_openssl_cli_csr() {
    let bin = require_openssl!();
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let key = write(dir.path(), "bob.key", key_pem("bob").as_bytes());
    let csr_path = dir.path().join("bob.csr");
    let csr_str = csr_path.to_str().unwrap();
    let (ok, text) = run(
        &bin,
        &[
            "req", "-new", "-key", &key, "-subj", "/CN=bob", "-sha256", "-out", csr_str,
        ],
    );
    assert!(ok, "{text}");
    let csr = Csr::from_pem(&std::fs::read(&csr_path).unwrap()).unwrap();
    let cert = w.ca.issue(&csr, at(T0)).unwrap();
    w.trust
        .verify(std::slice::from_ref(&cert), w.bob.username(), now())
        .unwrap();
    let ca = write(dir.path(), "ca.pem", &w.ca.certificate().to_pem().unwrap());
    let cert = write(dir.path(), "bob.pem", &cert.to_pem().unwrap());
    let (ok, text) = run(&bin, &["verify", "-attime", ATTIME, "-CAfile", &ca, &cert]);
    assert!(ok, "{text}");
}

#[test]
fn openssl_pkeyutl_unwraps_our_oaep_key() {
    let bin = require_openssl!();
    let w = world();
    let (a1, req) = Initiator::request(&w.alice, w.bob.username(), now()).unwrap();
    let (_b1, accept) = Responder::on_request(&w.bob, &w.trust, &req, None, now())
        .unwrap()
        .accept()
        .unwrap();
    let secret = [0x5au8; 32];
    let inputs = KeyTransferInputs {
        secret: SessionSecret::from_bytes(secret),
        ephemeral_private: zeroize::Zeroizing::new([0x11; 32]),
        wrap_for: None,
    };
    let chain = [w.bob.certificate().clone()];
    let (_a2, kt) = a1
        .on_accept_with(&accept, &chain, &w.trust, None, now(), inputs)
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let key = write(dir.path(), "bob.key", key_pem("bob").as_bytes());
    let wrapped = write(dir.path(), "wrapped.bin", &kt.wrapped_key);
    let out = dir.path().join("k.bin");
    let (ok, text) = run(
        &bin,
        &[
            "pkeyutl",
            "-decrypt",
            "-inkey",
            &key,
            "-in",
            &wrapped,
            "-out",
            out.to_str().unwrap(),
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            "rsa_oaep_md:sha256",
            "-pkeyopt",
            "rsa_mgf1_md:sha256",
        ],
    );
    assert!(ok, "{text}");
    assert_eq!(std::fs::read(out).unwrap(), secret);
}

#[test]
fn openssl_dgst_verifies_our_pss_signature() {
    let bin = require_openssl!();
    let w = world();
    let (_a1, req) = Initiator::request(&w.alice, w.bob.username(), now()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = write(dir.path(), "req.bin", &req.signed_bytes());
    let sig = write(dir.path(), "req.sig", &req.signature);
    let pubkey = openssl::pkey::PKey::public_key_from_der(&w.alice.certificate().public_key_der().unwrap()).unwrap();
    let pubkey = write(dir.path(), "alice.pub", &pubkey.public_key_to_pem().unwrap());
    let (ok, text) = run(
        &bin,
        &[
            "dgst",
            "-sha256",
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:32",
            "-sigopt",
            "rsa_mgf1_md:sha256",
            "-verify",
            &pubkey,
            "-signature",
            &sig,
            &data,
        ],
    );
    assert!(ok && text.contains("Verified OK"), "{text}");
}

#[test]
fn spki_fingerprint_matches_openssl_cli() {
    let bin = require_openssl!();
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let cert = write(dir.path(), "alice.pem", &w.alice.certificate().to_pem().unwrap());
    let spki = dir.path().join("spki.der");
    let (ok, text) = run(
        &bin,
        &[
            "x509",
            "-in",
            &cert,
            "-noout",
            "-pubkey",
            "-out",
            dir.path().join("pub.pem").to_str().unwrap(),
        ],
    );
    assert!(ok, "{text}");
    let (ok, text) = run(
        &bin,
        &[
            "pkey",
            "-pubin",
            "-in",
            dir.path().join("pub.pem").to_str().unwrap(),
            "-outform",
            "DER",
            "-out",
            spki.to_str().unwrap(),
        ],
    );
    assert!(ok, "{text}");
    let (ok, text) = run(&bin, &["dgst", "-sha256", "-r", spki.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert!(text.starts_with(&w.alice.fingerprint().to_hex()), "{text}");
}

#[test]
fn openssl_enc_reproduces_a_ratchet_step() {
    let bin = require_openssl!();
    let ck: [u8; 32] = std::array::from_fn(|i| 0x10 + i as u8);
    let (mk, next) = keys::ratchet_step(&ChainKey::from_bytes(ck)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let zeros = write(dir.path(), "zeros", &[0u8; 64]);
    let out = dir.path().join("stream");
    let key = magpie_proto::encoding::hex(&ck);
    let (ok, text) = run(
        &bin,
        &[
            "enc",
            "-aes-256-ctr",
            "-nosalt",
            "-K",
            &key,
            "-iv",
            &"0".repeat(32),
            "-in",
            &zeros,
            "-out",
            out.to_str().unwrap(),
        ],
    );
    assert!(ok, "openssl enc failed: {text}");
    let stream = std::fs::read(&out).unwrap();
    assert_eq!(&stream[..32], mk.expose_secret(), "mk_n");
    assert_eq!(&stream[32..], next.expose_secret(), "ck_(n+1)");
}

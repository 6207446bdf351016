//! `cargo bench -p magpie-proto`: the OpenSSL floor of a handshake vs the crate's API handshake, RSA-3072
//! key generation, and seal+open of a 200-byte message. Ends with one summary line:
//! `handshake_ratio=… keygen_p90_ms=… seal_open_us=…`.
//!
//! `MAGPIE_BENCH_KEYGEN=N` sets the number of key generations (default 10).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    missing_docs
)]

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use criterion::Criterion;
use magpie_proto::*;
use openssl::derive::Deriver;
use openssl::hash::MessageDigest;
use openssl::md::Md;
use openssl::pkey::{PKey, Private, Public};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Signer, Verifier};
use openssl::stack::Stack;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::{X509StoreContext, X509};

const T0: u64 = 1_767_225_600;

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + 60)
}

fn key(pem: &str) -> PKey<Private> {
    PKey::private_key_from_pem(pem.as_bytes()).unwrap()
}

struct World {
    ca: CertificateAuthority,
    trust: TrustAnchor,
    alice: Credential,
    bob: Credential,
}

fn world() -> World {
    let ident = |pem: &str, name: &str| {
        Identity::from_pkcs8_der(
            Username::canonical(name).unwrap(),
            &key(pem).private_key_to_pkcs8().unwrap(),
        )
        .unwrap()
    };
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(T0);
    let ca = CertificateAuthority::create_with_key(
        "Bench CA",
        ident(include_str!("../tests/vectors/keys/ca1.pem"), "magpie-ca"),
        t0,
    )
    .unwrap();
    let cred = |pem: &str, name: &str| {
        let id = ident(pem, name);
        let cert = ca.issue(&id.csr().unwrap(), t0).unwrap();
        Credential::new(id, cert).unwrap()
    };
    World {
        trust: ca.trust_anchor().unwrap(),
        alice: cred(include_str!("../tests/vectors/keys/alice.pem"), "alice"),
        bob: cred(include_str!("../tests/vectors/keys/bob.pem"), "bob"),
        ca,
    }
}

/// The crate's full handshake, keys and certificates pre-made.
fn api_handshake(w: &World) -> (Session, Session) {
    let chain = [w.bob.certificate().clone()];
    let (a1, req) = Initiator::request(&w.alice, w.bob.username(), now()).unwrap();
    let incoming = Responder::on_request(&w.bob, &w.trust, &req, None, now()).unwrap();
    let (b1, accept) = incoming.accept().unwrap();
    let (a2, transfer) = a1.on_accept(&accept, &chain, &w.trust, None, now()).unwrap();
    let (bob, confirm) = b1.on_key_transfer(&transfer, now()).unwrap();
    let alice = a2.on_confirm(&confirm, now()).unwrap();
    (alice, bob)
}

/// Raw OpenSSL material for the floor.
struct Floor {
    a_key: PKey<Private>,
    b_key: PKey<Private>,
    a_pub: PKey<Public>,
    b_pub: PKey<Public>,
    store: X509Store,
    a_cert: X509,
    b_cert: X509,
}

fn floor_material(w: &World) -> Floor {
    let x509 = |c: &Certificate| X509::from_der(&c.to_der().unwrap()).unwrap();
    let mut store = X509StoreBuilder::new().unwrap();
    store.add_cert(x509(w.ca.certificate())).unwrap();
    let a_cert = x509(w.alice.certificate());
    let b_cert = x509(w.bob.certificate());
    Floor {
        a_key: key(include_str!("../tests/vectors/keys/alice.pem")),
        b_key: key(include_str!("../tests/vectors/keys/bob.pem")),
        a_pub: a_cert.public_key().unwrap(),
        b_pub: b_cert.public_key().unwrap(),
        store: store.build(),
        a_cert,
        b_cert,
    }
}

fn pss_sign(k: &PKey<Private>, data: &[u8]) -> Vec<u8> {
    let mut s = Signer::new(MessageDigest::sha256(), k).unwrap();
    s.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
    s.set_rsa_pss_saltlen(RsaPssSaltlen::custom(32)).unwrap();
    s.set_rsa_mgf1_md(MessageDigest::sha256()).unwrap();
    s.update(data).unwrap();
    s.sign_to_vec().unwrap()
}

fn pss_verify(k: &PKey<Public>, data: &[u8], sig: &[u8]) -> bool {
    let mut v = Verifier::new(MessageDigest::sha256(), k).unwrap();
    v.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
    v.set_rsa_pss_saltlen(RsaPssSaltlen::custom(32)).unwrap();
    v.set_rsa_mgf1_md(MessageDigest::sha256()).unwrap();
    v.update(data).unwrap();
    v.verify(sig).unwrap()
}

fn oaep(k: &PKey<Public>, data: &[u8]) -> Vec<u8> {
    let mut ctx = PkeyCtx::new(k).unwrap();
    ctx.encrypt_init().unwrap();
    ctx.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
    ctx.set_rsa_oaep_md(Md::sha256()).unwrap();
    ctx.set_rsa_mgf1_md(Md::sha256()).unwrap();
    let mut out = Vec::new();
    ctx.encrypt_to_vec(data, &mut out).unwrap();
    out
}

fn oaep_decrypt(k: &PKey<Private>, data: &[u8]) -> Vec<u8> {
    let mut ctx = PkeyCtx::new(k).unwrap();
    ctx.decrypt_init().unwrap();
    ctx.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
    ctx.set_rsa_oaep_md(Md::sha256()).unwrap();
    ctx.set_rsa_mgf1_md(Md::sha256()).unwrap();
    let mut out = Vec::new();
    ctx.decrypt_to_vec(data, &mut out).unwrap();
    out
}

fn chain_ok(store: &X509Store, cert: &X509) -> bool {
    let mut ctx = X509StoreContext::new().unwrap();
    let empty = Stack::new().unwrap();
    ctx.init(store, cert, &empty, |c| c.verify_cert()).unwrap()
}

fn x25519_pair() -> (PKey<Private>, Vec<u8>) {
    let k = PKey::generate_x25519().unwrap();
    let public = k.raw_public_key().unwrap();
    (k, public)
}

fn x25519_derive(ours: &PKey<Private>, theirs: &[u8]) -> Vec<u8> {
    let peer = PKey::public_key_from_raw_bytes(theirs, openssl::pkey::Id::X25519).unwrap();
    let mut d = Deriver::new(ours).unwrap();
    d.set_peer(&peer).unwrap();
    d.derive_to_vec().unwrap()
}

/// The OpenSSL operations the handshake cannot avoid, in protocol order: 4 RSA private operations
/// (3 PSS signatures, 1 OAEP decryption), 4 RSA public operations (3 PSS verifications, 1 OAEP encryption),
/// 2 chain verifications, 2 X25519 key generations and 2 X25519 derivations.
fn floor_handshake(f: &Floor) {
    let data = [0x42u8; 600];
    let req_sig = pss_sign(&f.a_key, &data); // A signs the request
    assert!(chain_ok(&f.store, &f.a_cert)); // B verifies A's chain
    assert!(pss_verify(&f.a_pub, &data, &req_sig)); // ... and the signature
    let (eb, eb_pub) = x25519_pair(); // B's ephemeral
    let acc_sig = pss_sign(&f.b_key, &data[..32]); // B signs T
    assert!(chain_ok(&f.store, &f.b_cert)); // A verifies B's chain
    assert!(pss_verify(&f.b_pub, &data[..32], &acc_sig)); // ... and the accept signature
    let wrapped = oaep(&f.b_pub, &data[..32]); // A wraps K
    let (ea, ea_pub) = x25519_pair(); // A's ephemeral
    let dh_a = x25519_derive(&ea, &eb_pub);
    let kt_sig = pss_sign(&f.a_key, &data[..32]); // A signs T
    assert!(pss_verify(&f.a_pub, &data[..32], &kt_sig)); // B verifies
    let k = oaep_decrypt(&f.b_key, &wrapped); // B unwraps K
    let dh_b = x25519_derive(&eb, &ea_pub);
    black_box((k, dh_a, dh_b));
}

fn median_and_p90(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.9))
}

fn time_n(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let w = world();
    let floor = floor_material(&w);
    let body = "x".repeat(200);
    let msg = Plaintext::text(body.clone(), now()).unwrap();

    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    c.bench_function("handshake/openssl_floor", |b| b.iter(|| floor_handshake(&floor)));
    c.bench_function("handshake/api", |b| b.iter(|| black_box(api_handshake(&w))));
    {
        let (mut alice, mut bob) = api_handshake(&w);
        c.bench_function("message/seal_open_200B", |b| {
            b.iter(|| {
                let sealed = alice.seal(black_box(&msg)).unwrap();
                black_box(bob.open(&sealed).unwrap())
            })
        });
    }
    c.bench_function("safety_number", |b| {
        b.iter(|| {
            SafetyNumber::from_certificates(
                (w.alice.username(), w.alice.certificate()),
                (w.bob.username(), w.bob.certificate()),
            )
            .unwrap()
        })
    });
    c.final_summary();

    // The summary: our own medians, interleaving floor and API runs so drift hits both alike.
    let rounds = 60;
    let mut floor_t = Vec::with_capacity(rounds);
    let mut api_t = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        floor_t.extend(time_n(1, || floor_handshake(&floor)));
        api_t.extend(time_n(1, || {
            black_box(api_handshake(&w));
        }));
    }
    let (floor_med, _) = median_and_p90(floor_t);
    let (api_med, _) = median_and_p90(api_t);
    let ratio = api_med.as_secs_f64() / floor_med.as_secs_f64();

    let keygens: usize = std::env::var("MAGPIE_BENCH_KEYGEN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let name = Username::canonical("bench").unwrap();
    let kg = time_n(keygens.max(1), || {
        black_box(Identity::generate(name.clone()).unwrap());
    });
    let (kg_med, kg_p90) = median_and_p90(kg);

    let (mut alice, mut bob) = api_handshake(&w);
    let n = 100_000;
    // Warm up, then time a batch: per-message cost is too small for per-call timing.
    for _ in 0..1_000 {
        let s = alice.seal(&msg).unwrap();
        bob.open(&s).unwrap();
    }
    let t = Instant::now();
    for _ in 0..n {
        let s = alice.seal(black_box(&msg)).unwrap();
        black_box(bob.open(&s).unwrap());
    }
    let seal_open_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;

    println!();
    println!("floor handshake (4 RSA private, 4 RSA public, 2 chain verifications, 2 X25519 keygen + 2 derive): median {:.3} ms", ms(floor_med));
    println!(
        "API handshake (Initiator::request .. AwaitingConfirm::on_confirm, keys pre-made): median {:.3} ms",
        ms(api_med)
    );
    println!("ratio API/floor: {ratio:.3} (goal <= 1.3)");
    println!(
        "RSA-3072 key generation over {} runs: median {:.0} ms, p90 {:.0} ms (goal p90 <= 1000 ms)",
        keygens.max(1),
        ms(kg_med),
        ms(kg_p90)
    );
    println!(
        "seal+open of a 200-byte message: {seal_open_us:.2} us (goal <= 2 us), {:.0} messages/s on one core",
        1e6 / seal_open_us
    );
    println!(
        "handshake_ratio={ratio:.3} keygen_p90_ms={:.0} seal_open_us={seal_open_us:.2}",
        ms(kg_p90)
    );
}

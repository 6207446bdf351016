//! A fixed workload for instruction-count profiling of `Session::seal` + `Session::open` (200-byte body):
//! instruction counts do not depend on machine load, unlike the benchmark. Build with symbols and run twice,
//! so the handshake's share can be subtracted:
//!
//! ```text
//! CARGO_PROFILE_RELEASE_STRIP=false cargo build --release -p magpie-proto --example seal_open_profile
//! valgrind --tool=callgrind target/release/examples/seal_open_profile 0
//! valgrind --tool=callgrind target/release/examples/seal_open_profile 2000
//! ```
//!
//! (difference of the two totals) / 2000 = instructions per seal+open.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use magpie_proto::*;
use openssl::pkey::PKey;

const T0: u64 = 1_767_225_600;

fn ident(pem: &str, name: &str) -> Identity {
    let der = PKey::private_key_from_pem(pem.as_bytes())
        .unwrap()
        .private_key_to_pkcs8()
        .unwrap();
    Identity::from_pkcs8_der(Username::canonical(name).unwrap(), &der).unwrap()
}

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(T0);
    let now = t0 + Duration::from_secs(60);
    let ca = CertificateAuthority::create_with_key(
        "Profile CA",
        ident(include_str!("../tests/vectors/keys/ca1.pem"), "magpie-ca"),
        t0,
    )
    .unwrap();
    let cred = |pem: &str, name: &str| {
        let id = ident(pem, name);
        let cert = ca.issue(&id.csr().unwrap(), t0).unwrap();
        Credential::new(id, cert).unwrap()
    };
    let alice = cred(include_str!("../tests/vectors/keys/alice.pem"), "alice");
    let bob = cred(include_str!("../tests/vectors/keys/bob.pem"), "bob");
    let trust = ca.trust_anchor().unwrap();

    let chain = [bob.certificate().clone()];
    let (a1, req) = Initiator::request(&alice, bob.username(), now).unwrap();
    let incoming = Responder::on_request(&bob, &trust, &req, None, now).unwrap();
    let (b1, accept) = incoming.accept().unwrap();
    let (a2, transfer) = a1.on_accept(&accept, &chain, &trust, None, now).unwrap();
    let (mut bob_s, confirm) = b1.on_key_transfer(&transfer, now).unwrap();
    let mut alice_s = a2.on_confirm(&confirm, now).unwrap();

    let msg = Plaintext::text("x".repeat(200), now).unwrap();
    // Timed in batches of 100; the fastest batch is the least disturbed by other load on the machine.
    let mut batches = Vec::new();
    for start in (0..n).step_by(100) {
        let t = Instant::now();
        for _ in start..n.min(start + 100) {
            let sealed = alice_s.seal(black_box(&msg)).unwrap();
            black_box(bob_s.open(&sealed).unwrap());
        }
        batches.push(t.elapsed().as_secs_f64() * 1e6 / (n.min(start + 100) - start) as f64);
    }
    batches.sort_by(f64::total_cmp);
    let at = |q: f64| {
        batches
            .get(((batches.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "{n} messages sealed and opened: fastest batch {:.2} us, median batch {:.2} us per seal+open",
        at(0.0),
        at(0.5)
    );
}

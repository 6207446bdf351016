//! Arbitrary bytes as each incoming handshake message, fed to the state that expects it.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use magpie_proto::*;

struct World {
    trust: TrustAnchor,
    alice: Credential,
    bob: Credential,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let ident = |pem: &str, name: &str| {
            let der = openssl::pkey::PKey::private_key_from_pem(pem.as_bytes())
                .unwrap()
                .private_key_to_pkcs8()
                .unwrap();
            Identity::from_pkcs8_der(Username::canonical(name).unwrap(), &der).unwrap()
        };
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        let ca = CertificateAuthority::create_with_key(
            "Fuzz CA",
            ident(
                include_str!("../../crates/proto/tests/vectors/keys/ca1.pem"),
                "magpie-ca",
            ),
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
            alice: cred(include_str!("../../crates/proto/tests/vectors/keys/alice.pem"), "alice"),
            bob: cred(include_str!("../../crates/proto/tests/vectors/keys/bob.pem"), "bob"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_660);
    let Some((selector, body)) = data.split_first() else {
        return;
    };
    match selector % 4 {
        0 => {
            if let Ok(req) = ChatRequest::from_json(body) {
                let _ = Responder::on_request(&w.bob, &w.trust, &req, None, now);
            }
        }
        1 => {
            if let Ok(accept) = ChatAccept::from_json(body) {
                let (a1, _) = Initiator::request(&w.alice, w.bob.username(), now).unwrap();
                let _ = a1.on_accept(&accept, &[w.bob.certificate().clone()], &w.trust, None, now);
            }
        }
        2 => {
            if let Ok(decline) = ChatDecline::from_json(body) {
                let (a1, _) = Initiator::request(&w.alice, w.bob.username(), now).unwrap();
                let _ = a1.on_decline(&decline, &[w.bob.certificate().clone()], &w.trust, None, now);
            }
        }
        _ => {
            if let Ok(kt) = KeyTransfer::from_json(body) {
                let (_, req) = Initiator::request(&w.alice, w.bob.username(), now).unwrap();
                let incoming = Responder::on_request(&w.bob, &w.trust, &req, None, now).unwrap();
                let (b1, _) = incoming.accept().unwrap();
                let _ = b1.on_key_transfer(&kt, now);
            }
        }
    }
});

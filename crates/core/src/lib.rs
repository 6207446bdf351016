//! Magpie's client engine. The desktop shell and the CLI are thin faces over it.

pub mod engine;
pub mod error;
pub mod history;
pub mod keystore;
mod lock_order;
pub mod profile;
pub mod relay;
pub mod store;

pub use engine::{Client, Event};
pub use error::{Error, Result};
pub use history::History;
pub use profile::Profile;

#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::OnceLock;

    use magpie_proto::{Identity, Username};

    /// RSA-3072 keygen is slow: every unit test shares one key, under whatever name it needs.
    pub(crate) fn identity(name: &str) -> Identity {
        static DER: OnceLock<Vec<u8>> = OnceLock::new();
        let der = DER.get_or_init(|| {
            let identity = Identity::generate(username("keygen")).unwrap();
            identity.to_pkcs8_der().unwrap().expose_secret().to_vec()
        });
        Identity::from_pkcs8_der(username(name), der).unwrap()
    }

    pub(crate) fn username(name: &str) -> Username {
        Username::parse(name).unwrap()
    }

    /// Alice and Bob with certificates from one test CA, and a session between them from a real handshake
    /// (proto's fixed test keys: no key generation).
    pub(crate) struct Pair {
        pub(crate) alice: magpie_proto::Credential,
        pub(crate) bob: magpie_proto::Credential,
        pub(crate) ca: magpie_proto::Certificate,
        pub(crate) alice_session: magpie_proto::Session,
        pub(crate) bob_session: magpie_proto::Session,
        pub(crate) now: std::time::SystemTime,
    }

    /// [`pair_at`] a fixed time (2026-01-01), for tests that compare times.
    pub(crate) fn pair() -> Pair {
        pair_at(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_767_225_600))
    }

    /// The CA and certificates made at `t0`, the session a minute later.
    pub(crate) fn pair_at(t0: std::time::SystemTime) -> Pair {
        use magpie_proto::{CertificateAuthority, Credential, Initiator, Responder};

        let now = t0 + std::time::Duration::from_secs(60);
        let ident = |pem: &str, name: &str| {
            let der = openssl::pkey::PKey::private_key_from_pem(pem.as_bytes())
                .unwrap()
                .private_key_to_pkcs8()
                .unwrap();
            Identity::from_pkcs8_der(username(name), &der).unwrap()
        };
        let ca_key = ident(include_str!("../../proto/tests/vectors/keys/ca1.pem"), "magpie-ca");
        let ca = CertificateAuthority::create_with_key("Test CA", ca_key, t0).unwrap();
        let cred = |pem: &str, name: &str| {
            let id = ident(pem, name);
            let cert = ca.issue(&id.csr().unwrap(), t0).unwrap();
            Credential::new(id, cert).unwrap()
        };
        let alice = cred(include_str!("../../proto/tests/vectors/keys/alice.pem"), "alice");
        let bob = cred(include_str!("../../proto/tests/vectors/keys/bob.pem"), "bob");
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

    /// Every file below `dir`, to grep a profile's disk for what must not be there.
    pub(crate) fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path);
            }
        }
        out
    }
}

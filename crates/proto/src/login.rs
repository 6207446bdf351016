//! Key-signed login to a relay: no passwords, a user proves they hold the private key of their certificate.
//!
//! Signed bytes, canonical form: `lp("magpie v1 login") ‖ lp(relay CA fingerprint, 32 bytes) ‖ lp(username) ‖
//! lp(nonce)`, `lp(x) = u32be(len x) ‖ x` (vector: `tests/vectors/login.json`), signed with RSA-PSS like every other
//! signature here ([`crate::Identity::sign_login`],
//! [`crate::Certificate::verify_login`]). The CA fingerprint binds the answer to one relay, so a rogue relay
//! cannot replay a user's answer to another.

use crate::encoding::Canon;

/// Domain-separation label of the login signature.
pub const LOGIN_LABEL: &str = "magpie v1 login";

/// The bytes a user signs to log in to the relay whose CA has `ca_fingerprint`.
pub fn login_signed_bytes(ca_fingerprint: &[u8; 32], username: &str, nonce: &[u8]) -> Vec<u8> {
    let mut canon = Canon::new(LOGIN_LABEL);
    canon.bytes(ca_fingerprint).str(username).bytes(nonce);
    canon.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CertificateAuthority, Identity, Username};
    use std::time::SystemTime;

    #[test]
    fn a_login_answer_verifies_only_for_its_relay_user_and_nonce() {
        let alice = Identity::generate(Username::canonical("alice").unwrap()).unwrap();
        let ca = CertificateAuthority::create("test relay", SystemTime::now()).unwrap();
        let cert = ca.issue(&alice.csr().unwrap(), SystemTime::now()).unwrap();
        let (relay, other_relay) = ([7u8; 32], [8u8; 32]);

        let signature = alice.sign_login(&relay, b"nonce-1").unwrap();

        assert!(cert.verify_login(&relay, "alice", b"nonce-1", &signature).is_ok());
        for (fingerprint, user, nonce) in [
            (&other_relay, "alice", &b"nonce-1"[..]),
            (&relay, "bob", b"nonce-1"),
            (&relay, "alice", b"nonce-2"),
        ] {
            let refused = cert.verify_login(fingerprint, user, nonce, &signature);
            assert!(matches!(refused, Err(crate::Error::BadSignature)), "{refused:?}");
        }
    }

    #[test]
    fn signed_bytes_are_the_documented_canonical_form() {
        let bytes = login_signed_bytes(&[0xAA; 32], "bob", b"n");
        let mut expected = Vec::new();
        for field in [LOGIN_LABEL.as_bytes(), &[0xAA; 32], b"bob", b"n"] {
            expected.extend_from_slice(&(field.len() as u32).to_be_bytes());
            expected.extend_from_slice(field);
        }
        assert_eq!(bytes, expected);
    }
}

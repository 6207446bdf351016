//! What a login signs, and its RSA-PSS check.
//!
//! Private adapter: magpie-proto does not (yet) expose signing or verifying arbitrary bytes, so this uses
//! `openssl` directly with the parameters of the design note (RSA-PSS, SHA-256, MGF1-SHA-256, salt 32).
//! It belongs in magpie-proto so that magpie-core signs with the same code; move it there.
//!
//! Signed bytes, in proto's canonical form (each field a u32 big-endian length then the bytes):
//! `"magpie v1 login" ‖ CA fingerprint (32 bytes) ‖ username ‖ nonce`. The CA fingerprint binds the
//! signature to this relay, so a rogue relay cannot replay a user's answer to another relay.

use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Signer, Verifier};

/// Domain-separation label of the login signature.
pub const LOGIN_LABEL: &str = "magpie v1 login";
const PSS_SALT_LEN: i32 = 32;

fn push_field(out: &mut Vec<u8>, field: &[u8]) {
    let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(field);
}

/// The bytes a user signs to log in.
pub fn login_signed_bytes(ca_fingerprint: &[u8; 32], username: &str, nonce: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + username.len() + nonce.len());
    for field in [LOGIN_LABEL.as_bytes(), ca_fingerprint, username.as_bytes(), nonce] {
        push_field(&mut out, field);
    }
    out
}

/// Signs `data` with a PKCS#8 DER RSA key (clients, tests and the load generator).
pub fn sign(key_pkcs8_der: &[u8], data: &[u8]) -> Result<Vec<u8>, openssl::error::ErrorStack> {
    let key: PKey<Private> = PKey::private_key_from_pkcs8(key_pkcs8_der)?;
    let mut signer = Signer::new(MessageDigest::sha256(), &key)?;
    signer.set_rsa_padding(Padding::PKCS1_PSS)?;
    signer.set_rsa_pss_saltlen(RsaPssSaltlen::custom(PSS_SALT_LEN))?;
    signer.set_rsa_mgf1_md(MessageDigest::sha256())?;
    signer.update(data)?;
    signer.sign_to_vec()
}

/// True when `signature` is a valid RSA-PSS signature over `data` by the SPKI DER key `public_key_der`.
pub fn verify(public_key_der: &[u8], data: &[u8], signature: &[u8]) -> bool {
    let check = || -> Result<bool, openssl::error::ErrorStack> {
        let key = PKey::public_key_from_der(public_key_der)?;
        let mut verifier = Verifier::new(MessageDigest::sha256(), &key)?;
        verifier.set_rsa_padding(Padding::PKCS1_PSS)?;
        verifier.set_rsa_pss_saltlen(RsaPssSaltlen::custom(PSS_SALT_LEN))?;
        verifier.set_rsa_mgf1_md(MessageDigest::sha256())?;
        verifier.update(data)?;
        verifier.verify(signature)
    };
    check().unwrap_or(false)
}

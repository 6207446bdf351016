//! Thin wrappers over the OpenSSL primitives the protocol uses, each with the parameters fixed.

use openssl::hash::{hash, MessageDigest};
use openssl::md::Md;
use openssl::pkey::{HasPrivate, HasPublic, Id, PKey, PKeyRef, Private, Public};
use openssl::pkey_ctx::{HkdfMode, PkeyCtx};
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Signer, Verifier};
use zeroize::Zeroizing;

use crate::error::{malformed, Error, Result};
use crate::secret::{SessionSecret, SharedSecret};

/// PSS salt length fixed by the design note.
const PSS_SALT_LEN: i32 = 32;
/// AES-GCM tag length.
pub(crate) const TAG_LEN: usize = 16;

/// Constant-time equality; unequal lengths are simply unequal (`memcmp::eq` would panic).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && openssl::memcmp::eq(a, b)
}

pub(crate) fn random_array<const N: usize>() -> Result<[u8; N]> {
    let mut out = [0u8; N];
    openssl::rand::rand_bytes(&mut out)?;
    Ok(out)
}

pub(crate) fn sha256(data: &[u8]) -> Result<[u8; 32]> {
    let mut out = [0u8; 32];
    out.copy_from_slice(&hash(MessageDigest::sha256(), data)?);
    Ok(out)
}

/// HMAC-SHA256 over the concatenation of `parts`. Used once per handshake (the KeyConfirm MAC), so OpenSSL's EVP
/// path, which wipes its key, is fast enough.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Result<Zeroizing<[u8; 32]>> {
    let pkey = PKey::hmac(key)?;
    let mut signer = Signer::new(MessageDigest::sha256(), &pkey)?;
    for part in parts {
        signer.update(part)?;
    }
    let mut out = Zeroizing::new([0u8; 32]);
    let len = signer.sign(out.as_mut())?;
    if len != out.len() {
        return Err(Error::Crypto("HMAC-SHA256 length".into()));
    }
    Ok(out)
}

/// HKDF-SHA256, extract and expand (RFC 5869).
pub(crate) fn hkdf(ikm: &[u8], salt: &[u8], info: &[u8], out: &mut [u8]) -> Result<()> {
    let mut ctx = PkeyCtx::new_id(Id::HKDF)?;
    ctx.derive_init()?;
    ctx.set_hkdf_md(Md::sha256())?;
    ctx.set_hkdf_key(ikm)?;
    ctx.set_hkdf_salt(salt)?;
    ctx.add_hkdf_info(info)?;
    ctx.derive(Some(out))?;
    Ok(())
}

/// HKDF-Expand only, with `prk` already uniformly random.
pub(crate) fn hkdf_expand(prk: &[u8], info: &[u8], out: &mut [u8]) -> Result<()> {
    let mut ctx = PkeyCtx::new_id(Id::HKDF)?;
    ctx.derive_init()?;
    ctx.set_hkdf_mode(HkdfMode::EXPAND_ONLY)?;
    ctx.set_hkdf_md(Md::sha256())?;
    ctx.set_hkdf_key(prk)?;
    ctx.add_hkdf_info(info)?;
    ctx.derive(Some(out))?;
    Ok(())
}

/// RSA-PSS, SHA-256, MGF1-SHA-256, salt 32.
pub(crate) fn sign_pss<T: HasPrivate>(key: &PKeyRef<T>, data: &[u8]) -> Result<Vec<u8>> {
    let mut signer = Signer::new(MessageDigest::sha256(), key)?;
    signer.set_rsa_padding(Padding::PKCS1_PSS)?;
    signer.set_rsa_pss_saltlen(RsaPssSaltlen::custom(PSS_SALT_LEN))?;
    signer.set_rsa_mgf1_md(MessageDigest::sha256())?;
    signer.update(data)?;
    Ok(signer.sign_to_vec()?)
}

/// Verifies an RSA-PSS signature made by [`sign_pss`]; any failure is `BadSignature`.
pub(crate) fn verify_pss<T: HasPublic>(key: &PKeyRef<T>, data: &[u8], signature: &[u8]) -> Result<()> {
    let ok = (|| -> Result<bool, openssl::error::ErrorStack> {
        let mut verifier = Verifier::new(MessageDigest::sha256(), key)?;
        verifier.set_rsa_padding(Padding::PKCS1_PSS)?;
        verifier.set_rsa_pss_saltlen(RsaPssSaltlen::custom(PSS_SALT_LEN))?;
        verifier.set_rsa_mgf1_md(MessageDigest::sha256())?;
        verifier.update(data)?;
        verifier.verify(signature)
    })();
    match ok {
        Ok(true) => Ok(()),
        _ => Err(Error::BadSignature),
    }
}

/// RSA-OAEP (SHA-256, MGF1-SHA-256, empty label) wrap of the session secret.
pub(crate) fn oaep_wrap<T: HasPublic>(key: &PKeyRef<T>, secret: &SessionSecret) -> Result<Vec<u8>> {
    let mut ctx = PkeyCtx::new(key)?;
    ctx.encrypt_init()?;
    ctx.set_rsa_padding(Padding::PKCS1_OAEP)?;
    ctx.set_rsa_oaep_md(Md::sha256())?;
    ctx.set_rsa_mgf1_md(Md::sha256())?;
    let mut out = Vec::new();
    ctx.encrypt_to_vec(secret.expose_secret(), &mut out)?;
    Ok(out)
}

/// Unwraps a session secret; every failure is the opaque `Decrypt`.
pub(crate) fn oaep_unwrap<T: HasPrivate>(key: &PKeyRef<T>, wrapped: &[u8]) -> Result<SessionSecret> {
    let run = || -> Result<Zeroizing<Vec<u8>>, openssl::error::ErrorStack> {
        let mut ctx = PkeyCtx::new(key)?;
        ctx.decrypt_init()?;
        ctx.set_rsa_padding(Padding::PKCS1_OAEP)?;
        ctx.set_rsa_oaep_md(Md::sha256())?;
        ctx.set_rsa_mgf1_md(Md::sha256())?;
        let mut out = Zeroizing::new(Vec::with_capacity(512));
        ctx.decrypt_to_vec(wrapped, &mut out)?;
        Ok(out)
    };
    let plain = run().map_err(|_| Error::Decrypt)?;
    SessionSecret::from_slice(&plain).map_err(|_| Error::Decrypt)
}

/// A fresh X25519 key pair.
pub(crate) fn x25519_generate() -> Result<PKey<Private>> {
    Ok(PKey::generate_x25519()?)
}

/// An X25519 private key from its 32 raw bytes (known-answer tests).
pub(crate) fn x25519_from_private(bytes: &[u8]) -> Result<PKey<Private>> {
    PKey::private_key_from_raw_bytes(bytes, Id::X25519).map_err(|_| malformed("X25519 private key"))
}

pub(crate) fn x25519_public_bytes<T: HasPublic>(key: &PKeyRef<T>) -> Result<[u8; 32]> {
    let raw = key.raw_public_key()?;
    raw.as_slice()
        .try_into()
        .map_err(|_| Error::Crypto("X25519 public key length".into()))
}

pub(crate) fn x25519_public_from_bytes(bytes: &[u8]) -> Result<PKey<Public>> {
    if bytes.len() != 32 {
        return Err(malformed("X25519 public key must be 32 bytes"));
    }
    PKey::public_key_from_raw_bytes(bytes, Id::X25519).map_err(|_| malformed("X25519 public key"))
}

/// X25519; an all-zero result (a low-order peer point) is refused.
pub(crate) fn x25519(ours: &PKeyRef<Private>, theirs: &[u8]) -> Result<SharedSecret> {
    let peer = x25519_public_from_bytes(theirs)?;
    let mut deriver = openssl::derive::Deriver::new(ours)?;
    deriver.set_peer(&peer).map_err(|_| malformed("X25519 public key"))?;
    let mut out = Zeroizing::new([0u8; 32]);
    let n = deriver
        .derive(out.as_mut())
        .map_err(|_| malformed("X25519 low-order point"))?;
    if n != 32 || openssl::memcmp::eq(out.as_ref(), &[0u8; 32]) {
        return Err(malformed("X25519 low-order point"));
    }
    Ok(SharedSecret::from_bytes(*out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn hkdf_rfc5869_case_1() {
        let ikm = [0x0b; 22];
        let salt = hex("000102030405060708090a0b0c");
        let info = hex("f0f1f2f3f4f5f6f7f8f9");
        let mut okm = [0u8; 42];
        hkdf(&ikm, &salt, &info, &mut okm).unwrap();
        assert_eq!(
            okm.to_vec(),
            hex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
        );
        let prk = hex("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5");
        let mut okm2 = [0u8; 42];
        hkdf_expand(&prk, &info, &mut okm2).unwrap();
        assert_eq!(okm, okm2);
    }

    #[test]
    fn hmac_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]).unwrap();
        assert_eq!(
            mac.to_vec(),
            hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
    }

    #[test]
    fn hmac_rfc4231_case_6_long_key() {
        let mac = hmac_sha256(
            &[0xaa; 131],
            &[b"Test Using Larger Than Block-Size Key - Hash Key First"],
        )
        .unwrap();
        assert_eq!(
            mac.to_vec(),
            hex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
        );
    }

    #[test]
    fn x25519_rfc7748() {
        let a = x25519_from_private(&hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")).unwrap();
        let b_pub = hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
        let shared = x25519(&a, &b_pub).unwrap();
        assert_eq!(
            shared.expose_secret().to_vec(),
            hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
        );
        assert!(x25519(&a, &[0u8; 32]).is_err());
        assert!(x25519(&a, &[1u8; 31]).is_err());
    }
}

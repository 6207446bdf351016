//! Sealing history values: AES-256-GCM with a random 96-bit nonce per write, and keyed hashes for keys.
//!
//! Two sub-keys are derived from the history key with HMAC-SHA256 and distinct labels, so the cipher key is never
//! also used as a MAC key. A sealed value is `version (1) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`; its additional
//! data is `len(tree) ‖ tree ‖ key`, so a value copied into another tree or under another key fails to open.

use openssl::sha::Sha256;
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Length of the history key in bytes (256 bits).
pub const HISTORY_KEY_LEN: usize = 32;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The key that encrypts one profile's history. Wiped when dropped; never printed.
#[derive(Clone)]
pub struct HistoryKey(Zeroizing<[u8; HISTORY_KEY_LEN]>);

impl HistoryKey {
    /// A fresh random key from OpenSSL's CSPRNG.
    pub fn generate() -> Result<Self> {
        let mut bytes = Zeroizing::new([0u8; HISTORY_KEY_LEN]);
        openssl::rand::rand_bytes(bytes.as_mut_slice()).map_err(|_| Error::Crypto("could not draw random bytes"))?;
        Ok(Self(bytes))
    }

    /// A key from stored bytes; anything but 32 bytes is refused.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let array: [u8; HISTORY_KEY_LEN] = bytes.try_into().map_err(|_| Error::HistoryKeyMalformed)?;
        Ok(Self(Zeroizing::new(array)))
    }

    /// The raw bytes, for handing to the credential store.
    pub fn expose(&self) -> &[u8] {
        self.0.as_slice()
    }
}

impl std::fmt::Debug for HistoryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HistoryKey(<redacted>)")
    }
}

/// The derived keys in use by an open history.
pub(crate) struct Sealer {
    cipher_key: Zeroizing<[u8; 32]>,
    index_key: Zeroizing<[u8; 32]>,
}

impl Sealer {
    pub(crate) fn new(key: &HistoryKey) -> Result<Self> {
        Ok(Self {
            cipher_key: hmac(key.expose(), &[b"magpie history v1: value cipher"])?,
            index_key: hmac(key.expose(), &[b"magpie history v1: key index"])?,
        })
    }

    /// A keyed hash naming `value` in `domain` ("chat", "message", "handshake"): stable for lookups, meaningless
    /// to anyone without the history key.
    pub(crate) fn index(&self, domain: &[u8], value: &[u8]) -> Result<[u8; 32]> {
        let domain_len = [u8::try_from(domain.len()).map_err(|_| Error::Crypto("index domain too long"))?];
        hmac(self.index_key.as_slice(), &[&domain_len, domain, value]).map(|out| *out)
    }

    pub(crate) fn seal(&self, tree: &str, key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        openssl::rand::rand_bytes(&mut nonce).map_err(|_| Error::Crypto("could not draw random bytes"))?;
        let mut tag = [0u8; TAG_LEN];
        let ciphertext = encrypt_aead(
            Cipher::aes_256_gcm(),
            self.cipher_key.as_slice(),
            Some(&nonce),
            &additional_data(tree, key),
            plaintext,
            &mut tag,
        )
        .map_err(|_| Error::Crypto("history encryption failed"))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len() + TAG_LEN);
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Opens a value sealed for exactly this tree and key; anything else is [`Error::HistoryCorrupt`].
    pub(crate) fn open(&self, tree: &'static str, key: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let corrupt = || Error::HistoryCorrupt { tree };
        if sealed.len() < 1 + NONCE_LEN + TAG_LEN || sealed[0] != VERSION {
            return Err(corrupt());
        }
        let (nonce, rest) = sealed[1..].split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        decrypt_aead(
            Cipher::aes_256_gcm(),
            self.cipher_key.as_slice(),
            Some(nonce),
            &additional_data(tree, key),
            ciphertext,
            tag,
        )
        .map(Zeroizing::new)
        .map_err(|_| corrupt())
    }
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<redacted>)")
    }
}

fn additional_data(tree: &str, key: &[u8]) -> Vec<u8> {
    // Tree names are short constants: one length byte is enough and makes the split unambiguous.
    let mut ad = Vec::with_capacity(1 + tree.len() + key.len());
    ad.push(u8::try_from(tree.len()).unwrap_or(u8::MAX));
    ad.extend_from_slice(tree.as_bytes());
    ad.extend_from_slice(key);
    ad
}

/// HMAC-SHA256 (RFC 2104) over the concatenated `parts`, for keys of at most one block (ours are 32 bytes).
/// Built on the low-level SHA-256 rather than an EVP HMAC: OpenSSL 3's per-call algorithm fetch made that 9 µs,
/// and a chat id is computed on every page load.
fn hmac(key: &[u8], parts: &[&[u8]]) -> Result<Zeroizing<[u8; 32]>> {
    const BLOCK: usize = 64;
    if key.len() > BLOCK {
        return Err(Error::Crypto("HMAC key longer than a block"));
    }
    let mut ipad = Zeroizing::new([0x36u8; BLOCK]);
    let mut opad = Zeroizing::new([0x5cu8; BLOCK]);
    for (i, byte) in key.iter().enumerate() {
        ipad[i] ^= byte;
        opad[i] ^= byte;
    }
    let mut inner = Sha256::new();
    inner.update(ipad.as_slice());
    for part in parts {
        inner.update(part);
    }
    let inner_hash = Zeroizing::new(inner.finish());
    let mut outer = Sha256::new();
    outer.update(opad.as_slice());
    outer.update(inner_hash.as_slice());
    Ok(Zeroizing::new(outer.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::new(&HistoryKey::generate().unwrap()).unwrap()
    }

    #[test]
    fn seal_open_round_trips_with_fresh_nonces() {
        let s = sealer();
        let a = s.seal("messages", b"k1", b"hello").unwrap();
        let b = s.seal("messages", b"k1", b"hello").unwrap();
        assert_ne!(a, b, "each write must use a fresh nonce");
        assert_eq!(s.open("messages", b"k1", &a).unwrap().as_slice(), b"hello");
    }

    #[test]
    fn moved_flipped_truncated_or_foreign_values_are_corrupt() {
        let s = sealer();
        let sealed = s.seal("messages", b"k1", b"hello").unwrap();
        let corrupt = |r: Result<Zeroizing<Vec<u8>>>| matches!(r, Err(Error::HistoryCorrupt { .. }));
        assert!(corrupt(s.open("messages", b"k2", &sealed)), "other key");
        assert!(corrupt(s.open("contacts", b"k1", &sealed)), "other tree");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(corrupt(s.open("messages", b"k1", &bad)), "bit flip at {i}");
        }
        assert!(corrupt(s.open("messages", b"k1", &sealed[..10])));
        assert!(corrupt(s.open("messages", b"k1", &[])));
        assert!(corrupt(sealer().open("messages", b"k1", &sealed)), "other history key");
    }

    #[test]
    fn hmac_matches_rfc_4231_and_openssl() {
        let tag = hmac(b"Jefe", &[b"what do ya ", b"want for nothing?"]).unwrap();
        let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);

        let key = [0x0bu8; 32];
        let pkey = openssl::pkey::PKey::hmac(&key).unwrap();
        let mut signer = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &pkey).unwrap();
        let reference = signer.sign_oneshot_to_vec(b"magpie").unwrap();
        assert_eq!(hmac(&key, &[b"mag", b"pie"]).unwrap().as_slice(), reference.as_slice());
    }

    #[test]
    fn index_is_keyed_and_domain_separated() {
        let s = sealer();
        assert_eq!(s.index(b"chat", b"bob").unwrap(), s.index(b"chat", b"bob").unwrap());
        assert_ne!(s.index(b"chat", b"bob").unwrap(), s.index(b"message", b"bob").unwrap());
        assert_ne!(
            s.index(b"chat", b"bob").unwrap(),
            sealer().index(b"chat", b"bob").unwrap()
        );
    }

    #[test]
    fn history_key_debug_leaks_nothing() {
        let key = HistoryKey::from_slice(&[0xAB; 32]).unwrap();
        let printed = format!("{key:?} {key:#?} {:?}", Sealer::new(&key).unwrap());
        assert!(
            !printed.contains("171") && !printed.to_lowercase().contains("ab, "),
            "{printed}"
        );
        assert!(printed.contains("<redacted>"));
        assert!(matches!(
            HistoryKey::from_slice(&[0; 31]),
            Err(Error::HistoryKeyMalformed)
        ));
    }
}

//! Secret holders: zeroized on drop, `<redacted>` in `Debug`.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{malformed, Result};

/// Secret bytes of any length (a PKCS#8 private key, a serialized session).
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Takes ownership of `bytes`; they are wiped when this value drops.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The secret bytes. Keep the borrow short and do not copy them into unprotected memory.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBytes(<redacted>)")
    }
}

macro_rules! secret32 {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name([u8; 32]);

        // By hand: the derive wipes an array one volatile byte at a time, a tenth of the cost of a message.
        impl Zeroize for $name {
            fn zeroize(&mut self) {
                zeroize::zeroize_bytes(&mut self.0);
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                self.zeroize();
            }
        }

        impl ZeroizeOnDrop for $name {}

        impl $name {
            /// Wraps 32 secret bytes (for known-answer tests and state import).
            pub fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            /// Copies 32 bytes from a slice; any other length is `Malformed`.
            pub fn from_slice(bytes: &[u8]) -> Result<Self> {
                let mut key = [0u8; 32];
                if bytes.len() != 32 {
                    return Err(malformed(concat!(stringify!($name), " must be 32 bytes")));
                }
                key.copy_from_slice(bytes);
                let out = Self(key);
                zeroize::zeroize_bytes(&mut key);
                Ok(out)
            }

            /// The secret bytes. Keep the borrow short.
            pub fn expose_secret(&self) -> &[u8; 32] {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

secret32!(
    /// The 32-byte session secret `K` that the initiator wraps for the responder.
    SessionSecret
);
secret32!(
    /// The X25519 shared secret `dh`.
    SharedSecret
);
secret32!(
    /// The session root key from HKDF.
    RootKey
);
secret32!(
    /// One direction's hash-ratchet chain key `ck_n`.
    ChainKey
);
secret32!(
    /// A one-use message key `mk_n`.
    MessageKey
);

// The ratchet derives these two in place, so their bytes never pass through a buffer that needs wiping.
impl ChainKey {
    pub(crate) fn expose_secret_mut(&mut self) -> &mut [u8; 32] {
        &mut self.0
    }
}

impl MessageKey {
    pub(crate) fn expose_secret_mut(&mut self) -> &mut [u8; 32] {
        &mut self.0
    }
}
secret32!(
    /// The key of the KeyConfirm MAC.
    ConfirmKey
);
secret32!(
    /// The key of one file's segments (see `file`).
    FileKey
);

/// Serializes 32 secret bytes as base64 without an intermediate `String` (state export).
pub(crate) struct SecretB64<'a>(pub(crate) &'a [u8; 32]);

impl Serialize for SecretB64<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use base64::engine::general_purpose::STANDARD;
        s.collect_str(&base64::display::Base64Display::new(self.0, &STANDARD))
    }
}

/// A 32-byte key decoded from base64 straight into wiped memory (state import).
pub(crate) struct KeyIn<T>(pub(crate) T);

/// Decodes base64 text; the text and its decoding live in wiped buffers.
fn decode_secret_b64<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Zeroizing<Vec<u8>>, D::Error> {
    let text = Zeroizing::new(String::deserialize(d)?);
    crate::encoding::b64_decode(&text)
        .map(Zeroizing::new)
        .ok_or_else(|| serde::de::Error::custom("base64"))
}

macro_rules! key_in {
    ($($t:ty),*) => {$(
        impl<'de> Deserialize<'de> for KeyIn<$t> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let bytes = decode_secret_b64(d)?;
                <$t>::from_slice(&bytes)
                    .map(KeyIn)
                    .map_err(|_| serde::de::Error::custom("key must be 32 bytes"))
            }
        }
    )*};
}
key_in!(ChainKey, FileKey, MessageKey, RootKey);

/// Raw 32 secret bytes without a key type (an X25519 private half).
impl<'de> Deserialize<'de> for KeyIn<Zeroizing<[u8; 32]>> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let bytes = decode_secret_b64(d)?;
        let mut key = Zeroizing::new([0u8; 32]);
        if bytes.len() != key.len() {
            return Err(serde::de::Error::custom("key must be 32 bytes"));
        }
        key.copy_from_slice(&bytes);
        Ok(KeyIn(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debug must show the type and `<redacted>`, and neither the hex nor the decimal form of any byte.
    fn assert_redacted(shown: &str, name: &str) {
        assert_eq!(shown, format!("{name}(<redacted>)"));
        assert!(
            !shown.to_lowercase().contains("ab") && !shown.contains("171"),
            "{shown} leaks"
        );
    }

    macro_rules! redaction_test {
        ($test:ident, $t:ident) => {
            #[test]
            fn $test() {
                let secret = $t::from_bytes([0xAB; 32]);
                assert_redacted(&format!("{secret:?}"), stringify!($t));
                assert_redacted(&format!("{:#?}", secret), stringify!($t));
            }
        };
    }

    redaction_test!(debug_redacts_session_secret, SessionSecret);
    redaction_test!(debug_redacts_shared_secret, SharedSecret);
    redaction_test!(debug_redacts_root_key, RootKey);
    redaction_test!(debug_redacts_chain_key, ChainKey);
    redaction_test!(debug_redacts_message_key, MessageKey);
    redaction_test!(debug_redacts_confirm_key, ConfirmKey);
    redaction_test!(debug_redacts_file_key, FileKey);

    #[test]
    fn debug_redacts_secret_bytes() {
        assert_redacted(&format!("{:?}", SecretBytes::new(vec![0xAB; 40])), "SecretBytes");
    }

    #[test]
    fn from_slice_checks_length() {
        assert!(ChainKey::from_slice(&[1; 31]).is_err());
        assert_eq!(ChainKey::from_slice(&[1; 32]).unwrap().expose_secret(), &[1; 32]);
    }
}

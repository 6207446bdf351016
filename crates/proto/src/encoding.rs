//! Canonical length-prefixed encoding (hashed and signed), hex, and base64 serde helpers (wire).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Builds the canonical byte form of a message: a fixed field order, each variable field as a
/// u32 big-endian length followed by its bytes, integers as fixed-width big-endian.
#[derive(Debug, Default)]
pub(crate) struct Canon(Vec<u8>);

impl Canon {
    /// Starts with a domain-separation label.
    pub(crate) fn new(label: &str) -> Self {
        let mut c = Self(Vec::with_capacity(256));
        c.bytes(label.as_bytes());
        c
    }

    /// A length-prefixed field. Inputs are bounded far below 4 GiB by the parsers.
    pub(crate) fn bytes(&mut self, b: &[u8]) -> &mut Self {
        let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(b);
        self
    }

    /// A length-prefixed UTF-8 string.
    pub(crate) fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    /// A fixed-width u32.
    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// A fixed-width u64.
    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// A list: its element count as u32, then each element length-prefixed.
    pub(crate) fn list(&mut self, items: &[Vec<u8>]) -> &mut Self {
        self.u32(u32::try_from(items.len()).unwrap_or(u32::MAX));
        for item in items {
            self.bytes(item);
        }
        self
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Parses hex of either case; `None` on odd length or a non-hex character.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|pair| {
            let hi = char::from(*pair.first()?).to_digit(16)?;
            let lo = char::from(*pair.get(1)?).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

pub(crate) fn b64_decode(s: &str) -> Option<Vec<u8>> {
    STANDARD.decode(s.as_bytes()).ok()
}

/// serde: `Vec<u8>` as standard base64.
pub(crate) mod b64_bytes {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        STANDARD.decode(s.as_bytes()).map_err(serde::de::Error::custom)
    }
}

/// serde: `Vec<Vec<u8>>` as a list of standard base64 strings.
pub(crate) mod b64_list {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|b| STANDARD.encode(b)))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let list = Vec::<String>::deserialize(d)?;
        list.iter()
            .map(|s| STANDARD.decode(s.as_bytes()).map_err(serde::de::Error::custom))
            .collect()
    }
}

/// serde: `Option<Vec<u8>>` or `Option<[u8; N]>` as standard base64 or `null`; a wrong length is refused.
pub(crate) mod b64_opt {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<T: AsRef<[u8]>, S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_some(&STANDARD.encode(b.as_ref())),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, T: TryFrom<Vec<u8>>, D: Deserializer<'de>>(d: D) -> Result<Option<T>, D::Error> {
        let Some(text) = Option::<std::borrow::Cow<str>>::deserialize(d)? else {
            return Ok(None);
        };
        let bytes = STANDARD.decode(text.as_bytes()).map_err(serde::de::Error::custom)?;
        T::try_from(bytes)
            .map(Some)
            .map_err(|_| serde::de::Error::custom("wrong length"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canon_is_length_prefixed() {
        let mut c = Canon::new("L");
        c.str("ab").u32(7).u64(1).list(&[vec![9], vec![]]);
        assert_eq!(
            c.finish(),
            [
                &[0, 0, 0, 1, b'L'][..],
                &[0, 0, 0, 2, b'a', b'b'],
                &[0, 0, 0, 7],
                &[0, 0, 0, 0, 0, 0, 0, 1],
                &[0, 0, 0, 2, 0, 0, 0, 1, 9, 0, 0, 0, 0],
            ]
            .concat()
        );
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(unhex("00ABff"), Some(vec![0, 0xab, 0xff]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("é0"), None);
    }
}

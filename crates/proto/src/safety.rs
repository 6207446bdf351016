//! Safety numbers: 60 digits from both users' names and public keys, the same on both sides.
//!
//! Each side's half (after Signal's numeric fingerprint): `h = SHA-512(0x0001 ‖ lp(spki) ‖ lp(username))`,
//! then 5,200 times `h = SHA-512(h ‖ spki)`; the first 30 bytes, as six 5-byte big-endian integers each
//! taken mod 100,000, give 30 digits. The two halves are sorted and concatenated.

use std::fmt;

use openssl::sha::Sha512;

use crate::crypto::ct_eq;
use crate::encoding::Canon;
use crate::error::Result;
use crate::identity::Username;
use crate::verify::Certificate;

/// Version of the safety-number scheme.
pub const SAFETY_VERSION: u16 = 1;
/// SHA-512 iterations per half.
pub const SAFETY_ITERATIONS: u32 = 5_200;
/// Prefix of the QR payload.
pub const QR_PREFIX: &str = "MAGPIE-SN1:";

/// A 60-digit safety number.
#[derive(Clone, PartialEq, Eq)]
pub struct SafetyNumber {
    digits: String,
}

impl SafetyNumber {
    /// From both users' canonical names and SPKI DER, in either order.
    pub fn compute(a: (&Username, &[u8]), b: (&Username, &[u8])) -> Self {
        let ha = half(a.0, a.1);
        let hb = half(b.0, b.1);
        let digits = if ha <= hb { ha + &hb } else { hb + &ha };
        Self { digits }
    }

    /// From two certificates' CNs and public keys.
    pub fn from_certificates(a: (&Username, &Certificate), b: (&Username, &Certificate)) -> Result<Self> {
        let spki_a = a.1.public_key_der()?;
        let spki_b = b.1.public_key_der()?;
        Ok(Self::compute((a.0, &spki_a), (b.0, &spki_b)))
    }

    /// The 60 digits, no separators.
    pub fn digits(&self) -> &str {
        &self.digits
    }

    /// Twelve groups of five digits.
    pub fn groups(&self) -> Vec<&str> {
        (0..12).filter_map(|i| self.digits.get(i * 5..i * 5 + 5)).collect()
    }

    /// The string to encode in the QR code: `MAGPIE-SN1:` then the 60 digits.
    pub fn qr_payload(&self) -> String {
        format!("{QR_PREFIX}{}", self.digits)
    }

    /// Whether a scanned QR payload shows the same number (constant time).
    pub fn matches_qr(&self, scanned: &str) -> bool {
        ct_eq(scanned.trim().as_bytes(), self.qr_payload().as_bytes())
    }
}

impl fmt::Display for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.groups().join(" "))
    }
}

impl fmt::Debug for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SafetyNumber({self})")
    }
}

fn half(username: &Username, spki: &[u8]) -> String {
    let mut first = Canon::default();
    first.bytes(spki).str(username.as_str());
    let mut h = Sha512::new();
    h.update(&SAFETY_VERSION.to_be_bytes());
    h.update(&first.finish());
    let mut digest = h.finish();
    for _ in 0..SAFETY_ITERATIONS {
        let mut h = Sha512::new();
        h.update(&digest);
        h.update(spki);
        digest = h.finish();
    }
    let mut out = String::with_capacity(30);
    for chunk in digest.chunks(5).take(6) {
        let value = chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        out.push_str(&format!("{:05}", value % 100_000));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_and_sixty_digits() {
        let a = Username::canonical("alice").unwrap();
        let b = Username::canonical("bob").unwrap();
        let x = SafetyNumber::compute((&a, b"key-a"), (&b, b"key-b"));
        let y = SafetyNumber::compute((&b, b"key-b"), (&a, b"key-a"));
        assert_eq!(x, y);
        assert_eq!(x.digits().len(), 60);
        assert!(x.digits().bytes().all(|c| c.is_ascii_digit()));
        assert_eq!(x.groups().len(), 12);
        assert!(x.matches_qr(&y.qr_payload()));
        let z = SafetyNumber::compute((&a, b"key-c"), (&b, b"key-b"));
        assert_ne!(x, z);
        assert!(!x.matches_qr(&z.qr_payload()));
        assert!(!x.matches_qr("junk"));
    }
}

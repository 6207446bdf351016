//! The backup file's envelope (PROTOCOL.md, "Backup file"): a plaintext header naming the format and the KDF's
//! parameters, then the payload sealed in segments under a key derived from the user's passphrase.
//!
//! ```text
//! header    = "MAGPIEBK" ‖ u16be(version = 1) ‖ u8(kdf = 1: scrypt) ‖ u8(log2 N) ‖ u32be(r) ‖ u32be(p)
//!             ‖ salt (16) ‖ u32be(segment bytes) ‖ key check (16)                              = 56 bytes
//! key       = scrypt(passphrase as UTF-8, salt, N, r, p, 32 bytes)
//! key check = HMAC-SHA256(key, "magpie v1 backup key check")[..16]
//! nonce_i   = u64be(i) ‖ u32be(1 if last else 0)
//! AD        = lp("magpie v1 backup") ‖ header
//! body      = AES-256-GCM(key, nonce_i, AD, segment i) ‖ tag_i, for i = 0, 1, …, last
//! ```
//!
//! Every segment but the last holds exactly `segment bytes` of payload; the last holds 1 to `segment bytes`. The
//! header is in every segment's AD, so a changed parameter fails the first tag; the index and last flag make a
//! segment moved, dropped or repeated fail, and a file cut at a segment boundary lack the segment flagged last.
//! The key check tells a wrong passphrase from a damaged file (it also lets a guess be checked without
//! decrypting, which the first segment allows anyway).

use zeroize::Zeroizing;

use crate::crypto::{hmac_sha256, random_array, TAG_LEN};
use crate::encoding::Canon;
use crate::error::{malformed, Error, Result};
use crate::file::segment_nonce;
use crate::symmetric::{aes_gcm_open_in_place, aes_gcm_seal_in_place};

/// The file's first bytes.
pub const BACKUP_MAGIC: &[u8; 8] = b"MAGPIEBK";
/// The format this code writes and reads.
pub const BACKUP_VERSION: u16 = 1;
/// The header's length in bytes.
pub const BACKUP_HEADER_LEN: usize = 56;
/// Payload bytes per segment written (readers take what the header says, within [`MAX_SEGMENT_BYTES`]).
pub const BACKUP_SEGMENT_BYTES: u32 = 1 << 20;
/// The largest segment a reader accepts: it holds one in memory.
pub const MAX_SEGMENT_BYTES: u32 = 16 << 20;
/// The smallest: a segment costs a tag and an AES-GCM call, so a file of tiny ones costs more work per byte.
pub const MIN_SEGMENT_BYTES: u32 = 16;
/// The most memory scrypt may ask for (128 · r · N bytes): a file cannot make a reader allocate more.
pub const MAX_KDF_MEMORY: u64 = 256 << 20;
const KDF_SCRYPT: u8 = 1;
const AD_LABEL: &str = "magpie v1 backup";
const KEY_CHECK_LABEL: &[u8] = b"magpie v1 backup key check";

/// scrypt's parameters and salt, as the header carries them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// N = 2^log2_n.
    pub log2_n: u8,
    /// Block size.
    pub r: u32,
    /// Parallelism (OpenSSL runs the lanes one after another: time grows with p, memory does not).
    pub p: u32,
    /// Random, per backup.
    pub salt: [u8; 16],
}

impl KdfParams {
    /// What a new backup uses: N = 2^17, r = 8, p = 2 — 128 MiB of memory and about a second on a 2-core
    /// laptop of 2024 (0.5 s per lane measured here), with a fresh salt.
    pub fn recommended() -> Result<Self> {
        Ok(Self {
            log2_n: 17,
            r: 8,
            p: 2,
            salt: random_array()?,
        })
    }

    /// The memory scrypt needs with these parameters, bytes.
    pub fn memory(&self) -> u64 {
        128u64
            .saturating_mul(u64::from(self.r))
            .saturating_mul(1u64.checked_shl(u32::from(self.log2_n)).unwrap_or(u64::MAX))
    }

    fn check(&self) -> Result<()> {
        // scrypt itself wants N < 2^(16·r); p lanes run one after another here, so p bounds the time.
        let sane = (1..=30).contains(&self.log2_n)
            && (1..=64).contains(&self.r)
            && u32::from(self.log2_n) < 16 * self.r
            && (1..=4).contains(&self.p)
            && self.memory() <= MAX_KDF_MEMORY;
        match sane {
            true => Ok(()),
            false => Err(malformed(format!(
                "scrypt parameters N=2^{} r={} p={} are outside what Magpie accepts",
                self.log2_n, self.r, self.p
            ))),
        }
    }
}

/// scrypt of the passphrase (its UTF-8 bytes) under `kdf`, 32 bytes: a backup's key, or the app lock's key
/// (`magpie_core::profile::lock`). Refuses parameters outside [`KdfParams`]' bounds.
pub fn passphrase_key(passphrase: &str, kdf: &KdfParams) -> Result<Zeroizing<[u8; 32]>> {
    kdf.check()?;
    let mut key = Zeroizing::new([0u8; 32]);
    let n = 1u64 << kdf.log2_n;
    openssl::pkcs5::scrypt(
        passphrase.as_bytes(),
        &kdf.salt,
        n,
        u64::from(kdf.r),
        u64::from(kdf.p),
        kdf.memory() + (1 << 20),
        key.as_mut_slice(),
    )
    .map_err(|e| Error::Crypto(format!("scrypt: {e}")))?;
    Ok(key)
}

/// The key a backup is sealed with. Wiped when dropped; never printed.
pub struct BackupKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackupKey(<redacted>)")
    }
}

impl BackupKey {
    /// scrypt of the passphrase (as typed: its UTF-8 bytes) under `kdf`. Takes about a second with the
    /// recommended parameters: call it off any UI thread.
    pub fn derive(passphrase: &str, kdf: &KdfParams) -> Result<Self> {
        passphrase_key(passphrase, kdf).map(Self)
    }

    /// The header's key check for this key.
    pub fn check_value(&self) -> Result<[u8; 16]> {
        let mac = hmac_sha256(self.0.as_slice(), &[KEY_CHECK_LABEL])?;
        let mut out = [0u8; 16];
        out.copy_from_slice(&mac[..16]);
        Ok(out)
    }
}

/// A backup's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackupHeader {
    /// The format version.
    pub version: u16,
    /// How the key was derived.
    pub kdf: KdfParams,
    /// Payload bytes per segment.
    pub segment_bytes: u32,
    /// Tells a wrong passphrase from a damaged file.
    pub key_check: [u8; 16],
}

/// What reading a header found wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderProblem {
    /// The file does not start as a backup does.
    #[error("not a Magpie backup")]
    NotABackup,
    /// A format this code does not read (made by a newer Magpie).
    #[error("backup format {0} is newer than this Magpie reads")]
    NewerFormat(u16),
    /// Fields out of range.
    #[error("{0}")]
    Malformed(String),
}

impl BackupHeader {
    /// A header for a new backup sealed with `key` derived under `kdf`.
    pub fn new(kdf: KdfParams, key: &BackupKey) -> Result<Self> {
        Ok(Self {
            version: BACKUP_VERSION,
            kdf,
            segment_bytes: BACKUP_SEGMENT_BYTES,
            key_check: key.check_value()?,
        })
    }

    /// The header's bytes.
    pub fn encode(&self) -> [u8; BACKUP_HEADER_LEN] {
        let mut out = [0u8; BACKUP_HEADER_LEN];
        out[..8].copy_from_slice(BACKUP_MAGIC);
        out[8..10].copy_from_slice(&self.version.to_be_bytes());
        out[10] = KDF_SCRYPT;
        out[11] = self.kdf.log2_n;
        out[12..16].copy_from_slice(&self.kdf.r.to_be_bytes());
        out[16..20].copy_from_slice(&self.kdf.p.to_be_bytes());
        out[20..36].copy_from_slice(&self.kdf.salt);
        out[36..40].copy_from_slice(&self.segment_bytes.to_be_bytes());
        out[40..56].copy_from_slice(&self.key_check);
        out
    }

    /// Reads a header: [`HeaderProblem`] says why a file is refused before any key is derived.
    pub fn decode(bytes: &[u8]) -> std::result::Result<Self, HeaderProblem> {
        if bytes.len() < BACKUP_HEADER_LEN || &bytes[..8] != BACKUP_MAGIC {
            return Err(HeaderProblem::NotABackup);
        }
        let u32_at = |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let version = u16::from_be_bytes([bytes[8], bytes[9]]);
        if version > BACKUP_VERSION {
            return Err(HeaderProblem::NewerFormat(version));
        }
        if version != BACKUP_VERSION {
            return Err(HeaderProblem::Malformed(format!(
                "backup format {version} does not exist"
            )));
        }
        if bytes[10] != KDF_SCRYPT {
            return Err(HeaderProblem::Malformed(format!(
                "key derivation {} is unknown",
                bytes[10]
            )));
        }
        let mut salt = [0u8; 16];
        salt.copy_from_slice(&bytes[20..36]);
        let kdf = KdfParams {
            log2_n: bytes[11],
            r: u32_at(12),
            p: u32_at(16),
            salt,
        };
        kdf.check().map_err(|e| HeaderProblem::Malformed(e.to_string()))?;
        let segment_bytes = u32_at(36);
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&segment_bytes) {
            return Err(HeaderProblem::Malformed(format!("segments of {segment_bytes} bytes")));
        }
        let mut key_check = [0u8; 16];
        key_check.copy_from_slice(&bytes[40..56]);
        Ok(Self {
            version,
            kdf,
            segment_bytes,
            key_check,
        })
    }

    /// Whether `key` is the one this backup was sealed with (the passphrase was right).
    pub fn accepts(&self, key: &BackupKey) -> Result<bool> {
        let check = key.check_value()?;
        Ok(openssl::memcmp::eq(&check, &self.key_check))
    }

    fn ad(&self) -> Vec<u8> {
        let mut ad = Canon::new(AD_LABEL).finish();
        ad.extend_from_slice(&self.encode());
        ad
    }

    /// Bytes of segment `index` sealed: its payload and a tag.
    pub fn sealed_len(plain_len: usize) -> usize {
        plain_len + TAG_LEN
    }

    /// Seals payload segment `index`: a full segment, or (flagged `last`) 1 to a full segment of bytes.
    pub fn seal_segment(&self, key: &BackupKey, index: u64, last: bool, plain: &[u8]) -> Result<Vec<u8>> {
        let full = plain.len() == self.segment_bytes as usize;
        if !(full || (last && !plain.is_empty() && plain.len() < self.segment_bytes as usize)) {
            return Err(malformed(format!("a backup segment of {} bytes", plain.len())));
        }
        let mut buf = Zeroizing::new(Vec::with_capacity(plain.len() + TAG_LEN));
        buf.extend_from_slice(plain);
        aes_gcm_seal_in_place(&key.0, &segment_nonce(index, last), &self.ad(), buf)
    }

    /// Opens segment `index`; one that is not this backup's segment `index` (tampered, moved, cut, flagged last
    /// in the wrong place) is the opaque `Decrypt`.
    pub fn open_segment(&self, key: &BackupKey, index: u64, last: bool, sealed: Vec<u8>) -> Result<Zeroizing<Vec<u8>>> {
        aes_gcm_open_in_place(&key.0, &segment_nonce(index, last), &self.ad(), sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick_kdf() -> KdfParams {
        KdfParams {
            log2_n: 10,
            r: 8,
            p: 1,
            salt: [7; 16],
        }
    }

    #[test]
    fn the_header_round_trips_and_refuses_what_it_cannot_read() {
        let key = BackupKey::derive("correct horse", &quick_kdf()).unwrap();
        let header = BackupHeader::new(quick_kdf(), &key).unwrap();
        let bytes = header.encode();
        assert_eq!(BackupHeader::decode(&bytes), Ok(header));
        assert!(header.accepts(&key).unwrap());
        assert!(!header
            .accepts(&BackupKey::derive("wrong horse", &quick_kdf()).unwrap())
            .unwrap());

        assert_eq!(
            BackupHeader::decode(b"PK\x03\x04 a zip file, not a backup"),
            Err(HeaderProblem::NotABackup)
        );
        assert_eq!(BackupHeader::decode(&bytes[..30]), Err(HeaderProblem::NotABackup));
        let mut newer = bytes;
        newer[9] = 2;
        assert_eq!(BackupHeader::decode(&newer), Err(HeaderProblem::NewerFormat(2)));
        let mut greedy = bytes;
        greedy[11] = 30; // 128 GiB of scrypt memory
        assert!(matches!(
            BackupHeader::decode(&greedy),
            Err(HeaderProblem::Malformed(_))
        ));
        let mut huge = bytes;
        huge[36..40].copy_from_slice(&(MAX_SEGMENT_BYTES + 1).to_be_bytes());
        assert!(matches!(BackupHeader::decode(&huge), Err(HeaderProblem::Malformed(_))));
    }

    #[test]
    fn segments_open_only_in_place_and_with_their_header() {
        let key = BackupKey::derive("pass", &quick_kdf()).unwrap();
        let mut header = BackupHeader::new(quick_kdf(), &key).unwrap();
        header.segment_bytes = 4;
        let first = header.seal_segment(&key, 0, false, b"abcd").unwrap();
        let last = header.seal_segment(&key, 1, true, b"ef").unwrap();
        assert_eq!(
            header.open_segment(&key, 0, false, first.clone()).unwrap().as_slice(),
            b"abcd"
        );
        assert_eq!(
            header.open_segment(&key, 1, true, last.clone()).unwrap().as_slice(),
            b"ef"
        );
        // Moved, flagged last early (a cut file), or under a changed header: all fail.
        assert!(header.open_segment(&key, 1, false, first.clone()).is_err());
        assert!(header.open_segment(&key, 0, true, first.clone()).is_err());
        let mut other = header;
        other.kdf.r = 9;
        assert!(other.open_segment(&key, 0, false, first).is_err());
        // Short segments only at the end, never empty.
        assert!(header.seal_segment(&key, 0, false, b"abc").is_err());
        assert!(header.seal_segment(&key, 0, true, b"").is_err());
        assert_eq!(format!("{key:?}"), "BackupKey(<redacted>)");
    }
}

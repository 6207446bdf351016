//! Files, sealed in segments for a blob that the relay stores without reading (PROTOCOL.md, "Files").
//!
//! ```text
//! key       = 32 random bytes, one per file, sent inside the (sealed) file message
//! segment i = the plaintext's bytes [i·65536, (i+1)·65536); the last may be shorter, and an empty file is one
//!             empty segment, so every blob ends with a segment flagged last
//! nonce_i   = u64be(i) ‖ u32be(1 if last else 0)
//! AD        = lp("magpie v1 file")
//! blob      = AES-256-GCM(key, nonce_i, AD, segment i) ‖ tag_i, for i = 0, 1, …, last
//! ```
//!
//! The index and the last flag in the nonce make a segment moved, dropped, repeated or taken from another file
//! fail its tag, and a blob cut at a segment boundary lack the segment flagged last. The file message also carries
//! the blob's SHA-256 and the file's size: the size says where every segment starts and which one is last.

mod descriptor;

pub use descriptor::{
    safe_file_name, FileDescriptor, Thumbnail, MAX_NAME_BYTES, MAX_THUMBNAIL_BYTES, MAX_THUMBNAIL_SIDE,
};

use crate::crypto::{random_array, TAG_LEN};
use crate::encoding::Canon;
use crate::error::{malformed, Result};
use crate::secret::FileKey;
use crate::symmetric::{aes_gcm_open_in_place, aes_gcm_seal_in_place};
use zeroize::Zeroizing;

/// Plaintext bytes in a segment (all but the last).
pub const SEGMENT_BYTES: usize = 64 * 1024;
/// Bytes of a sealed full segment: the plaintext and its tag.
pub const SEALED_SEGMENT_BYTES: usize = SEGMENT_BYTES + TAG_LEN;
/// The associated data of every segment.
const FILE_AD_LABEL: &str = "magpie v1 file";

/// The layout of a sealed file of `size` plaintext bytes: how many segments, where each starts, how long each is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileLayout {
    /// The plaintext's length in bytes.
    pub size: u64,
}

impl FileLayout {
    /// The layout of a file of `size` bytes.
    pub fn new(size: u64) -> Self {
        Self { size }
    }

    /// Segments in the blob: at least one.
    pub fn segments(&self) -> u64 {
        self.size.div_ceil(SEGMENT_BYTES as u64).max(1)
    }

    /// The index of the segment flagged last.
    pub fn last_index(&self) -> u64 {
        self.segments() - 1
    }

    /// The blob's length: the plaintext and one tag per segment.
    pub fn sealed_len(&self) -> u64 {
        self.size + self.segments() * TAG_LEN as u64
    }

    /// Plaintext bytes in segment `index` (0 past the last).
    pub fn plain_len(&self, index: u64) -> usize {
        let start = index.saturating_mul(SEGMENT_BYTES as u64);
        let left = self.size.saturating_sub(start).min(SEGMENT_BYTES as u64);
        match index.cmp(&self.last_index()) {
            std::cmp::Ordering::Greater => 0,
            _ => usize::try_from(left).unwrap_or(SEGMENT_BYTES),
        }
    }

    /// Sealed bytes of segment `index`.
    pub fn sealed_segment_len(&self, index: u64) -> usize {
        self.plain_len(index) + TAG_LEN
    }

    /// Where segment `index` starts in the blob.
    pub fn sealed_offset(&self, index: u64) -> u64 {
        index.saturating_mul(SEALED_SEGMENT_BYTES as u64)
    }
}

impl FileKey {
    /// A fresh random key for one file.
    pub fn generate() -> Result<Self> {
        let mut bytes = random_array::<32>()?;
        let key = Self::from_bytes(bytes);
        zeroize::Zeroize::zeroize(&mut bytes);
        Ok(key)
    }
}

/// A segment's nonce, for files and backups alike: its index and whether it is the last.
pub(crate) fn segment_nonce(index: u64, last: bool) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[..8].copy_from_slice(&index.to_be_bytes());
    nonce[8..].copy_from_slice(&u32::from(last).to_be_bytes());
    nonce
}

fn file_ad() -> Vec<u8> {
    Canon::new(FILE_AD_LABEL).finish()
}

/// Seals segment `index` of a file laid out as `layout`; `plain` must be exactly that segment's bytes.
pub fn seal_segment(key: &FileKey, layout: &FileLayout, index: u64, plain: &[u8]) -> Result<Vec<u8>> {
    if index > layout.last_index() || plain.len() != layout.plain_len(index) {
        return Err(malformed(format!(
            "segment {index} of a {}-byte file holds {} bytes, not {}",
            layout.size,
            layout.plain_len(index),
            plain.len()
        )));
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(plain.len() + TAG_LEN));
    buf.extend_from_slice(plain);
    let last = index == layout.last_index();
    aes_gcm_seal_in_place(key.expose_secret(), &segment_nonce(index, last), &file_ad(), buf)
}

/// Opens segment `index` of a file laid out as `layout`. A segment of the wrong length is `Malformed`; one that
/// is not this file's segment `index` (tampered, moved, from another file, or flagged last in the wrong place) is
/// the opaque `Decrypt`.
pub fn open_segment(key: &FileKey, layout: &FileLayout, index: u64, sealed: Vec<u8>) -> Result<Zeroizing<Vec<u8>>> {
    if index > layout.last_index() || sealed.len() != layout.sealed_segment_len(index) {
        return Err(malformed(format!(
            "segment {index} of a {}-byte file is {} bytes sealed, not {}",
            layout.size,
            layout.sealed_segment_len(index),
            sealed.len()
        )));
    }
    let last = index == layout.last_index();
    aes_gcm_open_in_place(key.expose_secret(), &segment_nonce(index, last), &file_ad(), sealed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    fn key() -> FileKey {
        FileKey::from_bytes([7; 32])
    }

    fn seal_all(key: &FileKey, plain: &[u8]) -> Vec<Vec<u8>> {
        let layout = FileLayout::new(plain.len() as u64);
        (0..layout.segments())
            .map(|i| {
                let start = i as usize * SEGMENT_BYTES;
                let end = start + layout.plain_len(i);
                seal_segment(key, &layout, i, &plain[start..end]).unwrap()
            })
            .collect()
    }

    #[test]
    fn layouts_count_segments_and_tags() {
        let cases = [
            (0, 1, 16),
            (1, 1, 17),
            (65_536, 1, 65_552),
            (65_537, 2, 65_569),
            (200 << 20, 3200, (200 << 20) + 3200 * 16),
        ];
        for (size, segments, sealed) in cases {
            let layout = FileLayout::new(size);
            assert_eq!(layout.segments(), segments, "{size}");
            assert_eq!(layout.sealed_len(), sealed, "{size}");
            let summed: u64 = (0..segments).map(|i| layout.sealed_segment_len(i) as u64).sum();
            assert_eq!(summed, sealed, "{size}");
        }
        assert_eq!(FileLayout::new(65_537).plain_len(1), 1);
        assert_eq!(FileLayout::new(65_537).plain_len(2), 0);
    }

    #[test]
    fn every_segment_opens_in_its_place_and_nowhere_else() {
        let plain: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
        let layout = FileLayout::new(plain.len() as u64);
        let sealed = seal_all(&key(), &plain);
        assert_eq!(sealed.len(), 3);
        let mut opened = Vec::new();
        for (i, s) in sealed.iter().enumerate() {
            opened.extend_from_slice(&open_segment(&key(), &layout, i as u64, s.clone()).unwrap());
        }
        assert_eq!(opened, plain);
        // Swapped full segments: each fails in the other's place.
        assert!(matches!(
            open_segment(&key(), &layout, 1, sealed[0].clone()),
            Err(Error::Decrypt)
        ));
        // A flipped bit.
        let mut flipped = sealed[1].clone();
        flipped[100] ^= 1;
        assert!(matches!(open_segment(&key(), &layout, 1, flipped), Err(Error::Decrypt)));
        // Another file's key.
        let other = FileKey::from_bytes([8; 32]);
        assert!(matches!(
            open_segment(&other, &layout, 0, sealed[0].clone()),
            Err(Error::Decrypt)
        ));
        // A wrong length is malformed before any decryption.
        assert!(matches!(
            open_segment(&key(), &layout, 2, sealed[1].clone()),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn a_blob_cut_at_a_segment_boundary_lacks_its_last_segment() {
        // Two full segments: cut after the first, it would pass for a one-segment file of 65,536 bytes, but the
        // first segment was sealed as not last.
        let plain = vec![3u8; 2 * SEGMENT_BYTES];
        let sealed = seal_all(&key(), &plain);
        let cut = FileLayout::new(SEGMENT_BYTES as u64);
        assert!(matches!(
            open_segment(&key(), &cut, 0, sealed[0].clone()),
            Err(Error::Decrypt)
        ));
        // And a blob made longer: the old last segment in a non-last place.
        let longer = FileLayout::new(3 * SEGMENT_BYTES as u64);
        assert!(matches!(
            open_segment(&key(), &longer, 1, sealed[1].clone()),
            Err(Error::Decrypt)
        ));
    }

    #[test]
    fn an_empty_file_is_one_empty_last_segment() {
        let layout = FileLayout::new(0);
        let sealed = seal_segment(&key(), &layout, 0, &[]).unwrap();
        assert_eq!(sealed.len(), TAG_LEN);
        assert!(open_segment(&key(), &layout, 0, sealed).unwrap().is_empty());
    }
}

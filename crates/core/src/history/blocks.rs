//! The plaintext layouts of the message trees: a chat's messages packed into blocks, the id index packed into
//! buckets.
//!
//! Why packed: sled 0.34 splits a leaf at 16 entries and keeps a page-table entry and a snapshot record in memory
//! for every page. One row per message plus one per index entry made ~170,000 pages at 1M messages, about 60 MB of
//! heap whatever the cache bound. Blocks of up to [`MAX_BLOCK_MESSAGES`] messages and 65,536 index buckets make
//! that ~100× fewer pages, and a block stays under sled's blob threshold (a page of 16 blocks < 128 KiB).
//!
//! A block is a sequence of `seq (u64 BE) ‖ message id (16) ‖ len (u32 BE) ‖ message JSON`, ascending by seq.
//! A bucket is a sequence of 64-byte entries `tag (16) ‖ chat (32) ‖ block start (u64 BE) ‖ seq (u64 BE)`, where
//! the bucket is the first two bytes of the message id's keyed hash and the tag its next sixteen.

use std::ops::Range;

use uuid::Uuid;

use super::{MESSAGE_BLOCKS, MESSAGE_INDEX};
use crate::error::{Error, Result};

/// A block takes no more messages than this...
pub(super) const MAX_BLOCK_MESSAGES: usize = 32;
/// ...nor more plaintext than this once it holds one message (a single long message gets a block of its own).
pub(super) const MAX_BLOCK_BYTES: usize = 4096;

pub(super) const CHAT_ID_LEN: usize = 32;
pub(super) const BLOCK_KEY_LEN: usize = CHAT_ID_LEN + 8;
pub(super) const BUCKET_KEY_LEN: usize = 2;
const HEADER_LEN: usize = 8 + 16 + 4;
const TAG_LEN: usize = 16;
const INDEX_ENTRY_LEN: usize = TAG_LEN + CHAT_ID_LEN + 8 + 8;

pub(super) type ChatId = [u8; CHAT_ID_LEN];
pub(super) type BlockKey = [u8; BLOCK_KEY_LEN];

/// The key of the block of `chat` that starts at `start`.
pub(super) fn block_key(chat: &ChatId, start: u64) -> BlockKey {
    let mut key = [0u8; BLOCK_KEY_LEN];
    key[..CHAT_ID_LEN].copy_from_slice(chat);
    key[CHAT_ID_LEN..].copy_from_slice(&start.to_be_bytes());
    key
}

/// The start seq in a block's key (the inverse of [`block_key`]).
pub(super) fn block_start(key: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = key
        .get(CHAT_ID_LEN..)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(corrupt_blocks)?;
    Ok(u64::from_be_bytes(bytes))
}

pub(super) fn corrupt_blocks() -> Error {
    Error::HistoryCorrupt { tree: MESSAGE_BLOCKS }
}

pub(super) fn corrupt_index() -> Error {
    Error::HistoryCorrupt { tree: MESSAGE_INDEX }
}

/// One message in a decoded block: its seq, id, and where its JSON sits in the block.
#[derive(Clone, Debug)]
pub(super) struct Slot {
    pub seq: u64,
    pub id: Uuid,
    pub json: Range<usize>,
    /// The whole entry, header included.
    pub span: Range<usize>,
}

/// The slots of a block's plaintext, in stored (ascending seq) order; a malformed block is corrupt.
pub(super) fn slots(block: &[u8]) -> Result<Vec<Slot>> {
    let mut out = Vec::with_capacity(MAX_BLOCK_MESSAGES);
    let mut at = 0;
    while at < block.len() {
        let header = block.get(at..at + HEADER_LEN).ok_or_else(corrupt_blocks)?;
        let (seq, rest) = header.split_at(8);
        let (id, len) = rest.split_at(16);
        let len = u32::from_be_bytes(len.try_into().map_err(|_| corrupt_blocks())?) as usize;
        let json = at + HEADER_LEN..at + HEADER_LEN + len;
        if json.end > block.len() {
            return Err(corrupt_blocks());
        }
        out.push(Slot {
            seq: u64::from_be_bytes(seq.try_into().map_err(|_| corrupt_blocks())?),
            id: Uuid::from_slice(id).map_err(|_| corrupt_blocks())?,
            span: at..json.end,
            json: json.clone(),
        });
        at = json.end;
    }
    Ok(out)
}

/// The bytes of one block entry.
pub(super) fn encode_slot(seq: u64, id: Uuid, json: &[u8]) -> Result<Vec<u8>> {
    let len = u32::try_from(json.len()).map_err(|_| Error::Crypto("message too long"))?;
    let mut out = Vec::with_capacity(HEADER_LEN + json.len());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(json);
    Ok(out)
}

/// Whether a block of `count` messages and `len` plaintext bytes has room for an entry of `entry_len` bytes.
pub(super) fn has_room(count: usize, len: usize, entry_len: usize) -> bool {
    count == 0 || (count < MAX_BLOCK_MESSAGES && len + entry_len <= MAX_BLOCK_BYTES)
}

/// Where a message sits: its chat, the block holding it, its seq.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Location {
    pub chat: ChatId,
    pub block: u64,
    pub seq: u64,
}

impl Location {
    pub(super) fn block_key(&self) -> BlockKey {
        block_key(&self.chat, self.block)
    }
}

/// A message id's keyed hash split into its bucket key and its tag within the bucket.
pub(super) fn bucket_and_tag(id_hash: &[u8; 32]) -> ([u8; BUCKET_KEY_LEN], [u8; TAG_LEN]) {
    let mut bucket = [0u8; BUCKET_KEY_LEN];
    bucket.copy_from_slice(&id_hash[..BUCKET_KEY_LEN]);
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&id_hash[BUCKET_KEY_LEN..BUCKET_KEY_LEN + TAG_LEN]);
    (bucket, tag)
}

/// The entry for `tag` in a bucket's plaintext: its byte offset and location; a malformed bucket is corrupt.
pub(super) fn find_in_bucket(bucket: &[u8], tag: &[u8; TAG_LEN]) -> Result<Option<(usize, Location)>> {
    if !bucket.len().is_multiple_of(INDEX_ENTRY_LEN) {
        return Err(corrupt_index());
    }
    for (i, entry) in bucket.chunks_exact(INDEX_ENTRY_LEN).enumerate() {
        if entry[..TAG_LEN] == tag[..] {
            let (chat, numbers) = entry[TAG_LEN..].split_at(CHAT_ID_LEN);
            let (block, seq) = numbers.split_at(8);
            let location = Location {
                chat: chat.try_into().map_err(|_| corrupt_index())?,
                block: u64::from_be_bytes(block.try_into().map_err(|_| corrupt_index())?),
                seq: u64::from_be_bytes(seq.try_into().map_err(|_| corrupt_index())?),
            };
            return Ok(Some((i * INDEX_ENTRY_LEN, location)));
        }
    }
    Ok(None)
}

/// Appends the entry for `tag` at `location` to a bucket's plaintext.
pub(super) fn push_to_bucket(bucket: &mut Vec<u8>, tag: &[u8; TAG_LEN], location: &Location) {
    bucket.extend_from_slice(tag);
    bucket.extend_from_slice(&location.chat);
    bucket.extend_from_slice(&location.block.to_be_bytes());
    bucket.extend_from_slice(&location.seq.to_be_bytes());
}

/// Removes the entry at `offset` (from [`find_in_bucket`]).
pub(super) fn remove_from_bucket(bucket: &mut Vec<u8>, offset: usize) {
    bucket.drain(offset..offset + INDEX_ENTRY_LEN);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_round_trip_and_truncation_is_corrupt() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut block = encode_slot(7, a, b"{\"x\":1}").unwrap();
        block.extend(encode_slot(9, b, b"").unwrap());
        let slots = slots(&block).unwrap();
        assert_eq!(slots.len(), 2);
        assert_eq!(
            (slots[0].seq, slots[0].id, &block[slots[0].json.clone()]),
            (7, a, &b"{\"x\":1}"[..])
        );
        assert_eq!((slots[1].seq, slots[1].id, slots[1].json.len()), (9, b, 0));
        assert_eq!(slots[1].span.end, block.len());
        for cut in [1, HEADER_LEN - 1, HEADER_LEN + 3, block.len() - 1] {
            assert!(super::slots(&block[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn a_block_fills_by_count_or_bytes_but_always_takes_its_first_message() {
        assert!(has_room(0, 0, MAX_BLOCK_BYTES * 10));
        assert!(has_room(1, 100, 100));
        assert!(!has_room(MAX_BLOCK_MESSAGES, 100, 10));
        assert!(!has_room(1, MAX_BLOCK_BYTES - 10, 11));
        assert!(has_room(1, MAX_BLOCK_BYTES - 10, 10));
    }

    #[test]
    fn bucket_entries_are_found_by_tag_and_removed() {
        let location = |seq| Location {
            chat: [seq as u8; 32],
            block: seq * 10,
            seq,
        };
        let mut bucket = Vec::new();
        for seq in 1..=3u64 {
            push_to_bucket(&mut bucket, &[seq as u8; TAG_LEN], &location(seq));
        }
        let (offset, found) = find_in_bucket(&bucket, &[2; TAG_LEN]).unwrap().unwrap();
        assert_eq!(found, location(2));
        remove_from_bucket(&mut bucket, offset);
        assert!(find_in_bucket(&bucket, &[2; TAG_LEN]).unwrap().is_none());
        assert_eq!(find_in_bucket(&bucket, &[3; TAG_LEN]).unwrap().unwrap().1, location(3));
        assert!(matches!(
            find_in_bucket(&bucket[1..], &[3; TAG_LEN]),
            Err(Error::HistoryCorrupt { tree: MESSAGE_INDEX })
        ));
    }
}

//! Changes to the message trees within one [`Step`]. Blocks and buckets are opened once, changed in memory, and
//! sealed once in [`Writer::finish`], so a batch of 1,000 messages seals each block and bucket it touches once.
//!
//! Each chat has a head record (key: the chat id alone, which sorts before its blocks) holding the start of its
//! newest block; new messages go there until it is full. Seqs are drawn under the step's write lock, so a seq drawn
//! in a step is larger than every seq already committed and blocks stay in seq order.

use std::collections::HashMap;

use uuid::Uuid;
use zeroize::Zeroizing;

use super::blocks::{
    block_key, bucket_and_tag, corrupt_blocks, corrupt_index, encode_slot, find_in_bucket, has_room, push_to_bucket,
    remove_from_bucket, slots, BlockKey, ChatId, Location, Slot, BUCKET_KEY_LEN, MAX_BLOCK_BYTES,
};
use super::crypt::Sealer;
use super::step::{Step, Tree};
use super::{Appended, Cursor};
use crate::error::Result;

/// A plaintext loaded in this step; empty means absent (and is removed if dirty).
struct Loaded {
    plain: Zeroizing<Vec<u8>>,
    dirty: bool,
}

pub(super) struct Writer<'a, 'h> {
    sealer: &'a Sealer,
    step: &'a Step<'h>,
    tails: HashMap<ChatId, (Option<u64>, bool)>,
    loaded_blocks: HashMap<BlockKey, Loaded>,
    loaded_buckets: HashMap<[u8; BUCKET_KEY_LEN], Loaded>,
}

impl<'a, 'h> Writer<'a, 'h> {
    pub(super) fn new(sealer: &'a Sealer, step: &'a Step<'h>) -> Self {
        Self {
            sealer,
            step,
            tails: HashMap::new(),
            loaded_blocks: HashMap::new(),
            loaded_buckets: HashMap::new(),
        }
    }

    /// Stores a message in `chat` unless its id is indexed already. `seq` is drawn here unless given (a step written
    /// ahead drew it already; seqs must come in ascending order per chat).
    pub(super) fn append(
        &mut self,
        chat: &ChatId,
        id: Uuid,
        id_hash: &[u8; 32],
        json: &[u8],
        seq: Option<u64>,
    ) -> Result<Appended> {
        let (bucket_key, tag) = bucket_and_tag(id_hash);
        if find_in_bucket(&self.bucket(bucket_key)?.plain, &tag)?.is_some() {
            return Ok(Appended::Duplicate);
        }
        let seq = match seq {
            Some(seq) => seq,
            None => self.step.next_id()?,
        };
        let entry = encode_slot(seq, id, json)?;
        // Where in the tail block the entry goes (after every smaller seq), if the tail has room.
        let in_tail = match self.tail(chat)? {
            Some(start) => {
                let block = &self.block(&block_key(chat, start))?.plain;
                let slots = slots(block)?;
                let at = slots
                    .iter()
                    .find(|slot| slot.seq > seq)
                    .map_or(block.len(), |slot| slot.span.start);
                has_room(slots.len(), block.len(), entry.len()).then_some((start, at))
            }
            None => None,
        };
        let (start, at) = in_tail.unwrap_or_else(|| {
            self.tails.insert(*chat, (Some(seq), true));
            (seq, 0)
        });
        let block = self.block(&block_key(chat, start))?;
        block.plain.splice(at..at, entry);
        block.dirty = true;
        let location = Location {
            chat: *chat,
            block: start,
            seq,
        };
        let bucket = self.bucket(bucket_key)?;
        push_to_bucket(&mut bucket.plain, &tag, &location);
        bucket.dirty = true;
        Ok(Appended::New(Cursor::from_value(seq)))
    }

    /// Where the message with this id hash is stored, if indexed.
    pub(super) fn locate(&mut self, id_hash: &[u8; 32]) -> Result<Option<Location>> {
        let (bucket_key, tag) = bucket_and_tag(id_hash);
        let found = find_in_bucket(&self.bucket(bucket_key)?.plain, &tag)?;
        Ok(found.map(|(_, location)| location))
    }

    /// Replaces the JSON of the message at `location` with what `change` makes of it, and returns `change`'s result.
    pub(super) fn change<R>(
        &mut self,
        location: &Location,
        change: impl FnOnce(&[u8]) -> Result<(Zeroizing<Vec<u8>>, R)>,
    ) -> Result<R> {
        let (block, slot) = self.slot_at(location)?;
        let (json, result) = change(&block.plain[slot.json.clone()])?;
        let entry = encode_slot(slot.seq, slot.id, &json)?;
        block.plain.splice(slot.span, entry);
        block.dirty = true;
        Ok(result)
    }

    /// Removes the message with this id hash and its index entry; its location, or `None` if not indexed.
    pub(super) fn remove(&mut self, id_hash: &[u8; 32]) -> Result<Option<Location>> {
        let (bucket_key, tag) = bucket_and_tag(id_hash);
        let bucket = self.bucket(bucket_key)?;
        let Some((offset, location)) = find_in_bucket(&bucket.plain, &tag)? else {
            return Ok(None);
        };
        remove_from_bucket(&mut bucket.plain, offset);
        bucket.dirty = true;
        let (block, slot) = self.slot_at(&location)?;
        block.plain.drain(slot.span);
        block.dirty = true;
        self.forget_tail_if_empty(&location.chat, location.block)?;
        Ok(Some(location))
    }

    /// Removes the messages of block `start` of `chat` with a seq below `below`, and their index entries; how many.
    pub(super) fn clear_block(&mut self, chat: &ChatId, start: u64, below: u64) -> Result<usize> {
        let block = self.block(&block_key(chat, start))?;
        let doomed: Vec<_> = slots(&block.plain)?
            .into_iter()
            .filter(|slot| slot.seq < below)
            .collect();
        for slot in doomed.iter().rev() {
            block.plain.drain(slot.span.clone());
        }
        block.dirty = true;
        for slot in &doomed {
            let id_hash = self.sealer.index(b"message", slot.id.as_bytes())?;
            let (bucket_key, tag) = bucket_and_tag(&id_hash);
            let bucket = self.bucket(bucket_key)?;
            // A message whose index entry is missing (or points elsewhere) is still removed.
            if let Some((offset, location)) = find_in_bucket(&bucket.plain, &tag)? {
                if location.chat == *chat && location.seq == slot.seq {
                    remove_from_bucket(&mut bucket.plain, offset);
                    bucket.dirty = true;
                }
            }
        }
        self.forget_tail_if_empty(chat, start)?;
        Ok(doomed.len())
    }

    /// Seals everything it changed into the step.
    pub(super) fn finish(self) -> Result<()> {
        for (key, loaded) in self.loaded_blocks.iter().filter(|(_, l)| l.dirty) {
            self.write_back(Tree::Blocks, key, &loaded.plain)?;
        }
        for (key, loaded) in self.loaded_buckets.iter().filter(|(_, l)| l.dirty) {
            self.write_back(Tree::Index, key, &loaded.plain)?;
        }
        for (chat, (tail, dirty)) in &self.tails {
            match (tail, dirty) {
                (_, false) => {}
                (None, true) => self.step.remove(Tree::Blocks, chat),
                (Some(start), true) => self.step.seal_put(Tree::Blocks, chat, &start.to_be_bytes())?,
            }
        }
        Ok(())
    }

    /// The block holding the message at `location`, and its slot there; an index entry pointing at nothing is
    /// corrupt.
    fn slot_at(&mut self, location: &Location) -> Result<(&mut Loaded, Slot)> {
        let block = self.block(&location.block_key())?;
        let slot = slots(&block.plain)?
            .into_iter()
            .find(|slot| slot.seq == location.seq)
            .ok_or_else(corrupt_index)?;
        Ok((block, slot))
    }

    /// Seals `plain` under `key` of `tree`, or removes the key when `plain` is empty.
    fn write_back(&self, tree: Tree, key: &[u8], plain: &[u8]) -> Result<()> {
        match plain.is_empty() {
            true => self.step.remove(tree, key),
            false => self.step.seal_put(tree, key, plain)?,
        }
        Ok(())
    }

    /// A tail whose block is now empty is dropped, so the next message starts a block at its own seq.
    fn forget_tail_if_empty(&mut self, chat: &ChatId, start: u64) -> Result<()> {
        if self.tail(chat)? == Some(start) && self.block(&block_key(chat, start))?.plain.is_empty() {
            self.tails.insert(*chat, (None, true));
        }
        Ok(())
    }

    fn tail(&mut self, chat: &ChatId) -> Result<Option<u64>> {
        if let Some((tail, _)) = self.tails.get(chat) {
            return Ok(*tail);
        }
        let tail = match self.step.get(Tree::Blocks, chat)? {
            Some(sealed) => {
                let plain = self.sealer.open(Tree::Blocks.name(), chat, &sealed)?;
                let bytes: [u8; 8] = plain.as_slice().try_into().map_err(|_| corrupt_blocks())?;
                Some(u64::from_be_bytes(bytes))
            }
            None => None,
        };
        self.tails.insert(*chat, (tail, false));
        Ok(tail)
    }

    fn block(&mut self, key: &BlockKey) -> Result<&mut Loaded> {
        if !self.loaded_blocks.contains_key(key) {
            let plain = match self.step.get(Tree::Blocks, key)? {
                Some(sealed) => self.sealer.open(Tree::Blocks.name(), key, &sealed)?,
                None => Zeroizing::new(Vec::new()),
            };
            let plain = with_room(plain, MAX_BLOCK_BYTES);
            self.loaded_blocks.insert(*key, Loaded { plain, dirty: false });
        }
        self.loaded_blocks.get_mut(key).ok_or_else(corrupt_blocks)
    }

    fn bucket(&mut self, key: [u8; BUCKET_KEY_LEN]) -> Result<&mut Loaded> {
        if !self.loaded_buckets.contains_key(&key) {
            let plain = match self.step.get(Tree::Index, &key)? {
                Some(sealed) => self.sealer.open(Tree::Index.name(), &key, &sealed)?,
                None => Zeroizing::new(Vec::new()),
            };
            let plain = with_room(plain, 1024);
            self.loaded_buckets.insert(key, Loaded { plain, dirty: false });
        }
        self.loaded_buckets.get_mut(&key).ok_or_else(corrupt_index)
    }
}

/// A copy of `plain` with `extra` bytes of spare capacity, so growing it in place does not leave an unwiped copy
/// behind (a `Vec` that reallocates frees its old buffer as it is).
fn with_room(plain: Zeroizing<Vec<u8>>, extra: usize) -> Zeroizing<Vec<u8>> {
    let mut roomy = Zeroizing::new(Vec::with_capacity(plain.len() + extra));
    roomy.extend_from_slice(&plain);
    roomy
}

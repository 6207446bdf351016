//! Changes to the message trees inside one sled transaction. Blocks and buckets are opened once, changed in memory,
//! and sealed once in [`Writer::finish`], so a batch of 1,000 messages seals each block and bucket it touches once.
//! A writer can also work on [`Staged`] trees, outside a transaction, and leave only the final writes to one: a
//! transaction holds sled's process-wide lock while it runs, so every other read and write in the process waits.
//!
//! Each chat has a head record (key: the chat id alone, which sorts before its blocks) holding the start of its
//! newest block; new messages go there until it is full. sled runs transactions one at a time (a global lock), so
//! a seq drawn inside one is larger than every seq already committed and blocks stay in seq order.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::IVec;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::blocks::{
    block_key, bucket_and_tag, corrupt_blocks, corrupt_index, encode_slot, find_in_bucket, has_room, push_to_bucket,
    remove_from_bucket, slots, BlockKey, ChatId, Location, Slot, BUCKET_KEY_LEN, MAX_BLOCK_BYTES,
};
use super::crypt::Sealer;
use super::{Appended, Cursor, MESSAGE_BLOCKS, MESSAGE_INDEX};
use crate::error::{Error, Result};

pub(super) type TxResult<T> = std::result::Result<T, ConflictableTransactionError<Error>>;

pub(super) fn abort(error: Error) -> ConflictableTransactionError<Error> {
    ConflictableTransactionError::Abort(error)
}

/// A plaintext loaded in this transaction; empty means absent (and is removed if dirty).
struct Loaded {
    plain: Zeroizing<Vec<u8>>,
    dirty: bool,
}

/// What a [`Writer`] reads and writes: a tree in a transaction, or [`Staged`].
pub(super) trait Trees {
    fn get(&self, key: &[u8]) -> TxResult<Option<IVec>>;
    fn insert(&self, key: &[u8], value: Vec<u8>) -> TxResult<()>;
    fn remove(&self, key: &[u8]) -> TxResult<()>;
    fn generate_id(&self) -> TxResult<u64>;
}

impl Trees for TransactionalTree {
    fn get(&self, key: &[u8]) -> TxResult<Option<IVec>> {
        Ok(TransactionalTree::get(self, key)?)
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> TxResult<()> {
        TransactionalTree::insert(self, key, value)?;
        Ok(())
    }

    fn remove(&self, key: &[u8]) -> TxResult<()> {
        TransactionalTree::remove(self, key)?;
        Ok(())
    }

    fn generate_id(&self) -> TxResult<u64> {
        Ok(TransactionalTree::generate_id(self)?)
    }
}

/// A tree read as it is, its writes kept to be applied in a transaction ([`Staged::apply`]). Whoever stages must keep
/// every other writer of the tree out until then.
pub(super) struct Staged<'a> {
    tree: &'a sled::Tree,
    db: &'a sled::Db,
    /// The last write of each key: a value, or `None` for a removal.
    writes: RefCell<BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
}

impl<'a> Staged<'a> {
    pub(super) fn new(tree: &'a sled::Tree, db: &'a sled::Db) -> Self {
        Self {
            tree,
            db,
            writes: RefCell::default(),
        }
    }

    /// Makes the kept writes in `tx`, the transaction's view of the same tree.
    pub(super) fn apply(&self, tx: &TransactionalTree) -> TxResult<()> {
        for (key, value) in self.writes.borrow().iter() {
            match value {
                Some(value) => tx.insert(key.as_slice(), value.as_slice())?,
                None => tx.remove(key.as_slice())?,
            };
        }
        Ok(())
    }
}

impl Trees for Staged<'_> {
    fn get(&self, key: &[u8]) -> TxResult<Option<IVec>> {
        if let Some(written) = self.writes.borrow().get(key) {
            return Ok(written.as_deref().map(IVec::from));
        }
        self.tree.get(key).map_err(ConflictableTransactionError::Storage)
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> TxResult<()> {
        self.writes.borrow_mut().insert(key.to_vec(), Some(value));
        Ok(())
    }

    fn remove(&self, key: &[u8]) -> TxResult<()> {
        self.writes.borrow_mut().insert(key.to_vec(), None);
        Ok(())
    }

    fn generate_id(&self) -> TxResult<u64> {
        self.db.generate_id().map_err(ConflictableTransactionError::Storage)
    }
}

pub(super) struct Writer<'a, T: Trees = TransactionalTree> {
    sealer: &'a Sealer,
    blocks: &'a T,
    index: &'a T,
    tails: HashMap<ChatId, (Option<u64>, bool)>,
    loaded_blocks: HashMap<BlockKey, Loaded>,
    loaded_buckets: HashMap<[u8; BUCKET_KEY_LEN], Loaded>,
}

impl<'a, T: Trees> Writer<'a, T> {
    pub(super) fn new(sealer: &'a Sealer, blocks: &'a T, index: &'a T) -> Self {
        Self {
            sealer,
            blocks,
            index,
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
    ) -> TxResult<Appended> {
        let (bucket_key, tag) = bucket_and_tag(id_hash);
        if find_in_bucket(&self.bucket(bucket_key)?.plain, &tag)
            .map_err(abort)?
            .is_some()
        {
            return Ok(Appended::Duplicate);
        }
        let seq = match seq {
            Some(seq) => seq,
            None => self.blocks.generate_id()?,
        };
        let entry = encode_slot(seq, id, json).map_err(abort)?;
        // Where in the tail block the entry goes (after every smaller seq), if the tail has room.
        let in_tail = match self.tail(chat)? {
            Some(start) => {
                let block = &self.block(&block_key(chat, start))?.plain;
                let slots = slots(block).map_err(abort)?;
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
    pub(super) fn locate(&mut self, id_hash: &[u8; 32]) -> TxResult<Option<Location>> {
        let (bucket_key, tag) = bucket_and_tag(id_hash);
        let found = find_in_bucket(&self.bucket(bucket_key)?.plain, &tag).map_err(abort)?;
        Ok(found.map(|(_, location)| location))
    }

    /// Replaces the JSON of the message at `location` with what `change` makes of it, and returns `change`'s result.
    pub(super) fn change<R>(
        &mut self,
        location: &Location,
        change: impl FnOnce(&[u8]) -> Result<(Zeroizing<Vec<u8>>, R)>,
    ) -> TxResult<R> {
        let (block, slot) = self.slot_at(location)?;
        let (json, result) = change(&block.plain[slot.json.clone()]).map_err(abort)?;
        let entry = encode_slot(slot.seq, slot.id, &json).map_err(abort)?;
        block.plain.splice(slot.span, entry);
        block.dirty = true;
        Ok(result)
    }

    /// Removes the message with this id hash and its index entry; its location, or `None` if not indexed.
    pub(super) fn remove(&mut self, id_hash: &[u8; 32]) -> TxResult<Option<Location>> {
        let (bucket_key, tag) = bucket_and_tag(id_hash);
        let bucket = self.bucket(bucket_key)?;
        let Some((offset, location)) = find_in_bucket(&bucket.plain, &tag).map_err(abort)? else {
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
    pub(super) fn clear_block(&mut self, chat: &ChatId, start: u64, below: u64) -> TxResult<usize> {
        let block = self.block(&block_key(chat, start))?;
        let doomed: Vec<_> = slots(&block.plain)
            .map_err(abort)?
            .into_iter()
            .filter(|slot| slot.seq < below)
            .collect();
        for slot in doomed.iter().rev() {
            block.plain.drain(slot.span.clone());
        }
        block.dirty = true;
        for slot in &doomed {
            let id_hash = self.sealer.index(b"message", slot.id.as_bytes()).map_err(abort)?;
            let (bucket_key, tag) = bucket_and_tag(&id_hash);
            let bucket = self.bucket(bucket_key)?;
            // A message whose index entry is missing (or points elsewhere) is still removed.
            if let Some((offset, location)) = find_in_bucket(&bucket.plain, &tag).map_err(abort)? {
                if location.chat == *chat && location.seq == slot.seq {
                    remove_from_bucket(&mut bucket.plain, offset);
                    bucket.dirty = true;
                }
            }
        }
        self.forget_tail_if_empty(chat, start)?;
        Ok(doomed.len())
    }

    /// Seals and writes everything this transaction changed.
    pub(super) fn finish(self) -> TxResult<()> {
        for (key, loaded) in self.loaded_blocks.iter().filter(|(_, l)| l.dirty) {
            self.write_back(self.blocks, MESSAGE_BLOCKS, key, &loaded.plain)?;
        }
        for (key, loaded) in self.loaded_buckets.iter().filter(|(_, l)| l.dirty) {
            self.write_back(self.index, MESSAGE_INDEX, key, &loaded.plain)?;
        }
        for (chat, (tail, dirty)) in &self.tails {
            match (tail, dirty) {
                (_, false) => {}
                (None, true) => {
                    self.blocks.remove(chat.as_slice())?;
                }
                (Some(start), true) => {
                    let sealed = self
                        .sealer
                        .seal(MESSAGE_BLOCKS, chat, &start.to_be_bytes())
                        .map_err(abort)?;
                    self.blocks.insert(chat.as_slice(), sealed)?;
                }
            }
        }
        Ok(())
    }

    /// The block holding the message at `location`, and its slot there; an index entry pointing at nothing is
    /// corrupt.
    fn slot_at(&mut self, location: &Location) -> TxResult<(&mut Loaded, Slot)> {
        let block = self.block(&location.block_key())?;
        let slot = slots(&block.plain)
            .map_err(abort)?
            .into_iter()
            .find(|slot| slot.seq == location.seq)
            .ok_or_else(|| abort(corrupt_index()))?;
        Ok((block, slot))
    }

    /// Seals `plain` under `key` of `tree`, or removes the key when `plain` is empty.
    fn write_back(&self, tree: &T, name: &'static str, key: &[u8], plain: &[u8]) -> TxResult<()> {
        if plain.is_empty() {
            tree.remove(key)?;
        } else {
            tree.insert(key, self.sealer.seal(name, key, plain).map_err(abort)?)?;
        }
        Ok(())
    }

    /// A tail whose block is now empty is dropped, so the next message starts a block at its own seq.
    fn forget_tail_if_empty(&mut self, chat: &ChatId, start: u64) -> TxResult<()> {
        if self.tail(chat)? == Some(start) && self.block(&block_key(chat, start))?.plain.is_empty() {
            self.tails.insert(*chat, (None, true));
        }
        Ok(())
    }

    fn tail(&mut self, chat: &ChatId) -> TxResult<Option<u64>> {
        if let Some((tail, _)) = self.tails.get(chat) {
            return Ok(*tail);
        }
        let tail = match self.blocks.get(chat.as_slice())? {
            Some(sealed) => {
                let plain = self.sealer.open(MESSAGE_BLOCKS, chat, &sealed).map_err(abort)?;
                let bytes: [u8; 8] = plain.as_slice().try_into().map_err(|_| abort(corrupt_blocks()))?;
                Some(u64::from_be_bytes(bytes))
            }
            None => None,
        };
        self.tails.insert(*chat, (tail, false));
        Ok(tail)
    }

    fn block(&mut self, key: &BlockKey) -> TxResult<&mut Loaded> {
        if !self.loaded_blocks.contains_key(key) {
            let plain = match self.blocks.get(key.as_slice())? {
                Some(sealed) => self.sealer.open(MESSAGE_BLOCKS, key, &sealed).map_err(abort)?,
                None => Zeroizing::new(Vec::new()),
            };
            let plain = with_room(plain, MAX_BLOCK_BYTES);
            self.loaded_blocks.insert(*key, Loaded { plain, dirty: false });
        }
        self.loaded_blocks.get_mut(key).ok_or_else(|| abort(corrupt_blocks()))
    }

    fn bucket(&mut self, key: [u8; BUCKET_KEY_LEN]) -> TxResult<&mut Loaded> {
        if !self.loaded_buckets.contains_key(&key) {
            let plain = match self.index.get(&key)? {
                Some(sealed) => self.sealer.open(MESSAGE_INDEX, &key, &sealed).map_err(abort)?,
                None => Zeroizing::new(Vec::new()),
            };
            let plain = with_room(plain, 1024);
            self.loaded_buckets.insert(key, Loaded { plain, dirty: false });
        }
        self.loaded_buckets.get_mut(&key).ok_or_else(|| abort(corrupt_index()))
    }
}

/// A copy of `plain` with `extra` bytes of spare capacity, so growing it in place does not leave an unwiped copy
/// behind (a `Vec` that reallocates frees its old buffer as it is).
fn with_room(plain: Zeroizing<Vec<u8>>, extra: usize) -> Zeroizing<Vec<u8>> {
    let mut roomy = Zeroizing::new(Vec::with_capacity(plain.len() + extra));
    roomy.extend_from_slice(&plain);
    roomy
}

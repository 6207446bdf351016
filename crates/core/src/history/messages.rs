//! Messages: packed into sealed blocks per chat (keyed `chat ‖ first seq`, so "the last 50" is a reverse range scan
//! over two or three blocks) and indexed by message id in sealed buckets for de-duplication; see [`super::blocks`].

use magpie_proto::{MessageKind, Username};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::blocks::{
    block_key, block_start, bucket_and_tag, corrupt_blocks, find_in_bucket, slots, ChatId, Location, Slot,
};
use super::writer::Writer;
use super::{History, MESSAGE_BLOCKS, MESSAGE_INDEX};
use crate::error::{Error, Result};

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// We sent it.
    Outgoing,
    /// The peer sent it.
    Incoming,
}

/// Where a message is on its way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Written to history, not yet accepted by the relay.
    Sending,
    /// The relay accepted it (202).
    Sent,
    /// The peer's receipt arrived.
    Delivered,
    /// Gave up sending.
    Failed,
    /// Written while the session with the peer was being set up: sealed once it exists (then "sending"), or
    /// failed if the handshake fails or the peer's key changes.
    Waiting,
    /// An incoming message.
    Received,
    /// A file of ours being uploaded: its message is sealed and sent once the relay holds it whole.
    Uploading,
}

impl Delivery {
    /// The state after `update` arrives: a receipt may overtake the relay's 202, so "delivered" is never undone.
    pub(crate) fn then(self, update: Self) -> Self {
        match (self, update) {
            (Self::Delivered, _) => Self::Delivered,
            (_, update) => update,
        }
    }
}

/// One message as stored. `Debug` shows the body's length, never its text.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The protocol's message id (UUID v4); de-duplication is on it.
    pub id: Uuid,
    /// The other party of the chat.
    pub peer: Username,
    /// Who wrote it.
    pub direction: Direction,
    /// Text, receipt, ...
    pub kind: MessageKind,
    /// The text.
    pub body: String,
    /// When the sender wrote it, Unix seconds (sender's clock).
    pub sent_at: u64,
    /// When we received it, Unix seconds (our clock); `None` for outgoing messages.
    pub received_at: Option<u64>,
    /// Delivery state.
    pub delivery: Delivery,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("id", &self.id)
            .field("peer", &self.peer)
            .field("direction", &self.direction)
            .field("kind", &self.kind)
            .field("body_len", &self.body.len())
            .field("sent_at", &self.sent_at)
            .field("received_at", &self.received_at)
            .field("delivery", &self.delivery)
            .finish()
    }
}

/// A message's place in its chat, for paging: pass the oldest entry's cursor to [`History::messages_before`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor(u64);

impl Cursor {
    /// The position as a number (for a UI to hand back).
    pub fn value(self) -> u64 {
        self.0
    }

    /// A position a UI handed back.
    pub fn from_value(value: u64) -> Self {
        Self(value)
    }
}

/// A stored message with its place in the chat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Where it sits in its chat.
    pub cursor: Cursor,
    /// The message.
    pub message: Message,
}

/// What [`History::append_message`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Appended {
    /// Stored at this place.
    New(Cursor),
    /// A message with this id is already stored; nothing was written.
    Duplicate,
}

impl History {
    /// A position in the order of messages: after every message stored so far, before every later one (message
    /// cursors and positions share one counter).
    pub fn mark_position(&self) -> Result<u64> {
        Ok(self.db.generate_id()?)
    }

    /// Stores a message unless one with the same id exists. Message and id index are written atomically.
    pub fn append_message(&self, message: &Message) -> Result<Appended> {
        let mut results = self.append_messages(std::slice::from_ref(message))?;
        results.pop().ok_or(Error::Crypto("append returned nothing"))
    }

    /// Stores a batch in one step (catch-up after being offline, imports); duplicates, also within the batch, are
    /// skipped. One result per message, in order.
    pub fn append_messages(&self, batch: &[Message]) -> Result<Vec<Appended>> {
        let rows = batch.iter().map(|m| self.prepare_row(m)).collect::<Result<Vec<_>>>()?;
        let step = self.step()?;
        let mut writer = Writer::new(&self.sealer, &step);
        let out = rows
            .iter()
            .map(|row| row.append_to(&mut writer))
            .collect::<Result<Vec<_>>>()?;
        writer.finish()?;
        step.commit()?;
        Ok(out)
    }

    /// Encodes a message for [`Row::append_to`], before the step's write lock is taken.
    pub(super) fn prepare_row(&self, message: &Message) -> Result<Row> {
        Ok(Row {
            chat: self.chat_id(&message.peer)?,
            id: message.id,
            id_hash: self.message_hash(message.id)?,
            json: Zeroizing::new(serde_json::to_vec(message).map_err(|_| Error::Crypto("encoding failed"))?),
        })
    }

    /// Whether a message with this id is stored.
    pub fn contains_message(&self, id: Uuid) -> Result<bool> {
        Ok(self.locate(id)?.is_some())
    }

    /// The message with this id, if stored.
    pub fn get_message(&self, id: Uuid) -> Result<Option<Entry>> {
        match self.locate(id)? {
            Some(location) => self.read_at(&location).map(Some),
            None => Ok(None),
        }
    }

    fn read_at(&self, location: &Location) -> Result<Entry> {
        let key = location.block_key();
        let sealed = self
            .blocks
            .get(key)?
            .ok_or(Error::HistoryCorrupt { tree: MESSAGE_INDEX })?;
        let block = self.sealer.open(MESSAGE_BLOCKS, &key, &sealed)?;
        let slot = slots(&block)?
            .into_iter()
            .find(|slot| slot.seq == location.seq)
            .ok_or(Error::HistoryCorrupt { tree: MESSAGE_INDEX })?;
        decode(&block, &slot)
    }

    /// Removes a message and its id index (a failed message that was sent again); `false` if unknown.
    pub fn remove_message(&self, id: Uuid) -> Result<bool> {
        let id_hash = self.message_hash(id)?;
        let step = self.step()?;
        let mut writer = Writer::new(&self.sealer, &step);
        let removed = writer.remove(&id_hash)?.is_some();
        writer.finish()?;
        step.commit()?;
        Ok(removed)
    }

    /// Removes every message of the chat with `peer` and returns how many: a few blocks per step (a chat may hold a
    /// million messages), each with its messages' index entries.
    pub fn clear_chat(&self, peer: &Username) -> Result<usize> {
        let removed = self.clear_chat_in_slices(peer, 64)?;
        // sled keeps removed values in its files until it reclaims them: the next open rewrites the history.
        self.meta.insert(super::rewrite::REWRITE_DUE, &[1])?;
        Ok(removed)
    }

    pub(super) fn clear_chat_in_slices(&self, peer: &Username, blocks_per_slice: usize) -> Result<usize> {
        let chat = self.chat_id(peer)?;
        // Only what is there now: a message arriving meanwhile gets a larger seq and stays.
        let below = self.db.generate_id()?;
        let mut removed = 0;
        loop {
            let step = self.step()?;
            let starts = self
                .blocks
                .range(block_key(&chat, 0)..=block_key(&chat, below))
                .keys()
                .take(blocks_per_slice)
                .map(|key| block_start(&key?))
                .collect::<Result<Vec<_>>>()?;
            if starts.is_empty() {
                return Ok(removed);
            }
            let mut writer = Writer::new(&self.sealer, &step);
            let mut in_slice = 0;
            for start in &starts {
                in_slice += writer.clear_block(&chat, *start, below)?;
            }
            writer.finish()?;
            step.commit()?;
            if in_slice == 0 {
                // Blocks left here hold only newer messages.
                return Ok(removed);
            }
            removed += in_slice;
        }
    }

    /// The sealed blocks of the chat with `peer` as stored, for tests that look for them on disk.
    #[doc(hidden)]
    pub fn sealed_blocks(&self, peer: &Username) -> Result<Vec<Vec<u8>>> {
        let chat = self.chat_id(peer)?;
        self.blocks
            .range(block_key(&chat, 0)..=block_key(&chat, u64::MAX))
            .values()
            .map(|value| Ok(value?.to_vec()))
            .collect()
    }

    /// Moves a message to a new delivery state and returns the state it ends in ("delivered" is never undone);
    /// `None` if no message has this id.
    pub fn update_delivery(&self, id: Uuid, update: Delivery) -> Result<Option<Delivery>> {
        Ok(self.update_deliveries(&[id], update)?.pop().flatten())
    }

    /// [`History::update_delivery`] for several messages in one write (a receipt answering many): the state
    /// each ends in, in the order of `ids`.
    pub fn update_deliveries(&self, ids: &[Uuid], update: Delivery) -> Result<Vec<Option<Delivery>>> {
        let hashes = self.message_hashes(ids)?;
        let step = self.step()?;
        let mut writer = Writer::new(&self.sealer, &step);
        let states = change_deliveries(&mut writer, &hashes, update)?;
        writer.finish()?;
        step.commit()?;
        Ok(states)
    }

    /// The keyed hashes [`change_deliveries`] takes.
    pub(super) fn message_hashes(&self, ids: &[Uuid]) -> Result<Vec<[u8; 32]>> {
        ids.iter().map(|id| self.message_hash(*id)).collect()
    }

    /// The last `n` messages with `peer`, oldest first.
    pub fn last_messages(&self, peer: &Username, n: usize) -> Result<Vec<Entry>> {
        let chat = self.chat_id(peer)?;
        self.collect_rev(&chat, u64::MAX, true, n)
    }

    /// Up to `n` messages with `peer` older than `before`, oldest first: the page above the one on screen.
    pub fn messages_before(&self, peer: &Username, before: Cursor, n: usize) -> Result<Vec<Entry>> {
        let chat = self.chat_id(peer)?;
        self.collect_rev(&chat, before.0, false, n)
    }

    /// Up to `n` messages with `peer` newer than `after` (from the start if `None`), oldest first.
    pub fn messages_after(&self, peer: &Username, after: Option<Cursor>, n: usize) -> Result<Vec<Entry>> {
        let chat = self.chat_id(peer)?;
        let after = match after {
            Some(cursor) if cursor.0 == u64::MAX => return Ok(Vec::new()),
            Some(cursor) => Some(cursor.0),
            None => None,
        };
        // The block holding `after` may hold newer messages too: start there.
        let first = match after {
            Some(after) => self
                .blocks
                .range(block_key(&chat, 0)..=block_key(&chat, after))
                .keys()
                .next_back()
                .transpose()?
                .map(|key| block_start(&key))
                .transpose()?
                .unwrap_or(0),
            None => 0,
        };
        let mut out = Vec::with_capacity(n.min(1024));
        for item in self.blocks.range(block_key(&chat, first)..=block_key(&chat, u64::MAX)) {
            let (key, sealed) = item?;
            let block = self.sealer.open(MESSAGE_BLOCKS, &key, &sealed)?;
            for slot in slots(&block)? {
                if out.len() == n {
                    return Ok(out);
                }
                if after.is_none_or(|after| slot.seq > after) {
                    out.push(decode(&block, &slot)?);
                }
            }
        }
        Ok(out)
    }

    /// Up to `n` messages of `chat` with a seq below `end` (or at most `end` when `inclusive`), oldest first.
    fn collect_rev(&self, chat: &ChatId, end: u64, inclusive: bool, n: usize) -> Result<Vec<Entry>> {
        let mut out = Vec::with_capacity(n.min(1024));
        let blocks = if inclusive {
            self.blocks.range(block_key(chat, 0)..=block_key(chat, end))
        } else {
            self.blocks.range(block_key(chat, 0)..block_key(chat, end))
        };
        for item in blocks.rev() {
            if out.len() == n {
                break;
            }
            let (key, sealed) = item?;
            let block = self.sealer.open(MESSAGE_BLOCKS, &key, &sealed)?;
            let wanted = slots(&block)?
                .into_iter()
                .rev()
                .filter(|slot| slot.seq < end || (inclusive && slot.seq == end))
                .take(n - out.len());
            for slot in wanted {
                out.push(decode(&block, &slot)?);
            }
        }
        out.reverse();
        Ok(out)
    }

    fn message_hash(&self, id: Uuid) -> Result<[u8; 32]> {
        self.sealer.index(b"message", id.as_bytes())
    }

    fn locate(&self, id: Uuid) -> Result<Option<Location>> {
        let (bucket, tag) = bucket_and_tag(&self.message_hash(id)?);
        let Some(sealed) = self.message_index.get(bucket)? else {
            return Ok(None);
        };
        let plain = self.sealer.open(MESSAGE_INDEX, &bucket, &sealed)?;
        Ok(find_in_bucket(&plain, &tag)?.map(|(_, location)| location))
    }
}

/// An encoded message ready for a step.
pub(super) struct Row {
    chat: ChatId,
    id: Uuid,
    id_hash: [u8; 32],
    json: Zeroizing<Vec<u8>>,
}

impl Row {
    pub(super) fn append_to(&self, writer: &mut Writer<'_, '_>) -> Result<Appended> {
        writer.append(&self.chat, self.id, &self.id_hash, &self.json, None)
    }
}

pub(super) fn decode(block: &[u8], slot: &Slot) -> Result<Entry> {
    let json = block.get(slot.json.clone()).ok_or_else(corrupt_blocks)?;
    let message: Message = serde_json::from_slice(json).map_err(|_| corrupt_blocks())?;
    if message.id != slot.id {
        return Err(corrupt_blocks());
    }
    Ok(Entry {
        cursor: Cursor(slot.seq),
        message,
    })
}

/// Moves the messages whose id hashes are `hashes` to `update` within a step: the state each ends in, `None` for an
/// id not stored.
pub(super) fn change_deliveries(
    writer: &mut Writer<'_, '_>,
    hashes: &[[u8; 32]],
    update: Delivery,
) -> Result<Vec<Option<Delivery>>> {
    let mut states = Vec::with_capacity(hashes.len());
    for id_hash in hashes {
        let Some(location) = writer.locate(id_hash)? else {
            states.push(None);
            continue;
        };
        let state = writer.change(&location, |json| {
            let mut message: Message = serde_json::from_slice(json).map_err(|_| corrupt_blocks())?;
            message.delivery = message.delivery.then(update);
            let json = serde_json::to_vec(&message).map_err(|_| Error::Crypto("encoding failed"))?;
            Ok((Zeroizing::new(json), message.delivery))
        })?;
        states.push(Some(state));
    }
    Ok(states)
}

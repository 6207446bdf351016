//! Messages: one tree keyed `chat ‖ seq` for range scans, and an index by message id for de-duplication.

use magpie_proto::{MessageKind, Username};
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional, TransactionalTree};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::{History, MESSAGES, MESSAGE_IDS};
use crate::error::{Error, Result};

const CHAT_ID_LEN: usize = 32;
const KEY_LEN: usize = CHAT_ID_LEN + 8;

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
    /// An incoming message.
    Received,
}

impl Delivery {
    /// The state after `update` arrives: a receipt may overtake the relay's 202, so "delivered" is never undone.
    fn then(self, update: Self) -> Self {
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

    /// Stores a batch in one transaction (catch-up after being offline, imports); duplicates, also within the
    /// batch, are skipped. One result per message, in order.
    pub fn append_messages(&self, batch: &[Message]) -> Result<Vec<Appended>> {
        let rows = batch.iter().map(|m| self.prepare_row(m)).collect::<Result<Vec<_>>>()?;
        let result = (&self.messages, &self.message_ids).transaction(|(messages, ids)| {
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(insert_row(messages, ids, row)?);
            }
            Ok::<_, ConflictableTransactionError<Error>>(out)
        });
        flatten(result)
    }

    /// Seals a message for [`insert_row`]; done before a transaction so a retried transaction does not redo it.
    pub(super) fn prepare_row(&self, message: &Message) -> Result<Row> {
        let chat = self.chat_id(&message.peer)?;
        let seq = self.db.generate_id()?;
        let key = message_key(&chat, seq);
        let id_key = self.sealer.index(b"message", message.id.as_bytes())?;
        let plain = Zeroizing::new(serde_json::to_vec(message).map_err(|_| Error::Crypto("encoding failed"))?);
        Ok(Row {
            sealed: self.sealer.seal(MESSAGES, &key, &plain)?,
            sealed_index: self.sealer.seal(MESSAGE_IDS, &id_key, &key)?,
            key,
            id_key,
            cursor: Cursor(seq),
        })
    }

    /// Whether a message with this id is stored.
    pub fn contains_message(&self, id: Uuid) -> Result<bool> {
        Ok(self
            .message_ids
            .contains_key(self.sealer.index(b"message", id.as_bytes())?)?)
    }

    /// The message with this id, if stored.
    pub fn get_message(&self, id: Uuid) -> Result<Option<Entry>> {
        let Some(key) = self.message_key_of(id)? else {
            return Ok(None);
        };
        match self.messages.get(key)? {
            Some(sealed) => Ok(Some(self.open_entry(&key, &sealed)?)),
            None => Err(Error::HistoryCorrupt { tree: MESSAGE_IDS }),
        }
    }

    /// Removes a message and its id index (a failed message that was sent again); `false` if unknown.
    pub fn remove_message(&self, id: Uuid) -> Result<bool> {
        let Some(key) = self.message_key_of(id)? else {
            return Ok(false);
        };
        let id_key = self.sealer.index(b"message", id.as_bytes())?;
        let result = (&self.messages, &self.message_ids).transaction(|(messages, ids)| {
            messages.remove(key.as_slice())?;
            ids.remove(id_key.as_slice())?;
            Ok::<_, ConflictableTransactionError<Error>>(())
        });
        flatten(result).map(|()| true)
    }

    /// Removes every message of the chat with `peer` and returns how many: in slices (a chat may hold a million),
    /// each slice's id index before its messages, so a crash halfway leaves messages without an index (still
    /// shown, no longer de-duplicated), never an index pointing at nothing.
    pub fn clear_chat(&self, peer: &Username) -> Result<usize> {
        self.clear_chat_in_slices(peer, 10_000)
    }

    pub(super) fn clear_chat_in_slices(&self, peer: &Username, slice: usize) -> Result<usize> {
        let chat = self.chat_id(peer)?;
        // Only what is there now: a message arriving meanwhile sorts after this one and stays.
        let Some((newest, _)) = self.messages.scan_prefix(chat).next_back().transpose()? else {
            return Ok(0);
        };
        let mut removed = 0;
        loop {
            let mut index = sled::Batch::default();
            let mut rows = sled::Batch::default();
            let mut in_slice = 0;
            for row in self.messages.range(chat.as_slice()..=&*newest).take(slice) {
                let (key, sealed) = row?;
                let entry = self.open_entry(&key, &sealed)?;
                index.remove(self.sealer.index(b"message", entry.message.id.as_bytes())?.as_slice());
                rows.remove(key);
                in_slice += 1;
            }
            if in_slice == 0 {
                return Ok(removed);
            }
            self.message_ids.apply_batch(index)?;
            self.messages.apply_batch(rows)?;
            removed += in_slice;
        }
    }

    /// Moves a message to a new delivery state and returns the state it ends in ("delivered" is never undone);
    /// `None` if no message has this id.
    pub fn update_delivery(&self, id: Uuid, update: Delivery) -> Result<Option<Delivery>> {
        let Some(key) = self.message_key_of(id)? else {
            return Ok(None);
        };
        let result = self.messages.transaction(|messages| {
            let abort = ConflictableTransactionError::Abort;
            let sealed = messages
                .get(key)?
                .ok_or_else(|| abort(Error::HistoryCorrupt { tree: MESSAGE_IDS }))?;
            let mut entry = self.open_entry(&key, &sealed).map_err(abort)?;
            entry.message.delivery = entry.message.delivery.then(update);
            let plain = Zeroizing::new(
                serde_json::to_vec(&entry.message).map_err(|_| abort(Error::Crypto("encoding failed")))?,
            );
            messages.insert(key.as_slice(), self.sealer.seal(MESSAGES, &key, &plain).map_err(abort)?)?;
            Ok(entry.message.delivery)
        });
        flatten(result).map(Some)
    }

    /// The last `n` messages with `peer`, oldest first.
    pub fn last_messages(&self, peer: &Username, n: usize) -> Result<Vec<Entry>> {
        let chat = self.chat_id(peer)?;
        self.collect_rev(
            self.messages
                .range(message_key(&chat, 0)..=message_key(&chat, u64::MAX)),
            n,
        )
    }

    /// Up to `n` messages with `peer` older than `before`, oldest first: the page above the one on screen.
    pub fn messages_before(&self, peer: &Username, before: Cursor, n: usize) -> Result<Vec<Entry>> {
        let chat = self.chat_id(peer)?;
        self.collect_rev(
            self.messages.range(message_key(&chat, 0)..message_key(&chat, before.0)),
            n,
        )
    }

    /// Up to `n` messages with `peer` newer than `after` (from the start if `None`), oldest first.
    pub fn messages_after(&self, peer: &Username, after: Option<Cursor>, n: usize) -> Result<Vec<Entry>> {
        let chat = self.chat_id(peer)?;
        let start = after.map_or(message_key(&chat, 0), |cursor| {
            message_key(&chat, cursor.0.saturating_add(1))
        });
        if after.is_some_and(|cursor| cursor.0 == u64::MAX) {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(n.min(1024));
        for item in self.messages.range(start..=message_key(&chat, u64::MAX)).take(n) {
            let (key, sealed) = item?;
            out.push(self.open_entry(&key, &sealed)?);
        }
        Ok(out)
    }

    fn collect_rev(&self, range: sled::Iter, n: usize) -> Result<Vec<Entry>> {
        let mut out = Vec::with_capacity(n.min(1024));
        for item in range.rev().take(n) {
            let (key, sealed) = item?;
            out.push(self.open_entry(&key, &sealed)?);
        }
        out.reverse();
        Ok(out)
    }

    fn message_key_of(&self, id: Uuid) -> Result<Option<[u8; KEY_LEN]>> {
        let id_key = self.sealer.index(b"message", id.as_bytes())?;
        let Some(sealed) = self.message_ids.get(id_key)? else {
            return Ok(None);
        };
        let key = self.sealer.open(MESSAGE_IDS, &id_key, &sealed)?;
        let key: [u8; KEY_LEN] = key
            .as_slice()
            .try_into()
            .map_err(|_| Error::HistoryCorrupt { tree: MESSAGE_IDS })?;
        Ok(Some(key))
    }

    fn open_entry(&self, key: &[u8], sealed: &[u8]) -> Result<Entry> {
        let corrupt = || Error::HistoryCorrupt { tree: MESSAGES };
        let seq_bytes: [u8; 8] = key
            .get(CHAT_ID_LEN..)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(corrupt)?;
        let plain = self.sealer.open(MESSAGES, key, sealed)?;
        let message = serde_json::from_slice(&plain).map_err(|_| corrupt())?;
        Ok(Entry {
            cursor: Cursor(u64::from_be_bytes(seq_bytes)),
            message,
        })
    }
}

/// A sealed message and its id-index entry, ready to insert.
pub(super) struct Row {
    key: [u8; KEY_LEN],
    id_key: [u8; 32],
    sealed: Vec<u8>,
    sealed_index: Vec<u8>,
    cursor: Cursor,
}

/// Inserts a prepared message inside a transaction unless its id is already stored.
pub(super) fn insert_row(
    messages: &TransactionalTree,
    ids: &TransactionalTree,
    row: &Row,
) -> Result<Appended, ConflictableTransactionError<Error>> {
    if ids.get(row.id_key)?.is_some() {
        return Ok(Appended::Duplicate);
    }
    ids.insert(row.id_key.as_slice(), row.sealed_index.as_slice())?;
    messages.insert(row.key.as_slice(), row.sealed.as_slice())?;
    Ok(Appended::New(row.cursor))
}

fn message_key(chat: &[u8; CHAT_ID_LEN], seq: u64) -> [u8; KEY_LEN] {
    let mut key = [0u8; KEY_LEN];
    key[..CHAT_ID_LEN].copy_from_slice(chat);
    key[CHAT_ID_LEN..].copy_from_slice(&seq.to_be_bytes());
    key
}

pub(super) fn flatten<T>(result: Result<T, TransactionError<Error>>) -> Result<T> {
    result.map_err(|error| match error {
        TransactionError::Abort(error) => error,
        TransactionError::Storage(error) => Error::HistoryStorage(error),
    })
}

//! Moving a history written with one row per message (trees `messages`, keyed `chat ‖ seq`, and `message_ids`)
//! into blocks. Each slice of rows moves in one transaction that also deletes them, so a crash midway loses and
//! duplicates nothing, and the next open goes on where it stopped. Messages keep their seqs, hence their cursors.

use sled::transaction::Transactional;
use uuid::Uuid;

use super::blocks::{ChatId, CHAT_ID_LEN};
use super::messages::flatten;
use super::writer::Writer;
use super::{History, Message};
use crate::error::{Error, Result};

const ROWS: &str = "messages";
const ROW_IDS: &str = "message_ids";
const ROWS_PER_SLICE: usize = 2_000;

fn corrupt() -> Error {
    Error::HistoryCorrupt { tree: ROWS }
}

/// One old row, opened.
struct OldRow {
    key: sled::IVec,
    chat: ChatId,
    seq: u64,
    id: Uuid,
    id_hash: [u8; 32],
    json: zeroize::Zeroizing<Vec<u8>>,
}

impl History {
    /// Moves every old-format message into blocks and drops the old trees; how many moved.
    pub(super) fn migrate_rows_to_blocks(&self) -> Result<usize> {
        if !self.db.tree_names().iter().any(|name| name.as_ref() == ROWS.as_bytes()) {
            return Ok(0);
        }
        let rows = self.db.open_tree(ROWS)?;
        let row_ids = self.db.open_tree(ROW_IDS)?;
        let mut moved = 0;
        loop {
            // Key order is chat, then seq: each chat's messages arrive oldest first, as blocks need.
            let slice = rows
                .iter()
                .take(ROWS_PER_SLICE)
                .map(|item| self.open_old_row(item?))
                .collect::<Result<Vec<_>>>()?;
            if slice.is_empty() {
                break;
            }
            let result = (&self.blocks, &self.message_index, &rows, &row_ids).transaction(
                |(blocks, index, old_rows, old_ids)| {
                    let mut writer = Writer::new(&self.sealer, blocks, index);
                    for row in &slice {
                        writer.append(&row.chat, row.id, &row.id_hash, &row.json, Some(row.seq))?;
                        old_rows.remove(&row.key)?;
                        old_ids.remove(row.id_hash.as_slice())?;
                    }
                    writer.finish()
                },
            );
            flatten(result)?;
            moved += slice.len();
        }
        // Ids whose message was already gone (a crash inside the old `clear_chat`) have nothing to point at.
        drop((rows, row_ids));
        self.db.drop_tree(ROWS)?;
        self.db.drop_tree(ROW_IDS)?;
        self.db.flush()?;
        if moved > 0 {
            tracing::info!(moved, "history: moved messages into blocks");
        }
        Ok(moved)
    }

    fn open_old_row(&self, (key, sealed): (sled::IVec, sled::IVec)) -> Result<OldRow> {
        let chat: ChatId = key
            .get(..CHAT_ID_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(corrupt)?;
        let seq: [u8; 8] = key
            .get(CHAT_ID_LEN..)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(corrupt)?;
        let json = self.sealer.open(ROWS, &key, &sealed)?;
        let message: Message = serde_json::from_slice(&json).map_err(|_| corrupt())?;
        Ok(OldRow {
            id_hash: self.sealer.index(b"message", message.id.as_bytes())?,
            id: message.id,
            chat,
            seq: u64::from_be_bytes(seq),
            json,
            key,
        })
    }
}

#[cfg(test)]
mod tests {
    use magpie_proto::MessageKind;

    use super::*;
    use crate::history::{Delivery, Direction, HistoryKey};
    use crate::test_support::username;

    /// Writes `bodies` to `peer` the way the row format did.
    fn write_rows(history: &History, peer: &str, bodies: &[&str]) -> Vec<Uuid> {
        let rows = history.db.open_tree(ROWS).unwrap();
        let ids = history.db.open_tree(ROW_IDS).unwrap();
        let chat = history.chat_id(&username(peer)).unwrap();
        bodies
            .iter()
            .map(|body| {
                let message = Message {
                    id: Uuid::new_v4(),
                    peer: username(peer),
                    direction: Direction::Incoming,
                    kind: MessageKind::Text,
                    body: (*body).to_owned(),
                    sent_at: 1_700_000_000,
                    received_at: Some(1_700_000_001),
                    delivery: Delivery::Received,
                };
                let mut key = chat.to_vec();
                key.extend_from_slice(&history.db.generate_id().unwrap().to_be_bytes());
                let json = serde_json::to_vec(&message).unwrap();
                rows.insert(&key, history.sealer.seal(ROWS, &key, &json).unwrap())
                    .unwrap();
                let id_key = history.sealer.index(b"message", message.id.as_bytes()).unwrap();
                ids.insert(id_key, history.sealer.seal(ROW_IDS, &id_key, &key).unwrap())
                    .unwrap();
                message.id
            })
            .collect()
    }

    #[test]
    fn old_rows_move_into_blocks_on_open_keeping_order_cursors_and_ids() {
        let dir = tempfile::tempdir().unwrap();
        let key = HistoryKey::generate().unwrap();
        let history = History::open(dir.path(), &key).unwrap();
        let bob_bodies: Vec<String> = (0..2_500).map(|i| format!("b{i}")).collect();
        let bob_refs: Vec<&str> = bob_bodies.iter().map(String::as_str).collect();
        let bob_ids = write_rows(&history, "bob", &bob_refs);
        write_rows(&history, "carol", &["c0", "c1"]);
        let cursors_before: Vec<u64> = {
            let rows = history.db.open_tree(ROWS).unwrap();
            rows.iter()
                .keys()
                .map(|k| u64::from_be_bytes(k.unwrap()[32..].try_into().unwrap()))
                .collect()
        };
        drop(history);

        let history = History::open(dir.path(), &key).unwrap();
        let names: Vec<_> = history.db.tree_names();
        assert!(!names
            .iter()
            .any(|n| n.as_ref() == ROWS.as_bytes() || n.as_ref() == ROW_IDS.as_bytes()));
        let mut all = Vec::new();
        let mut page = history.last_messages(&username("bob"), 300).unwrap();
        while let Some(first) = page.first().map(|e| e.cursor) {
            all.splice(0..0, page);
            page = history.messages_before(&username("bob"), first, 300).unwrap();
        }
        let bodies: Vec<&str> = all.iter().map(|e| e.message.body.as_str()).collect();
        assert_eq!(bodies, bob_refs);
        let carol = history.last_messages(&username("carol"), 10).unwrap();
        let mut cursors: Vec<u64> = all.iter().chain(&carol).map(|e| e.cursor.value()).collect();
        cursors.sort_unstable();
        let mut expected = cursors_before;
        expected.sort_unstable();
        assert_eq!(cursors, expected);

        // The id index moved too: a duplicate is refused and a receipt finds its message.
        assert!(history.contains_message(bob_ids[1_234]).unwrap());
        assert_eq!(
            history.update_delivery(bob_ids[0], Delivery::Delivered).unwrap(),
            Some(Delivery::Delivered)
        );
        // New messages sort after the moved ones.
        let mut next = all[0].message.clone();
        next.id = Uuid::new_v4();
        next.body = "after".into();
        history.append_message(&next).unwrap();
        let last = history.last_messages(&username("bob"), 2).unwrap();
        assert_eq!(last[0].message.body, "b2499");
        assert_eq!(last[1].message.body, "after");
    }
}

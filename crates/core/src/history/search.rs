//! Searching a chat: its sealed blocks are opened newest first and each message's text tested with a
//! [`Matcher`]. No index is kept: the folded text exists only in the matcher's buffer, so search adds nothing to
//! what is on disk (`benches/search.rs` has the figures that made a scan enough).

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};

use magpie_proto::{MessageKind, Username};
use serde::Deserialize;

use super::blocks::{block_key, corrupt_blocks, slots};
use super::messages::decode;
use super::{Cursor, History, MESSAGE_BLOCKS};
use crate::error::{Error, Result};
use crate::search::{ChatMatches, Query};

/// The two fields of a stored message a search reads: parsed without copying the rest.
#[derive(Deserialize)]
struct Searchable<'a> {
    kind: MessageKind,
    #[serde(borrow)]
    body: Cow<'a, str>,
}

const BLOCKS_PER_PASS: usize = 16;

impl History {
    /// Messages with `peer` older than `before` (all when `None`) that match `query`, newest first: up to `limit`
    /// of them with their highlights, and how many match in all. Stops with [`Error::SearchCancelled`] once
    /// `cancelled` is set. Blocks on disk I/O.
    pub fn search_chat(
        &self,
        peer: &Username,
        query: &Query,
        before: Option<Cursor>,
        limit: usize,
        cancelled: &AtomicBool,
    ) -> Result<ChatMatches> {
        let chat = self.chat_id(peer)?;
        let end = before.map_or(u64::MAX, Cursor::value);
        let mut found = ChatMatches::collect(query, limit);
        let mut upper = block_key(&chat, end);
        loop {
            if cancelled.load(Ordering::Relaxed) {
                return Err(Error::SearchCancelled);
            }
            let chunk = self
                .blocks
                .range(block_key(&chat, 0)..upper)
                .rev()
                .take(BLOCKS_PER_PASS)
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let Some((last, _)) = chunk.last() else { break };
            upper = block_key(&chat, super::blocks::block_start(last)?);
            for (key, sealed) in &chunk {
                let block = self.sealer.open(MESSAGE_BLOCKS, key, sealed)?;
                for slot in slots(&block)?.iter().rev().filter(|slot| slot.seq < end) {
                    let json = block.get(slot.json.clone()).ok_or_else(corrupt_blocks)?;
                    let fields: Searchable<'_> = serde_json::from_slice(json).map_err(|_| corrupt_blocks())?;
                    found.consider(fields.kind, &fields.body, || decode(&block, slot))?;
                }
            }
        }
        Ok(found.done())
    }
}

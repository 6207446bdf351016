//! Search for the faces: every chat, most recently active first, each chat's matches newest first; or one chat,
//! page by page.

use std::sync::atomic::AtomicBool;

use magpie_proto::Username;
use serde::Serialize;

use super::{Client, MessageView};
use crate::error::Result;
use crate::history::Cursor;
use crate::search::{searchable_text, snippet, ChatMatches, Query, SnippetPart};
use crate::store::prelude::*;

/// How many characters of a message a result shows around its first match.
pub const SNIPPET_CHARS: usize = 120;

/// One chat's results.
#[derive(Clone, Debug, Serialize)]
pub struct ChatResults {
    /// The other party.
    pub peer: String,
    /// How many of its messages match (older than the cursor asked for).
    pub total: usize,
    /// The newest of them, newest first.
    pub found: Vec<Found>,
}

/// A message that matched.
#[derive(Clone, Debug, Serialize)]
pub struct Found {
    /// The message as a chat shows it.
    pub message: MessageView,
    /// The text around the first match, the matches marked.
    pub snippet: Vec<SnippetPart>,
}

impl<H: Home> Client<H> {
    /// Searches every chat for `query`, most recently active chat first, and hands each chat with a match to
    /// `on_chat` as soon as it is searched: up to `per_chat` messages each, newest first. Returns how many
    /// messages matched in all; [`crate::Error::SearchCancelled`] once `cancelled` is set. Blocks on disk I/O.
    pub fn search(
        &self,
        query: &Query,
        per_chat: usize,
        cancelled: &AtomicBool,
        mut on_chat: impl FnMut(ChatResults),
    ) -> Result<usize> {
        let mut total = 0;
        for contact in self.contacts()? {
            let results = self.search_chat(&contact.username, query, None, per_chat, cancelled)?;
            total += results.total;
            if results.total > 0 {
                on_chat(results);
            }
        }
        Ok(total)
    }

    /// Up to `limit` messages with `peer` older than `before` (from the newest if `None`) that match `query`,
    /// newest first, and how many match in all.
    pub fn search_chat(
        &self,
        peer: &Username,
        query: &Query,
        before: Option<u64>,
        limit: usize,
        cancelled: &AtomicBool,
    ) -> Result<ChatResults> {
        let before = before.map(Cursor::from_value);
        let ChatMatches { hits, total } = self.store().search_chat(peer, query, before, limit, cancelled)?;
        let found = hits
            .into_iter()
            .map(|hit| {
                let message = &hit.entry.message;
                let text = searchable_text(message.kind, &message.body).unwrap_or_default();
                Found {
                    snippet: snippet(&text, &hit.highlights, SNIPPET_CHARS),
                    message: MessageView::from(&hit.entry),
                }
            })
            .collect();
        Ok(ChatResults {
            peer: peer.to_string(),
            total,
            found,
        })
    }
}

//! Search, and reading a chat around a result. A search scans the sealed history on a worker thread and streams
//! each chat's results as soon as that chat is done; a newer search cancels the one before.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use magpie_core::engine::{ChatResults, MessageView};
use magpie_core::history::Cursor;
use magpie_core::search::Query;
use tauri::ipc::Channel;
use tauri::State;

use super::{blocking, username};
use crate::convert::message_item;
use crate::error::IpcError;
use crate::ipc_types::{MessagePage, SearchChat, SearchHit, SearchSummary, SnippetPiece};
use crate::state::AppState;

/// Results shown per chat before "Show more".
const PER_CHAT: usize = 5;
/// The most a "Show more" or a page around a result may ask for.
const MAX_PAGE: usize = 200;

/// Searches every chat for `query`, sending each chat's results on `results`, most recently active chat first. A
/// newer search cancels this one.
#[tauri::command]
pub async fn search(
    state: State<'_, AppState>,
    query: String,
    results: Channel<SearchChat>,
) -> Result<SearchSummary, IpcError> {
    // Before anything is awaited: a search started later must always be the one that runs on.
    let cancelled = state.start_search();
    let client = state.client().await?;
    let Some(query) = Query::parse(&query) else {
        return Ok(SearchSummary {
            total: 0,
            cancelled: false,
        });
    };
    let flag = Arc::clone(&cancelled);
    let outcome = blocking(move || {
        let send = |chat: ChatResults| {
            // A closed window stops listening; the search then ends with the next chat.
            if results.send(search_chat(chat)).is_err() {
                flag.store(true, Ordering::Relaxed);
            }
        };
        Ok(client.search(&query, PER_CHAT, &flag, send)?)
    })
    .await;
    match outcome {
        Ok(total) => Ok(SearchSummary {
            total,
            cancelled: false,
        }),
        Err(error) if cancelled.load(Ordering::Relaxed) => {
            tracing::debug!(%error, "search cancelled");
            Ok(SearchSummary {
                total: 0,
                cancelled: true,
            })
        }
        Err(error) => Err(error),
    }
}

/// Up to `limit` results in the chat with `peer`, older than `before` (from the newest when `None`), in the answer
/// itself: "Show more", and find in a chat.
#[tauri::command]
pub async fn search_more(
    state: State<'_, AppState>,
    query: String,
    peer: String,
    before: Option<u64>,
    limit: usize,
) -> Result<SearchChat, IpcError> {
    let client = state.client().await?;
    let peer = username(&peer)?;
    let query = Query::parse(&query).ok_or_else(|| IpcError::invalid("The search holds no word."))?;
    let limit = limit.clamp(1, MAX_PAGE);
    blocking(move || {
        let never = AtomicBool::new(false);
        Ok(search_chat(client.search_chat(&peer, &query, before, limit, &never)?))
    })
    .await
}

/// Up to `limit` messages before and after the one at `cursor` (itself included), oldest first: the chat opened at
/// a search result.
#[tauri::command]
pub async fn messages_around(
    state: State<'_, AppState>,
    peer: String,
    cursor: u64,
    limit: usize,
) -> Result<MessagePage, IpcError> {
    let client = state.client().await?;
    let peer = username(&peer)?;
    let half = limit.clamp(2, MAX_PAGE) / 2;
    let store = client.store();
    // One more each way tells whether more exist.
    let mut older = store.messages_before(&peer, Cursor::from_value(cursor.saturating_add(1)), half + 1)?;
    let has_more = older.len() > half;
    if has_more {
        older.remove(0);
    }
    let mut newer = store.messages_after(&peer, Some(Cursor::from_value(cursor)), half + 1)?;
    let has_newer = newer.len() > half;
    newer.truncate(half);
    older.extend(newer);
    page(&client, &peer, older, has_more, has_newer)
}

/// Up to `limit` messages after `after`, oldest first: scrolling down from a search result towards the newest.
#[tauri::command]
pub async fn messages_after(
    state: State<'_, AppState>,
    peer: String,
    after: u64,
    limit: usize,
) -> Result<MessagePage, IpcError> {
    let client = state.client().await?;
    let peer = username(&peer)?;
    let limit = limit.clamp(1, MAX_PAGE);
    let mut newer = client
        .store()
        .messages_after(&peer, Some(Cursor::from_value(after)), limit + 1)?;
    let has_newer = newer.len() > limit;
    newer.truncate(limit);
    page(&client, &peer, newer, true, has_newer)
}

fn page(
    client: &magpie_core::Client,
    peer: &magpie_proto::Username,
    entries: Vec<magpie_core::history::Entry>,
    has_more: bool,
    has_newer: bool,
) -> Result<MessagePage, IpcError> {
    Ok(MessagePage {
        messages: entries
            .iter()
            .map(|entry| message_item(&MessageView::from(entry)))
            .collect(),
        has_more,
        has_newer,
        rekeys: client.contact(peer)?.map(|c| c.rekeys).unwrap_or_default(),
    })
}

fn search_chat(chat: ChatResults) -> SearchChat {
    SearchChat {
        peer: chat.peer,
        total: chat.total,
        found: chat
            .found
            .into_iter()
            .map(|found| SearchHit {
                message: message_item(&found.message),
                snippet: found
                    .snippet
                    .into_iter()
                    .map(|part| SnippetPiece {
                        text: part.text,
                        matched: part.matched,
                    })
                    .collect(),
            })
            .collect(),
    }
}

//! Chats, messages, requests and verification of the open profile.

use tauri::State;

use super::username;
use crate::convert::{self, message_item};
use crate::error::IpcError;
use crate::ipc_types::{
    ChatSummary, ConnectionState, IncomingRequest, MessageItem, MessagePage, RequestsView, SafetyNumberView,
};
use crate::state::AppState;

/// The largest page the UI may ask for.
const MAX_PAGE: usize = 500;

#[tauri::command]
pub fn connection_state(state: State<'_, AppState>) -> ConnectionState {
    state.connection()
}

#[tauri::command]
pub async fn chats(state: State<'_, AppState>) -> Result<Vec<ChatSummary>, IpcError> {
    let client = state.client().await?;
    client
        .contacts()?
        .iter()
        .map(|contact| convert::chat_summary(&client, contact))
        .collect()
}

#[tauri::command]
pub async fn messages(
    state: State<'_, AppState>,
    peer: String,
    before: Option<u64>,
    limit: usize,
) -> Result<MessagePage, IpcError> {
    let client = state.client().await?;
    let peer = username(&peer)?;
    let limit = limit.clamp(1, MAX_PAGE);
    // One more than asked tells whether older messages exist.
    let mut entries = client.messages_before(&peer, before, limit + 1)?;
    let has_more = entries.len() > limit;
    if has_more {
        entries.remove(0);
    }
    Ok(MessagePage {
        messages: entries
            .iter()
            .map(|entry| message_item(&magpie_core::engine::MessageView::from(entry)))
            .collect(),
        has_more,
        rekeys: client.contact(&peer)?.map(|c| c.rekeys).unwrap_or_default(),
    })
}

#[tauri::command]
pub async fn send_message(state: State<'_, AppState>, peer: String, text: String) -> Result<MessageItem, IpcError> {
    let client = state.client().await?;
    let peer = username(&peer)?;
    if text.trim().is_empty() {
        return Err(IpcError::invalid("An empty message is not sent."));
    }
    Ok(message_item(&client.send_text(&peer, &text)?))
}

#[tauri::command]
pub async fn retry_message(state: State<'_, AppState>, peer: String, id: String) -> Result<MessageItem, IpcError> {
    let client = state.client().await?;
    let peer = username(&peer)?;
    let id = uuid::Uuid::parse_str(&id).map_err(|_| IpcError::invalid("That message id is malformed."))?;
    Ok(message_item(&client.retry_message(&peer, id)?))
}

#[tauri::command]
pub async fn mark_read(state: State<'_, AppState>, peer: String, cursor: u64) -> Result<(), IpcError> {
    let client = state.client().await?;
    Ok(client.mark_read(&username(&peer)?, cursor)?)
}

#[tauri::command]
pub async fn start_chat(state: State<'_, AppState>, peer: String) -> Result<(), IpcError> {
    let client = state.client().await?;
    let peer = username(&peer)?;
    if &peer == client.username() {
        return Err(IpcError::invalid("You cannot start a chat with yourself."));
    }
    client.request(&peer).await?;
    Ok(())
}

#[tauri::command]
pub async fn requests(state: State<'_, AppState>) -> Result<RequestsView, IpcError> {
    let client = state.client().await?;
    let incoming = client
        .incoming_requests()?
        .into_iter()
        .map(|request| IncomingRequest {
            peer: request.peer,
            fingerprint: request.fingerprint,
            sent_at: request.sent_at,
            key_changed: request.key_changed,
        })
        .collect();
    let outgoing = client
        .outgoing_requests()?
        .into_iter()
        .map(|(peer, _)| peer.to_string())
        .collect();
    Ok(RequestsView { incoming, outgoing })
}

#[tauri::command]
pub async fn accept_request(state: State<'_, AppState>, peer: String) -> Result<(), IpcError> {
    let client = state.client().await?;
    Ok(client.accept(&username(&peer)?).await?)
}

#[tauri::command]
pub async fn decline_request(state: State<'_, AppState>, peer: String) -> Result<(), IpcError> {
    let client = state.client().await?;
    Ok(client.decline(&username(&peer)?).await?)
}

#[tauri::command]
pub async fn safety_number(state: State<'_, AppState>, peer: String) -> Result<SafetyNumberView, IpcError> {
    let client = state.client().await?;
    safety_view(&client, &username(&peer)?)
}

/// Deletes the chat's messages from this computer (the contact, its keys and the session stay); returns how
/// many. A million messages take a few seconds, off the async workers.
#[tauri::command]
pub async fn clear_chat(state: State<'_, AppState>, peer: String) -> Result<u32, IpcError> {
    let client = state.client().await?;
    let peer = username(&peer)?;
    let removed = super::blocking(move || Ok(client.clear_chat(&peer)?)).await?;
    Ok(u32::try_from(removed).unwrap_or(u32::MAX))
}

/// Verifies the peer (during a key change: accepts the new key whose number the user compared).
#[tauri::command]
pub async fn mark_verified(state: State<'_, AppState>, peer: String) -> Result<SafetyNumberView, IpcError> {
    let client = state.client().await?;
    let peer = username(&peer)?;
    client.mark_verified(&peer).await?;
    safety_view(&client, &peer)
}

#[tauri::command]
pub async fn accept_new_key(state: State<'_, AppState>, peer: String) -> Result<(), IpcError> {
    let client = state.client().await?;
    client.accept_new_key(&username(&peer)?).await?;
    Ok(())
}

fn safety_view(client: &magpie_core::Client, peer: &magpie_proto::Username) -> Result<SafetyNumberView, IpcError> {
    let number = client.safety_number(peer)?;
    let contact = client.contact(peer)?;
    Ok(SafetyNumberView {
        peer: peer.to_string(),
        groups: number.groups().into_iter().map(str::to_owned).collect(),
        qr_svg: crate::qr::svg(&number.qr_payload())?,
        verified: contact.as_ref().is_some_and(|c| c.verified),
        key_changed: contact.as_ref().is_some_and(|c| c.key_changed),
    })
}

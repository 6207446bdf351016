//! Chats, messages, requests and verification of the open profile.

use tauri::{AppHandle, Runtime, State};

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
        has_newer: false,
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
pub async fn mark_read<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    peer: String,
    cursor: u64,
) -> Result<(), IpcError> {
    let client = state.client().await?;
    client.mark_read(&username(&peer)?, cursor)?;
    crate::notify::chat_opened(&app, &peer);
    crate::tray::refresh_unread_soon(&app);
    Ok(())
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
            request_id: request.request_id.to_string(),
            peer: request.peer,
            fingerprint: request.fingerprint.to_hex(),
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

/// Accepts the request `request_id`, whose key the user saw as `fingerprint`.
#[tauri::command]
pub async fn accept_request(
    state: State<'_, AppState>,
    request_id: String,
    fingerprint: String,
) -> Result<(), IpcError> {
    let client = state.client().await?;
    Ok(client
        .accept(request_id_of(&request_id)?, &fingerprint_of(&fingerprint)?)
        .await?)
}

#[tauri::command]
pub async fn decline_request(state: State<'_, AppState>, request_id: String) -> Result<(), IpcError> {
    let client = state.client().await?;
    Ok(client.decline(request_id_of(&request_id)?).await?)
}

#[tauri::command]
pub async fn safety_number(state: State<'_, AppState>, peer: String) -> Result<SafetyNumberView, IpcError> {
    let client = state.client().await?;
    safety_view(&client, &username(&peer)?)
}

/// Deletes the chat's messages from this computer (the contact, its keys and the session stay); returns how
/// many. A million messages take a few seconds, off the async workers. The profile is then opened again, which
/// rewrites its history without them: deleted values would otherwise stay in sled's files.
#[tauri::command]
pub async fn clear_chat<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    peer: String,
) -> Result<u32, IpcError> {
    let client = state.client().await?;
    let peer = username(&peer)?;
    let removed = super::blocking(move || Ok(client.clear_chat(&peer)?)).await?;
    super::profiles::reopen_active(&app, &state).await?;
    Ok(u32::try_from(removed).unwrap_or(u32::MAX))
}

/// Verifies the peer's key `fingerprint`, the one whose number the user compared (during a key change: accepts
/// that new key). Refused when it is not the key verifying would pin now.
#[tauri::command]
pub async fn mark_verified(
    state: State<'_, AppState>,
    peer: String,
    fingerprint: String,
) -> Result<SafetyNumberView, IpcError> {
    let client = state.client().await?;
    let peer = username(&peer)?;
    client.mark_verified(&peer, &fingerprint_of(&fingerprint)?).await?;
    safety_view(&client, &peer)
}

/// The user read the chat's security notice (what was discarded from the peer): the counts start again.
#[tauri::command]
pub async fn dismiss_discarded(state: State<'_, AppState>, peer: String) -> Result<(), IpcError> {
    let client = state.client().await?;
    Ok(client.dismiss_discarded(&username(&peer)?)?)
}

/// Accepts the peer's new key `fingerprint` (the one the banner showed) without comparing numbers.
#[tauri::command]
pub async fn accept_new_key(state: State<'_, AppState>, peer: String, fingerprint: String) -> Result<(), IpcError> {
    let client = state.client().await?;
    client
        .accept_new_key(&username(&peer)?, &fingerprint_of(&fingerprint)?)
        .await?;
    Ok(())
}

fn safety_view(client: &magpie_core::Client, peer: &magpie_proto::Username) -> Result<SafetyNumberView, IpcError> {
    let check = client.safety_number(peer)?;
    let contact = client.contact(peer)?;
    Ok(SafetyNumberView {
        peer: peer.to_string(),
        groups: check.number.groups().into_iter().map(str::to_owned).collect(),
        qr_svg: crate::qr::svg(&check.number.qr_payload())?,
        fingerprint: check.fingerprint.to_hex(),
        verified: contact.as_ref().is_some_and(|c| c.verified),
        key_changed: contact.as_ref().is_some_and(|c| c.key_changed),
    })
}

fn fingerprint_of(hex: &str) -> Result<magpie_proto::Fingerprint, IpcError> {
    magpie_proto::Fingerprint::from_hex(hex).map_err(|_| IpcError::invalid("That key fingerprint is malformed."))
}

fn request_id_of(id: &str) -> Result<uuid::Uuid, IpcError> {
    uuid::Uuid::parse_str(id).map_err(|_| IpcError::invalid("That request id is malformed."))
}

//! magpie-core's types as the UI sees them.

use magpie_core::engine::{ConnectionState as CoreConnection, Event, MessageView};
use magpie_core::history::{Contact, Delivery as CoreDelivery, Direction as CoreDirection};
use magpie_core::Client;

use crate::error::IpcError;
use crate::ipc_types::{
    ChatSummary, ConnectionState, Delivery, Direction, DiscardedView, FileItem, IdentityView, MessageItem, SendRefusal,
    ThumbnailItem, UiEvent,
};

/// Unread counts stop here; the badge shows "99+".
pub const UNREAD_CAP: usize = 100;

pub fn message_item(view: &MessageView) -> MessageItem {
    MessageItem {
        id: view.id.to_string(),
        peer: view.peer.clone(),
        direction: match view.direction {
            CoreDirection::Outgoing => Direction::Outgoing,
            CoreDirection::Incoming => Direction::Incoming,
        },
        body: view.body.clone(),
        sent_at: view.sent_at,
        delivery: delivery(view.delivery),
        cursor: view.cursor,
        file: view.file.as_ref().map(|f| FileItem {
            name: f.name.clone(),
            size: f.size,
            media_type: f.media_type.clone(),
            thumbnail: f.thumbnail.as_ref().map(|t| ThumbnailItem {
                url: format!("data:{};base64,{}", t.media_type, t.data),
                width: t.width,
                height: t.height,
            }),
        }),
    }
}

pub fn delivery(delivery: CoreDelivery) -> Delivery {
    match delivery {
        CoreDelivery::Sending => Delivery::Sending,
        CoreDelivery::Sent => Delivery::Sent,
        CoreDelivery::Delivered => Delivery::Delivered,
        CoreDelivery::Failed => Delivery::Failed,
        CoreDelivery::Received => Delivery::Received,
        CoreDelivery::Waiting => Delivery::Waiting,
        CoreDelivery::Uploading => Delivery::Uploading,
    }
}

pub fn connection(state: CoreConnection) -> ConnectionState {
    match state {
        CoreConnection::Connecting => ConnectionState::Connecting,
        CoreConnection::Online => ConnectionState::Online,
        CoreConnection::Offline => ConnectionState::Offline,
    }
}

/// The open profile's identity for Settings and onboarding.
pub fn identity(client: &Client, local_relay: bool) -> Result<IdentityView, IpcError> {
    let certificate = client.certificate();
    let (valid_from, valid_until) = certificate.validity_unix()?;
    Ok(IdentityView {
        profile_id: client.profile().id().to_string(),
        username: client.username().to_string(),
        fingerprint: client.fingerprint().to_hex(),
        certificate_subject: format!("CN={}", certificate.common_name().unwrap_or_default()),
        certificate_serial: certificate.serial_hex()?,
        valid_from,
        valid_until,
        relay_url: client.relay_url().trim_end_matches('/').to_owned(),
        relay_ca_fingerprint: client.relay_ca_fingerprint()?.to_hex(),
        local_relay,
        key_store: magpie_core::keystore::backend_name().to_owned(),
    })
}

/// A chat list row for `contact`.
pub fn chat_summary(client: &Client, contact: &Contact) -> Result<ChatSummary, IpcError> {
    let peer = &contact.username;
    let last = client.last_messages(peer, 1)?;
    let unread = client.unread(peer, UNREAD_CAP)?;
    let has_session = client.has_session(peer)?;
    Ok(ChatSummary {
        peer: peer.to_string(),
        verified: contact.verified,
        key_changed: contact.key_changed,
        new_fingerprint: contact
            .pending_fingerprint
            .filter(|_| contact.key_changed)
            .map(|f| f.to_hex()),
        has_session,
        session_coming: !has_session && client.session_coming(peer)?,
        discarded: contact.discarded.as_ref().map(|d| DiscardedView {
            messages: u32::try_from(d.messages).unwrap_or(u32::MAX),
            steps: u32::try_from(d.steps).unwrap_or(u32::MAX),
            since: d.since,
            last: d.last,
        }),
        last_message: last.last().map(|entry| message_item(&MessageView::from(entry))),
        unread: u32::try_from(unread).unwrap_or(u32::MAX),
        last_activity: contact.last_activity,
    })
}

/// The UI's view of an engine event; `None` for what the UI does not follow.
pub fn ui_event(event: &Event) -> Option<UiEvent> {
    Some(match event {
        Event::Connection { state } => UiEvent::Connection {
            state: connection(*state),
        },
        Event::RequestReceived {
            peer,
            fingerprint,
            key_changed,
            ..
        } => UiEvent::RequestReceived {
            peer: peer.clone(),
            fingerprint: fingerprint.clone(),
            key_changed: *key_changed,
        },
        Event::RequestDeclined { peer, .. } => UiEvent::RequestDeclined { peer: peer.clone() },
        Event::Handshake { step, peer, .. } => UiEvent::HandshakeProgress {
            peer: peer.clone(),
            step: serde_json::to_value(step)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
        },
        Event::HandshakeFailed { peer, reason, .. } => UiEvent::HandshakeFailed {
            peer: peer.clone(),
            reason: reason.clone(),
        },
        Event::SessionEstablished { peer, rekey } => UiEvent::SessionEstablished {
            peer: peer.clone(),
            rekey: *rekey,
        },
        Event::MessageSent { message, .. } | Event::MessageReceived { message } | Event::MessageWaiting { message } => {
            UiEvent::Message {
                message: message_item(message),
            }
        }
        Event::DeliveryChanged { peer, id, delivery: d } => UiEvent::DeliveryChanged {
            peer: peer.clone(),
            id: id.to_string(),
            delivery: delivery(*d),
        },
        Event::SendRefused { peer, id, reason } => UiEvent::SendRefused {
            peer: peer.clone(),
            id: id.to_string(),
            reason: match reason {
                magpie_core::engine::Refusal::MailboxFull => SendRefusal::MailboxFull,
                _ => SendRefusal::Refused,
            },
        },
        Event::KeyChanged { peer, .. } => UiEvent::KeyChanged { peer: peer.clone() },
        Event::Rejected { peer, what, reason } => UiEvent::Rejected {
            peer: peer.clone(),
            step: *what == magpie_core::engine::Discard::Step,
            reason: reason.clone(),
        },
        Event::FileProgress { peer, id, done, total } => UiEvent::FileProgress {
            peer: peer.clone(),
            id: id.to_string(),
            done: *done,
            total: *total,
        },
        Event::FileStateChanged { peer, id, state } => UiEvent::FileStatusChanged {
            peer: peer.clone(),
            id: id.to_string(),
            status: crate::commands::files::file_status_of(Some(state.clone())),
        },
        _ => return None,
    })
}

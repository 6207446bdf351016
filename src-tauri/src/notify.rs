//! Native notifications for messages that arrive while the window is in the background: one per chat ("3 new
//! messages from bob"), replaced as more arrive and withdrawn once the chat is opened; a click on one opens its
//! chat. Never the text: notification daemons log and sync what they show. While Magpie is locked, one
//! notification names nobody ("2 new messages"), and a click only brings the lock screen up.

use std::collections::HashMap;
use std::sync::Mutex;

use tauri::{AppHandle, Emitter as _, Manager as _, Runtime};
use tauri_plugin_notification::NotificationExt as _;

use crate::ipc_types::{UiEvent, EVENT};
use crate::state::AppState;

/// The notification of messages that arrived while locked.
const LOCKED: &str = "";

/// Messages announced per chat since it was last opened (`LOCKED` for those that arrived while locked).
#[derive(Debug, Default)]
pub struct Announced(Mutex<HashMap<String, u32>>);

/// Opens the chat of a notification that is clicked. Call once at start: notifications shown before report nothing.
pub fn init<R: Runtime>(app: &AppHandle<R>) {
    app.manage(Announced::default());
    let handle = app.clone();
    let registered = app.notification().on_action(move |performed| {
        if performed.action_id() != "tap" {
            return;
        }
        crate::tray::show_window(&handle);
        let peer = performed
            .notification()
            .and_then(|n| n.extra().get("peer"))
            .and_then(serde_json::Value::as_str)
            .filter(|peer| !peer.is_empty());
        if let (Some(peer), false) = (peer, handle.state::<AppState>().window_locked()) {
            let _ = handle.emit(EVENT, UiEvent::OpenChat { peer: peer.to_owned() });
        }
    });
    if let Err(error) = registered {
        tracing::debug!(%error, "notification clicks are not reported here");
    }
}

/// A message from `peer` arrived (`None` while locked): shows or updates that chat's notification, unless the
/// window is in front or notifications are off.
pub fn message_received<R: Runtime>(app: &AppHandle<R>, peer: Option<&str>) {
    let state = app.state::<AppState>();
    if !state.settings().notifications {
        return;
    }
    // Asked again here: the window may have locked since the caller looked.
    let peer = peer.filter(|_| !state.window_locked());
    let focused = app
        .get_webview_window("main")
        .and_then(|window| window.is_focused().ok())
        .unwrap_or(false);
    if focused {
        return;
    }
    let key = peer.unwrap_or(LOCKED);
    let announced = app.state::<Announced>();
    let count = {
        let mut announced = announced.0.lock().unwrap_or_else(|p| p.into_inner());
        let count = announced.entry(key.to_owned()).or_default();
        *count = count.saturating_add(1);
        *count
    };
    let id = notification_id(key);
    // The chat's earlier notification gives way to this one (where the platform can take one back).
    let _ = app.notification().remove_active(vec![id]);
    let shown = app
        .notification()
        .builder()
        .id(id)
        .title("Magpie")
        .body(text(peer, count))
        .extra("peer", key)
        .show();
    if let Err(error) = shown {
        tracing::debug!(%error, "notification not shown");
    }
}

/// The chat with `peer` was opened (or read): its notification goes.
pub fn chat_opened<R: Runtime>(app: &AppHandle<R>, peer: &str) {
    withdraw(app, peer);
}

/// Magpie was locked: the notifications naming senders go.
pub fn withdraw_all<R: Runtime>(app: &AppHandle<R>) {
    let Some(announced) = app.try_state::<Announced>() else {
        return;
    };
    let keys: Vec<String> = announced
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .keys()
        .cloned()
        .collect();
    for key in keys {
        withdraw(app, &key);
    }
}

/// Magpie was unlocked: the notification naming nobody goes.
pub fn unlocked<R: Runtime>(app: &AppHandle<R>) {
    withdraw(app, LOCKED);
}

fn withdraw<R: Runtime>(app: &AppHandle<R>, key: &str) {
    let Some(announced) = app.try_state::<Announced>() else {
        return;
    };
    let removed = announced.0.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    if removed.is_some() {
        let _ = app.notification().remove_active(vec![notification_id(key)]);
    }
}

fn text(peer: Option<&str>, count: u32) -> String {
    match (peer, count) {
        (Some(peer), 1) => format!("New message from {peer}"),
        (Some(peer), n) => format!("{n} new messages from {peer}"),
        (None, 1) => "New message".to_owned(),
        (None, n) => format!("{n} new messages"),
    }
}

/// A chat's notification id: the same for every message of the chat (FNV-1a of the name, kept positive).
fn notification_id(key: &str) -> i32 {
    let hash = key
        .bytes()
        .fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    i32::try_from(hash >> 1).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_id_per_chat_and_the_text_names_only_the_sender() {
        assert_eq!(notification_id("bob"), notification_id("bob"));
        assert_ne!(notification_id("bob"), notification_id("carol"));
        assert!(notification_id("bob") >= 0);
        assert_eq!(text(Some("bob"), 1), "New message from bob");
        assert_eq!(text(Some("bob"), 3), "3 new messages from bob");
        assert_eq!(text(None, 2), "2 new messages");
    }
}

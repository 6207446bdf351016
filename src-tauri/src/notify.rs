//! Native notifications for messages that arrive while the window is in the background.

use tauri::{AppHandle, Manager as _, Runtime};
use tauri_plugin_notification::NotificationExt as _;

use crate::state::AppState;

/// "New message from alice" — never the text: notification daemons log and sync what they show. `None` while
/// locked: "New message", naming nobody.
pub fn message_received<R: Runtime>(app: &AppHandle<R>, peer: Option<&str>) {
    if !app.state::<AppState>().settings().notifications {
        return;
    }
    let focused = app
        .get_webview_window("main")
        .and_then(|window| window.is_focused().ok())
        .unwrap_or(false);
    if focused {
        return;
    }
    let shown = app
        .notification()
        .builder()
        .title("Magpie")
        .body(match peer {
            Some(peer) => format!("New message from {peer}"),
            None => "New message".to_owned(),
        })
        .show();
    if let Err(error) = shown {
        tracing::debug!(%error, "notification not shown");
    }
}

//! Opening a profile in the shell: its client stays connected, and its events go to the window.

use magpie_core::Client;
use tauri::{AppHandle, Emitter as _, Manager as _, Runtime};
use tokio::sync::broadcast::error::RecvError;

use crate::convert;
use crate::error::IpcError;
use crate::ipc_types::{ConnectionState, IdentityView, UiEvent, EVENT};
use crate::notify;
use crate::state::{ActiveProfile, AppState};

/// Makes `client` the open profile: closes the previous one, connects, and forwards events.
pub async fn activate<R: Runtime>(
    app: &AppHandle<R>,
    state: &AppState,
    client: Client,
    local_relay: bool,
) -> Result<IdentityView, IpcError> {
    let mut active = state.active().lock().await;
    activate_in(app, state, &mut active, client, local_relay).await
}

/// [`activate`] with the open-profile slot already held.
pub async fn activate_in<R: Runtime>(
    app: &AppHandle<R>,
    state: &AppState,
    active: &mut Option<ActiveProfile>,
    client: Client,
    local_relay: bool,
) -> Result<IdentityView, IpcError> {
    let view = convert::identity(&client, local_relay)?;
    if let Some(previous) = active.take() {
        close_logged(previous).await;
    }
    // A profile made or restored while the window locked takes the lock screen's place: behind it if its own lock
    // is on, else in the open (it has no passphrase to ask for).
    if state.window_locked() {
        state.set_locked(client.profile().lock_on().then(|| crate::ipc_types::LockedView {
            profile_id: view.profile_id.clone(),
            username: view.username.clone(),
            open: true,
        }));
    }
    state.set_connection(ConnectionState::Connecting);
    // Subscribe before the connection starts, so its first events are not missed.
    let events = client.events();
    let forward = tauri::async_runtime::spawn(forward_events(app.clone(), events));
    let run = {
        let client = client.clone();
        let app = app.clone();
        tauri::async_runtime::spawn(async move {
            if let Err(error) = client.run().await {
                // Only what retrying cannot fix ends `run` (the relay's CA changed, the history failed).
                tracing::error!(%error, "the relay connection stopped for good");
                let state = ConnectionState::Offline;
                app.state::<AppState>().set_connection(state);
                let _ = app.emit(EVENT, UiEvent::Connection { state });
            }
        })
    };
    state.remember_profile(Some(&view.profile_id));
    *active = Some(ActiveProfile::new(client, local_relay, vec![run, forward]));
    let app = app.clone();
    // After the slot is released: the count reads the open profile.
    tauri::async_runtime::spawn(async move { crate::tray::refresh_unread(&app).await });
    Ok(view)
}

/// Closes a profile for good; a client its tasks still hold closes its history when they let go.
pub async fn close_logged(previous: ActiveProfile) {
    if previous.close().await.is_err() {
        tracing::warn!("the closed profile's tasks still hold its history; it closes when they end");
    }
}

async fn forward_events<R: Runtime>(
    app: AppHandle<R>,
    mut events: tokio::sync::broadcast::Receiver<magpie_core::Event>,
) {
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            // The UI reloads lists on the next event; history holds the truth.
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "the window fell behind the engine's events");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let locked = app.state::<AppState>().window_locked();
        if let magpie_core::Event::MessageReceived { message } = &event {
            notify::message_received(&app, (!locked).then_some(message.peer.as_str()));
            crate::tray::refresh_unread_soon(&app);
        }
        let Some(ui_event) = convert::ui_event(&event) else {
            continue;
        };
        // Behind the lock screen the window learns nothing but the connection's state; it reloads at unlock. (Asked
        // again, as close to sending as can be.)
        let locked = app.state::<AppState>().window_locked();
        if locked && !matches!(ui_event, UiEvent::Connection { .. }) {
            continue;
        }
        if let UiEvent::Connection { state } = &ui_event {
            app.state::<AppState>().set_connection(*state);
        }
        if let Err(error) = app.emit(EVENT, ui_event) {
            tracing::warn!(%error, "could not send an event to the window");
        }
    }
}

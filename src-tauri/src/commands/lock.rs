//! The app lock: the passphrase that wraps the open profile's keys, the lock screen, and locking the window.
//!
//! A locked profile is not opened at all until its passphrase is given: nothing of it is read. Once open, locking
//! the window (idle time, Ctrl+L, the tray, the system going to sleep) keeps the profile open behind the lock screen,
//! its connection receiving and storing as before: its keys are in this process's memory already, and the lock
//! screen guards the screen, not the memory. Meanwhile every command that reads the profile is refused here
//! ([`AppState::client`]), its events are held back, and notifications name nobody.

use magpie_core::Profile;
use tauri::{AppHandle, Emitter as _, Runtime, State};
use zeroize::Zeroizing;

use super::blocking;
use super::profiles::activate_profile;
use crate::convert;
use crate::error::IpcError;
use crate::ipc_types::{IdentityView, LockStatus, LockedView, ProfilesView, UiEvent, EVENT};
use crate::state::AppState;

/// Unlocks the profile behind the lock screen: opens it, or unlocks the window it is open behind.
#[tauri::command]
pub async fn unlock<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    passphrase: String,
) -> Result<IdentityView, IpcError> {
    let passphrase = Zeroizing::new(passphrase);
    let _one_at_a_time = state.opening().lock().await;
    let Some(locked) = state.locked() else {
        return Err(IpcError::invalid("Magpie is not locked."));
    };
    if locked.open {
        let active = state.active().lock().await;
        let active = active
            .as_ref()
            .filter(|active| active.client.profile().id().to_string() == locked.profile_id)
            .ok_or_else(IpcError::no_profile)?;
        let client = active.client.clone();
        blocking(move || client.profile().check_passphrase(&passphrase).map_err(IpcError::from)).await?;
        state.set_locked(None);
        crate::notify::unlocked(&app);
        return convert::identity(&active.client, active.local_relay);
    }
    let dir = state.profile_dir(&locked.profile_id)?;
    let keystore = state.keystore();
    let profile = blocking(move || Profile::unlock(&dir, keystore, &passphrase).map_err(IpcError::from)).await?;
    state.set_locked(None);
    activate_profile(&app, &state, profile).await
}

/// Leaves the lock screen of a profile that is not open yet (to choose another one).
#[tauri::command]
pub async fn cancel_unlock(state: State<'_, AppState>) -> Result<ProfilesView, IpcError> {
    if state.window_locked() {
        return Err(IpcError::locked());
    }
    state.set_locked(None);
    Ok(state.profiles_view().await)
}

/// Locks the window now (the open profile keeps receiving). Needs a passphrase set.
#[tauri::command]
pub async fn lock_now<R: Runtime>(app: AppHandle<R>, state: State<'_, AppState>) -> Result<(), IpcError> {
    lock_window(&app, &state).await
}

/// Locks the window of the open profile, if its lock is on; `Ok` if it is locked already. No I/O: it waits only
/// for the open-profile slot, which a profile switch holds while the old profile closes (rarely seconds).
pub async fn lock_window<R: Runtime>(app: &AppHandle<R>, state: &AppState) -> Result<(), IpcError> {
    // The slot held from the check to the lock: no profile is swapped in between (a swap while locked moves the
    // lock itself, see `activate_in`).
    let active = state.active().lock().await;
    if state.window_locked() {
        return Ok(());
    }
    let client = active
        .as_ref()
        .map(|a| a.client.clone())
        .ok_or_else(IpcError::no_profile)?;
    if !client.profile().lock_on() {
        return Err(IpcError::invalid(
            "Set a passphrase first (Settings → Lock) to lock Magpie.",
        ));
    }
    state.set_locked(Some(LockedView {
        profile_id: client.profile().id().to_string(),
        username: client.username().to_string(),
        open: true,
    }));
    drop(active);
    // A search under way stops sending what it finds; named notifications go.
    state.start_search();
    crate::notify::withdraw_all(app);
    let _ = app.emit(EVENT, UiEvent::Locked);
    Ok(())
}

/// Whether the open profile's lock is on.
#[tauri::command]
pub async fn lock_status(state: State<'_, AppState>) -> Result<LockStatus, IpcError> {
    let client = state.client().await?;
    Ok(LockStatus {
        on: client.profile().lock_on(),
    })
}

/// Turns the lock on (`current` is `None`) or changes its passphrase.
#[tauri::command]
pub async fn set_lock_passphrase(
    state: State<'_, AppState>,
    current: Option<String>,
    passphrase: String,
) -> Result<LockStatus, IpcError> {
    let (current, passphrase) = (current.map(Zeroizing::new), Zeroizing::new(passphrase));
    // One change at a time: two at once could wrap the keys with one key and seal the other.
    let _one_at_a_time = state.opening().lock().await;
    let client = state.client().await?;
    blocking(move || {
        client
            .profile()
            .set_passphrase(current.as_deref().map(String::as_str), &passphrase)
            .map_err(IpcError::from)
    })
    .await?;
    Ok(LockStatus { on: true })
}

/// Turns the lock off; `current` must open it.
#[tauri::command]
pub async fn remove_lock_passphrase(state: State<'_, AppState>, current: String) -> Result<LockStatus, IpcError> {
    let current = Zeroizing::new(current);
    let _one_at_a_time = state.opening().lock().await;
    let client = state.client().await?;
    blocking(move || client.profile().remove_passphrase(&current).map_err(IpcError::from)).await?;
    Ok(LockStatus { on: false })
}

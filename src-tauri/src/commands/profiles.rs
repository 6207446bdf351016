//! Profiles: onboarding (key, credential store, registration), switching, deleting.

use magpie_core::relay::RelayClient;
use magpie_core::{Client, Profile};
use magpie_proto::{Fingerprint, Identity, TrustAnchor};
use tauri::{AppHandle, Emitter as _, Runtime, State};

use super::blocking;
use crate::convert;
use crate::error::{IpcError, IpcErrorCode};
use crate::ipc_types::{
    IdentityView, LockedView, OnboardingStage, ProfilesView, RelayChoice, RelayProbe, ONBOARDING_EVENT,
};
use crate::session::{activate, activate_in, close_logged};
use crate::state::{mark_local_relay, open_profile_dir, uses_local_relay, AppState};

#[tauri::command]
pub async fn list_profiles(state: State<'_, AppState>) -> Result<ProfilesView, IpcError> {
    Ok(state.profiles_view().await)
}

/// The CA a relay presents, for the user to compare with what its operator published.
#[tauri::command]
pub async fn probe_relay(url: String) -> Result<RelayProbe, IpcError> {
    let relay = RelayClient::new(url.trim())?;
    let ca = relay.ca().await?;
    Ok(RelayProbe {
        url: relay.url().to_owned(),
        ca_fingerprint: TrustAnchor::new(ca.clone())?.fingerprint()?.to_hex(),
        ca_subject: format!("CN={}", ca.common_name().unwrap_or_default()),
    })
}

#[tauri::command]
pub async fn create_profile<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    username: String,
    relay: RelayChoice,
) -> Result<IdentityView, IpcError> {
    let name = super::username(&username)?;
    let stage = |stage: OnboardingStage| {
        let _ = app.emit(ONBOARDING_EVENT, stage);
    };
    let (relay_url, expected_ca, local) = match relay {
        RelayChoice::Local => {
            stage(OnboardingStage::StartingRelay);
            (state.local_relay().await?.url().to_owned(), None, true)
        }
        RelayChoice::Remote { url, ca_fingerprint } => {
            let expected = Fingerprint::from_hex(ca_fingerprint.trim())
                .map_err(|_| IpcError::invalid("The relay's CA fingerprint is not 64 hex digits."))?;
            (url.trim().to_owned(), Some(expected), false)
        }
    };
    stage(OnboardingStage::GeneratingKey);
    let identity = blocking(move || Identity::generate(name).map_err(IpcError::from)).await?;
    stage(OnboardingStage::StoringKey);
    let dir = state.profiles_dir().join(uuid::Uuid::new_v4().to_string());
    let keystore = state.keystore();
    let profile = {
        let dir = dir.clone();
        blocking(move || Profile::create_with_identity(&dir, identity, keystore).map_err(IpcError::from)).await?
    };
    stage(OnboardingStage::Registering);
    let client = match Client::register(profile, &relay_url, expected_ca.as_ref()).await {
        Ok(client) => client,
        Err(error) => {
            // Nothing half-made stays behind: a retry with another name starts clean.
            let keystore = state.keystore();
            let cleanup = dir.clone();
            let _ = blocking(move || Profile::remove(&cleanup, keystore.as_ref()).map_err(IpcError::from)).await;
            return Err(error.into());
        }
    };
    if local {
        mark_local_relay(&dir)?;
    }
    let view = activate(&app, &state, client, local).await?;
    stage(OnboardingStage::Done);
    Ok(view)
}

#[tauri::command]
pub async fn open_profile<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    id: String,
) -> Result<IdentityView, IpcError> {
    let _one_at_a_time = state.opening().lock().await;
    if state.window_locked() {
        return Err(IpcError::locked());
    }
    if let Some(active) = state.active().lock().await.as_ref() {
        if active.client.profile().id().to_string() == id {
            return convert::identity(&active.client, active.local_relay);
        }
    }
    let dir = state.profile_dir(&id)?;
    open_dir(&app, &state, dir).await
}

/// The open profile; at start, the one open last time.
#[tauri::command]
pub async fn identity<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> Result<Option<IdentityView>, IpcError> {
    current_or_last(&app, &state).await
}

/// The open profile, or the one open last time, opened now. Also called as the app starts, so the history opens
/// while the window is still loading; the window's first `identity` call then waits for it.
pub async fn current_or_last<R: Runtime>(
    app: &AppHandle<R>,
    state: &AppState,
) -> Result<Option<IdentityView>, IpcError> {
    let _one_at_a_time = state.opening().lock().await;
    if state.window_locked() {
        return Err(IpcError::locked());
    }
    if let Some(active) = state.active().lock().await.as_ref() {
        return convert::identity(&active.client, active.local_relay).map(Some);
    }
    let Some(id) = state.last_profile() else {
        return Ok(None);
    };
    let Ok(dir) = state.profile_dir(&id) else {
        state.remember_profile(None);
        return Ok(None);
    };
    open_dir(app, state, dir).await.map(Some)
}

/// Opens and activates the profile in `dir`; a locked one goes behind the lock screen (the error says so).
async fn open_dir<R: Runtime>(
    app: &AppHandle<R>,
    state: &AppState,
    dir: std::path::PathBuf,
) -> Result<IdentityView, IpcError> {
    let opened = open_profile_dir(dir.clone(), state.keystore()).await;
    if let Err(IpcError {
        code: IpcErrorCode::Locked,
        ..
    }) = &opened
    {
        if let Ok(info) = magpie_core::profile::ProfileInfo::read(&dir) {
            state.set_locked(Some(LockedView {
                profile_id: info.profile_id.to_string(),
                username: info.username.to_string(),
                open: false,
            }));
        }
    }
    activate_profile(app, state, opened?).await
}

/// Connects an opened profile (to the embedded relay for a local one) and makes it the active one.
pub async fn activate_profile<R: Runtime>(
    app: &AppHandle<R>,
    state: &AppState,
    profile: Profile,
) -> Result<IdentityView, IpcError> {
    let (client, local) = client_of(state, profile).await?;
    activate(app, state, client, local).await
}

/// The profile in `dir`, opened (off the async workers) with its relay.
async fn open_client(state: &AppState, dir: std::path::PathBuf) -> Result<(Client, bool), IpcError> {
    client_of(state, open_profile_dir(dir, state.keystore()).await?).await
}

/// A client for `profile` on its relay: the embedded one for a local profile.
async fn client_of(state: &AppState, profile: Profile) -> Result<(Client, bool), IpcError> {
    let local = uses_local_relay(profile.dir());
    let relay_url = match local {
        true => Some(state.local_relay().await?.url().to_owned()),
        false => None,
    };
    Ok((Client::open_at(profile, relay_url.as_deref())?, local))
}

/// Closes the open profile and opens it again, holding it meanwhile so other commands wait rather than find no
/// profile: a history marked for rewriting (after "Delete messages") is rewritten now, not at the next start.
pub async fn reopen_active<R: Runtime>(app: &AppHandle<R>, state: &AppState) -> Result<(), IpcError> {
    let _one_at_a_time = state.opening().lock().await;
    let mut active = state.active().lock().await;
    let Some(current) = active.take() else {
        return Ok(());
    };
    let local = current.local_relay;
    let client = match current.close().await {
        Ok(profile) => {
            let dir = profile.dir().to_owned();
            drop(profile);
            open_client(state, dir).await?.0
        }
        Err(client) => {
            tracing::warn!("the profile's tasks held its history too long; it is rewritten at the next start");
            client
        }
    };
    activate_in(app, state, &mut active, client, local).await?;
    Ok(())
}

/// Deletes a profile's credential-store entries and data (the UI asked for confirmation).
#[tauri::command]
pub async fn delete_profile(state: State<'_, AppState>, id: String) -> Result<ProfilesView, IpcError> {
    if state.locked().is_some() {
        return Err(IpcError::locked());
    }
    let dir = state.profile_dir(&id)?;
    {
        let mut active = state.active().lock().await;
        if active
            .as_ref()
            .is_some_and(|a| a.client.profile().id().to_string() == id)
        {
            if let Some(previous) = active.take() {
                close_logged(previous).await;
            }
        }
    }
    if state.last_profile().as_deref() == Some(id.as_str()) {
        state.remember_profile(None);
    }
    let keystore = state.keystore();
    blocking(move || Profile::remove(&dir, keystore.as_ref()).map_err(IpcError::from)).await?;
    Ok(state.profiles_view().await)
}

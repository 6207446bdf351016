//! What the shell holds between commands: the data folder, the embedded relay, and the open profile.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use magpie_core::keystore::{Keystore, PlatformKeystore};
use magpie_core::profile::ProfileInfo;
use magpie_core::{Client, Profile};
use tauri::async_runtime::JoinHandle;
use tokio::sync::Mutex as AsyncMutex;

use crate::error::{IpcError, IpcErrorCode};
use crate::ipc_types::{ConnectionState, LockedView, ProfileSummary, ProfilesView, Settings};
use crate::local_relay::LocalRelay;

/// Everything the commands share (Tauri-managed).
#[derive(Debug)]
pub struct AppState {
    data_dir: PathBuf,
    keystore: Arc<dyn Keystore>,
    local_relay: AsyncMutex<Option<Arc<LocalRelay>>>,
    active: AsyncMutex<Option<ActiveProfile>>,
    /// Held while a profile is being opened, so two callers never open the same history.
    opening: AsyncMutex<()>,
    connection: Mutex<ConnectionState>,
    settings: Mutex<Settings>,
    /// The files last dropped on the window and when, until the window sends them or another drop replaces them.
    dropped: Mutex<(Vec<PathBuf>, Option<std::time::Instant>)>,
    /// The running search's flag: a new search sets it, so the one before stops.
    search: Mutex<Arc<std::sync::atomic::AtomicBool>>,
    /// The backup or restore under way: Cancel sets its flag.
    long_task: Mutex<Arc<std::sync::atomic::AtomicBool>>,
    /// The backup file the user picked to restore (the page only ever sees its name).
    picked_backup: Mutex<Option<PathBuf>>,
    /// The profile behind the lock screen: waiting to be opened, or open with the window locked.
    lock: Mutex<Option<LockedView>>,
}

/// How long closing a profile waits for the engine's last tasks (a send, a re-key) to let go of it.
const CLOSE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// The open profile and the tasks that keep it connected; dropping it stops them.
#[derive(Debug)]
pub struct ActiveProfile {
    pub client: Client,
    pub local_relay: bool,
    tasks: Vec<JoinHandle<()>>,
}

impl ActiveProfile {
    pub fn new(client: Client, local_relay: bool, tasks: Vec<JoinHandle<()>>) -> Self {
        Self {
            client,
            local_relay,
            tasks,
        }
    }
}

impl ActiveProfile {
    /// Stops its tasks and waits until its history is closed, so it can be opened again. Gives the client back,
    /// still open, when tasks hold on to it past [`CLOSE_PATIENCE`].
    pub async fn close(mut self) -> Result<Profile, Client> {
        let tasks = std::mem::take(&mut self.tasks);
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
        if let Err(error) = self.client.profile().history().flush_async().await {
            tracing::warn!(%error, "could not flush the history of the closed profile");
        }
        let client = self.client.clone();
        drop(self);
        client.into_profile(CLOSE_PATIENCE).await
    }
}

impl Drop for ActiveProfile {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl AppState {
    pub fn new(data_dir: PathBuf) -> Self {
        let settings = read_settings(&data_dir);
        Self {
            data_dir,
            keystore: Arc::new(PlatformKeystore::new()),
            local_relay: AsyncMutex::new(None),
            active: AsyncMutex::new(None),
            opening: AsyncMutex::new(()),
            search: Mutex::default(),
            long_task: Mutex::default(),
            picked_backup: Mutex::default(),
            lock: Mutex::default(),
            connection: Mutex::new(ConnectionState::Connecting),
            settings: Mutex::new(settings),
            dropped: Mutex::default(),
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn keystore(&self) -> Arc<dyn Keystore> {
        Arc::clone(&self.keystore)
    }

    pub fn profiles_dir(&self) -> PathBuf {
        self.data_dir.join("profiles")
    }

    /// The open profile (the lock is held while the caller uses it).
    pub fn active(&self) -> &AsyncMutex<Option<ActiveProfile>> {
        &self.active
    }

    pub fn opening(&self) -> &AsyncMutex<()> {
        &self.opening
    }

    /// The open profile's client, or a "no profile" error.
    /// Keeps the paths of files dropped on the window (a later drop replaces them).
    pub fn set_dropped(&self, paths: Vec<PathBuf>) {
        *self.dropped.lock().unwrap_or_else(|p| p.into_inner()) = (paths, Some(std::time::Instant::now()));
    }

    /// Takes the paths of the files dropped within the last minute (the window sends them at once: older ones were
    /// dropped where no chat could take them).
    pub fn take_dropped(&self) -> Vec<PathBuf> {
        let (paths, at) = std::mem::take(&mut *self.dropped.lock().unwrap_or_else(|p| p.into_inner()));
        match at.is_some_and(|at| at.elapsed() < std::time::Duration::from_secs(60)) {
            true => paths,
            false => Vec::new(),
        }
    }

    /// The open profile's client; refused while the window is locked, so no command shows what the lock hides.
    pub async fn client(&self) -> Result<Client, IpcError> {
        let active = self.active.lock().await;
        // Asked with the slot held: a lock taken meanwhile is seen.
        if self.window_locked() {
            return Err(IpcError::locked());
        }
        active
            .as_ref()
            .map(|active| active.client.clone())
            .ok_or_else(IpcError::no_profile)
    }

    /// Refuses to go on with `client` once the window is locked or another profile is open: what a command checks
    /// after waiting on the user (a native dialog is a window of its own, which the lock screen does not cover).
    pub async fn still_open(&self, client: &Client) -> Result<(), IpcError> {
        let now = self.client().await?;
        match now.profile().id() == client.profile().id() {
            true => Ok(()),
            false => Err(IpcError::no_profile()),
        }
    }

    /// The embedded relay, started on first use.
    pub async fn local_relay(&self) -> Result<Arc<LocalRelay>, IpcError> {
        let mut slot = self.local_relay.lock().await;
        if let Some(relay) = slot.as_ref() {
            return Ok(Arc::clone(relay));
        }
        let relay = Arc::new(LocalRelay::start(crate::local_relay::relay_dir(&self.data_dir)).await?);
        *slot = Some(Arc::clone(&relay));
        Ok(relay)
    }

    /// Stops the embedded relay if it runs (at exit).
    pub async fn stop_local_relay(&self) {
        let relay = self.local_relay.lock().await.take();
        if let Some(relay) = relay.and_then(|relay| Arc::try_unwrap(relay).ok()) {
            relay.stop().await;
        }
    }

    /// A flag for a new search, the one before cancelled.
    pub fn start_search(&self) -> Arc<std::sync::atomic::AtomicBool> {
        let fresh = Arc::new(std::sync::atomic::AtomicBool::new(false));
        if let Ok(mut running) = self.search.lock() {
            running.store(true, std::sync::atomic::Ordering::Relaxed);
            *running = Arc::clone(&fresh);
        }
        fresh
    }

    /// A flag for a new backup or restore; the one before, if still running, is cancelled (one at a time).
    pub fn start_long_task(&self) -> Arc<std::sync::atomic::AtomicBool> {
        let fresh = Arc::new(std::sync::atomic::AtomicBool::new(false));
        if let Ok(mut running) = self.long_task.lock() {
            running.store(true, std::sync::atomic::Ordering::Relaxed);
            *running = Arc::clone(&fresh);
        }
        fresh
    }

    /// Stops the backup or restore under way.
    pub fn cancel_long_task(&self) {
        if let Ok(running) = self.long_task.lock() {
            running.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    pub fn picked_backup(&self) -> Option<PathBuf> {
        self.picked_backup.lock().ok().and_then(|picked| picked.clone())
    }

    pub fn set_picked_backup(&self, path: Option<PathBuf>) {
        if let Ok(mut picked) = self.picked_backup.lock() {
            *picked = path;
        }
    }

    /// The profile behind the lock screen, if any.
    pub fn locked(&self) -> Option<LockedView> {
        self.lock.lock().ok().and_then(|lock| lock.clone())
    }

    pub fn set_locked(&self, view: Option<LockedView>) {
        if let Ok(mut lock) = self.lock.lock() {
            *lock = view;
        }
    }

    /// The open profile is behind the lock screen: nothing of it goes to the window.
    pub fn window_locked(&self) -> bool {
        self.locked().is_some_and(|view| view.open)
    }

    /// The profiles, the open one and the locked one, for the window.
    pub async fn profiles_view(&self) -> ProfilesView {
        let active = self
            .active
            .lock()
            .await
            .as_ref()
            .map(|a| a.client.profile().id().to_string());
        ProfilesView {
            profiles: self.summaries(),
            active,
            locked: self.locked(),
        }
    }

    pub fn connection(&self) -> ConnectionState {
        self.connection.lock().map_or(ConnectionState::Offline, |state| *state)
    }

    pub fn set_connection(&self, state: ConnectionState) {
        if let Ok(mut current) = self.connection.lock() {
            *current = state;
        }
    }

    pub fn settings(&self) -> Settings {
        self.settings.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Saves the preferences (`settings.json`, written then renamed).
    pub fn save_settings(&self, settings: Settings) -> Result<Settings, IpcError> {
        write_json(&self.data_dir.join(SETTINGS_FILE), &settings)?;
        if let Ok(mut current) = self.settings.lock() {
            *current = settings.clone();
        }
        Ok(settings)
    }

    /// The profile opened last time, to reopen at start.
    pub fn last_profile(&self) -> Option<String> {
        std::fs::read_to_string(self.data_dir.join(LAST_PROFILE_FILE))
            .ok()
            .map(|id| id.trim().to_owned())
            .filter(|id| !id.is_empty())
    }

    pub fn remember_profile(&self, id: Option<&str>) {
        let path = self.data_dir.join(LAST_PROFILE_FILE);
        let result = match id {
            Some(id) => std::fs::write(&path, id),
            None => std::fs::remove_file(&path).or_else(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Ok(()),
                _ => Err(e),
            }),
        };
        if let Err(error) = result {
            tracing::warn!(%error, "could not remember the open profile");
        }
    }

    /// Every profile directory with its `profile.json`, oldest first. Unreadable ones are skipped (and logged).
    pub fn profile_infos(&self) -> Vec<(PathBuf, ProfileInfo)> {
        let Ok(entries) = std::fs::read_dir(self.profiles_dir()) else {
            return Vec::new();
        };
        let mut out: Vec<_> = entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            // A restore under way (or left by a crash) is not a profile yet.
            .filter(|dir| {
                let name = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                !magpie_core::backup::is_unfinished_restore(&name)
            })
            .filter_map(|dir| match ProfileInfo::read(&dir) {
                Ok(info) => Some((dir, info)),
                Err(error) => {
                    tracing::warn!(%error, "skipping a profile folder");
                    None
                }
            })
            .collect();
        out.sort_by_key(|(_, info)| info.created_at);
        out
    }

    /// The directory of profile `id`.
    pub fn profile_dir(&self, id: &str) -> Result<PathBuf, IpcError> {
        self.profile_infos()
            .into_iter()
            .find(|(_, info)| info.profile_id.to_string() == id)
            .map(|(dir, _)| dir)
            .ok_or_else(|| {
                IpcError::new(
                    IpcErrorCode::NoProfile,
                    "That profile no longer exists on this computer.",
                )
            })
    }

    /// Summaries for the profile switcher.
    pub fn summaries(&self) -> Vec<ProfileSummary> {
        self.profile_infos()
            .into_iter()
            .map(|(dir, info)| ProfileSummary {
                id: info.profile_id.to_string(),
                username: info.username.to_string(),
                local_relay: uses_local_relay(&dir),
                relay_url: info.relay_url,
            })
            .collect()
    }
}

/// Profiles registered with the embedded relay carry this marker file: its port may change between runs.
const LOCAL_RELAY_MARKER: &str = "local-relay";

pub fn uses_local_relay(profile_dir: &Path) -> bool {
    profile_dir.join(LOCAL_RELAY_MARKER).exists()
}

pub fn mark_local_relay(profile_dir: &Path) -> Result<(), IpcError> {
    std::fs::write(profile_dir.join(LOCAL_RELAY_MARKER), b"").map_err(|e| {
        IpcError::new(
            IpcErrorCode::DataDirectory,
            format!("Magpie could not write to {}: {e}", profile_dir.display()),
        )
    })
}

/// Opens a profile directory on a worker thread (the credential store blocks).
pub async fn open_profile_dir(dir: PathBuf, keystore: Arc<dyn Keystore>) -> Result<Profile, IpcError> {
    tauri::async_runtime::spawn_blocking(move || Profile::open(&dir, keystore))
        .await
        .map_err(|e| IpcError::new(IpcErrorCode::Internal, format!("Opening the profile stopped: {e}")))?
        .map_err(IpcError::from)
}

const SETTINGS_FILE: &str = "settings.json";
const LAST_PROFILE_FILE: &str = "last-profile";

/// The saved settings; at first start (no file) the defaults, with those that depend on the desktop asked of it.
fn read_settings(data_dir: &Path) -> Settings {
    let saved = std::fs::read(data_dir.join(SETTINGS_FILE)).unwrap_or_else(|_| b"{}".to_vec());
    serde_json::from_slice(&saved).unwrap_or_default()
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), IpcError> {
    let failed = |e: String| {
        IpcError::new(
            IpcErrorCode::DataDirectory,
            format!("Magpie could not save {}: {e}", path.display()),
        )
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| failed(e.to_string()))?;
    }
    let json = serde_json::to_vec_pretty(value).map_err(|e| failed(e.to_string()))?;
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, json).map_err(|e| failed(e.to_string()))?;
    std::fs::rename(&temp, path).map_err(|e| failed(e.to_string()))
}

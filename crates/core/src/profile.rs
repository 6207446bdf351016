//! Profiles: one person's Magpie on this machine. Several live side by side (Alice and Bob on one machine).
//!
//! A profile is a directory plus two credential-store entries. The directory holds:
//! - `profile.json`: non-secret facts: format `version`, `profile_id` (a random UUID), `username`, `relay_url`
//!   (unset until registration), `created_at` (Unix seconds);
//! - `history/`: the sled database of [`crate::history`], every value sealed with the history key.
//!
//! The credential store (service [`crate::keystore::SERVICE`] for [`PlatformKeystore`]) holds, per profile:
//! - `<profile_id>:identity-key`: the RSA-3072 identity private key, PKCS#8 DER;
//! - `<profile_id>:history-key`: the 256-bit history key, raw bytes;
//! - `<profile_id>:history-generation`: how many times the history was opened (see [`Profile::restored`]);
//! - with the app lock on, `<profile_id>:lock`, and the two keys wrapped ([`lock`]).
//!
//! No secret is ever written to the directory in clear. Every call here blocks (keygen, D-Bus, disk): run it on a
//! worker thread (`tokio::task::spawn_blocking`), never on a UI or async thread.
//!
//! [`PlatformKeystore`]: crate::keystore::PlatformKeystore

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use magpie_proto::{Identity, Username};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::history::{History, HistoryKey};
use crate::keystore::{Keystore, SecretBytes};

pub mod lock;

use lock::{is_wrapped, lock_account, WrappingKey};

/// The profile's description file, inside its directory.
pub const PROFILE_FILE: &str = "profile.json";
/// The history database's directory, inside the profile's directory.
pub const HISTORY_DIR: &str = "history";
const FORMAT_VERSION: u32 = 1;

/// The credential-store account of a profile's identity private key.
pub fn identity_account(profile_id: Uuid) -> String {
    format!("{profile_id}:identity-key")
}

/// The credential-store account of a profile's history key.
pub fn history_account(profile_id: Uuid) -> String {
    format!("{profile_id}:history-key")
}

/// The credential-store account of a profile's open count (see [`Profile::restored`]).
pub fn generation_account(profile_id: Uuid) -> String {
    format!("{profile_id}:history-generation")
}

/// What `profile.json` holds. Nothing in it is secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileInfo {
    /// Format of this file.
    pub version: u32,
    /// Names the profile's credential-store entries.
    pub profile_id: Uuid,
    /// Whose profile it is.
    pub username: Username,
    /// The relay this profile registered with; `None` until registration.
    pub relay_url: Option<String>,
    /// When the profile was created, Unix seconds.
    pub created_at: u64,
}

impl ProfileInfo {
    /// Reads `profile.json` from a profile directory.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(PROFILE_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == ErrorKind::NotFound => return Err(Error::ProfileNotFound(dir.to_owned())),
            Err(source) => return Err(io_error("read", &path, source)),
        };
        let info: Self = serde_json::from_slice(&bytes).map_err(|error| Error::ProfileCorrupt {
            path: path.clone(),
            reason: error.to_string(),
        })?;
        if info.version != FORMAT_VERSION {
            return Err(Error::ProfileCorrupt {
                path,
                reason: format!("format version {} is not supported by this Magpie", info.version),
            });
        }
        Ok(info)
    }

    fn write(&self, dir: &Path) -> Result<()> {
        // Write then rename: a crash leaves either no profile.json or a whole one, never half of one.
        let path = dir.join(PROFILE_FILE);
        let temp = dir.join(format!("{PROFILE_FILE}.tmp"));
        let json = serde_json::to_vec_pretty(self).map_err(|error| Error::ProfileCorrupt {
            path: path.clone(),
            reason: error.to_string(),
        })?;
        fs::write(&temp, json).map_err(|source| io_error("write", &temp, source))?;
        fs::rename(&temp, &path).map_err(|source| io_error("write", &path, source))
    }
}

/// An open profile: identity, history, and where they live.
pub struct Profile {
    dir: PathBuf,
    info: ProfileInfo,
    identity: Identity,
    history: History,
    keystore: Arc<dyn Keystore>,
    /// The history is an older copy than the one last opened (see [`Profile::restored`]).
    restored: bool,
    /// The app lock is on (its entry exists): known at open, kept by [`Profile::set_passphrase`] and
    /// [`Profile::remove_passphrase`]. One process at a time opens a profile, so nothing else changes it meanwhile.
    lock_on: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("dir", &self.dir)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Profile {
    /// Creates a profile in `dir` (created if missing) with a new RSA-3072 identity.
    ///
    /// Blocks for the key generation (0.2–2 s) and the credential store: call it from a worker thread. A caller
    /// that wants to show progress can run [`Identity::generate`] itself and then [`Profile::create_with_identity`].
    pub fn create(dir: &Path, username: Username, keystore: Arc<dyn Keystore>) -> Result<Self> {
        let identity = Identity::generate(username)?;
        Self::create_with_identity(dir, identity, keystore)
    }

    /// Creates a profile in `dir` for an already generated identity. Fails with [`Error::ProfileExists`] if `dir`
    /// holds a profile. On failure nothing is left behind in the credential store.
    pub fn create_with_identity(dir: &Path, identity: Identity, keystore: Arc<dyn Keystore>) -> Result<Self> {
        Self::create_with_cache(dir, identity, keystore, crate::history::CACHE_CAPACITY)
    }

    /// [`Profile::create_with_identity`] with the history's page cache bound chosen (a restore writes the whole
    /// history at once and gains from a larger one).
    pub(crate) fn create_with_cache(
        dir: &Path,
        identity: Identity,
        keystore: Arc<dyn Keystore>,
        cache_capacity: u64,
    ) -> Result<Self> {
        if dir.join(PROFILE_FILE).exists() {
            return Err(Error::ProfileExists(dir.to_owned()));
        }
        create_private_dir(dir)?;
        let info = ProfileInfo {
            version: FORMAT_VERSION,
            profile_id: Uuid::new_v4(),
            username: identity.username().clone(),
            relay_url: None,
            created_at: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        };
        let created = Self::store_and_open(dir, &info, &identity, keystore.as_ref(), cache_capacity);
        match created {
            Ok(history) => {
                tracing::info!(profile = %info.profile_id, username = %info.username, "profile created");
                Ok(Self {
                    dir: dir.to_owned(),
                    info,
                    identity,
                    history,
                    keystore,
                    restored: false,
                    lock_on: false.into(),
                })
            }
            Err(error) => {
                // Best effort: a half-made profile must not leave keys behind.
                let _ = keystore.delete(&identity_account(info.profile_id));
                let _ = keystore.delete(&history_account(info.profile_id));
                let _ = keystore.delete(&generation_account(info.profile_id));
                let _ = keystore.delete(&lock_account(info.profile_id));
                let _ = fs::remove_dir_all(dir.join(HISTORY_DIR));
                Err(error)
            }
        }
    }

    fn store_and_open(
        dir: &Path,
        info: &ProfileInfo,
        identity: &Identity,
        keystore: &dyn Keystore,
        cache_capacity: u64,
    ) -> Result<History> {
        let history_key = HistoryKey::generate()?;
        keystore.store(
            &identity_account(info.profile_id),
            identity.to_pkcs8_der()?.expose_secret(),
        )?;
        keystore.store(&history_account(info.profile_id), history_key.expose())?;
        let history = History::open_with_cache(&dir.join(HISTORY_DIR), &history_key, cache_capacity)?;
        // profile.json last: its presence means the profile is complete.
        info.write(dir)?;
        Ok(history)
    }

    /// Opens the profile in `dir`. A key missing from the credential store is [`Error::ProfileKeyMissing`]; a
    /// profile locked with a passphrase is [`Error::ProfileLocked`] (see [`Profile::unlock`]).
    pub fn open(dir: &Path, keystore: Arc<dyn Keystore>) -> Result<Self> {
        Self::open_with(dir, keystore, None)
    }

    /// Opens the profile in `dir` with its passphrase (one without a lock opens as with [`Profile::open`]). A wrong
    /// one is [`Error::WrongPassphrase`]; after a few, tries wait ([`Error::UnlockWait`]). Blocks for scrypt.
    pub fn unlock(dir: &Path, keystore: Arc<dyn Keystore>, passphrase: &str) -> Result<Self> {
        Self::open_with(dir, keystore, Some(passphrase))
    }

    /// Whether the profile in `dir` is locked with a passphrase (it then opens with [`Profile::unlock`] only).
    pub fn is_locked(dir: &Path, keystore: &dyn Keystore) -> Result<bool> {
        let info = ProfileInfo::read(dir)?;
        Ok(keystore.load(&lock_account(info.profile_id))?.is_some())
    }

    fn open_with(dir: &Path, keystore: Arc<dyn Keystore>, passphrase: Option<&str>) -> Result<Self> {
        let info = ProfileInfo::read(dir)?;
        let id = info.profile_id;
        let lock = match keystore.load(&lock_account(id))? {
            None => None,
            Some(_) => {
                let passphrase = passphrase.ok_or(Error::ProfileLocked)?;
                Some(lock::open_lock(dir, keystore.as_ref(), id, passphrase)?)
            }
        };
        let keys = KeyEntries {
            keystore: keystore.as_ref(),
            profile_id: id,
            lock: lock.as_ref(),
        };
        let identity_der = keys.load("identity key", identity_account(id))?;
        let identity = Identity::from_pkcs8_der(info.username.clone(), identity_der.expose())?;
        let key_bytes = keys.load("history key", history_account(id))?;
        let history = History::open(&dir.join(HISTORY_DIR), &HistoryKey::from_slice(key_bytes.expose())?)?;
        let restored = count_open(&history, keystore.as_ref(), info.profile_id)?;
        tracing::debug!(profile = %info.profile_id, username = %info.username, restored, "profile opened");
        Ok(Self {
            dir: dir.to_owned(),
            info,
            identity,
            history,
            keystore,
            restored,
            lock_on: lock.is_some().into(),
        })
    }

    /// Whether this profile's history is an older copy than the one opened last (put back from a backup or a
    /// virtual machine's snapshot): its sessions may be behind counters the newer copy already sealed with, so
    /// the engine must not seal with them again (see `Client::open`).
    pub fn restored(&self) -> bool {
        self.restored
    }

    /// Deletes this profile: its credential-store entries, then its files and directory.
    pub fn delete(self) -> Result<()> {
        let Self {
            dir, keystore, history, ..
        } = self;
        history.flush()?;
        drop(history);
        Self::remove(&dir, keystore.as_ref())
    }

    /// Deletes the profile in `dir` without opening it (for one whose keys are already gone). Only Magpie's own
    /// files are removed; the directory itself goes if nothing else is left in it.
    pub fn remove(dir: &Path, keystore: &dyn Keystore) -> Result<()> {
        let info = ProfileInfo::read(dir)?;
        // Credentials first: if the store refuses, the files stay and the user can retry.
        keystore.delete(&identity_account(info.profile_id))?;
        keystore.delete(&history_account(info.profile_id))?;
        keystore.delete(&generation_account(info.profile_id))?;
        keystore.delete(&lock_account(info.profile_id))?;
        let _ = fs::remove_file(dir.join(lock::ATTEMPTS_FILE));
        let history = dir.join(HISTORY_DIR);
        match fs::remove_dir_all(&history) {
            Err(error) if error.kind() != ErrorKind::NotFound => return Err(io_error("remove", &history, error)),
            _ => {}
        }
        let file = dir.join(PROFILE_FILE);
        fs::remove_file(&file).map_err(|source| io_error("remove", &file, source))?;
        if let Err(error) = fs::remove_dir(dir) {
            tracing::warn!(dir = %dir.display(), %error, "profile deleted; its directory holds other files and stays");
        }
        tracing::info!(profile = %info.profile_id, "profile deleted");
        Ok(())
    }

    /// Records the relay this profile registered with.
    pub fn set_relay_url(&mut self, relay_url: Option<String>) -> Result<()> {
        let mut info = self.info.clone();
        info.relay_url = relay_url;
        info.write(&self.dir)?;
        self.info = info;
        Ok(())
    }

    /// The profile's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What `profile.json` says.
    pub fn info(&self) -> &ProfileInfo {
        &self.info
    }

    /// The id naming its credential-store entries.
    pub fn id(&self) -> Uuid {
        self.info.profile_id
    }

    /// Whose profile it is.
    pub fn username(&self) -> &Username {
        &self.info.username
    }

    /// The identity (private key in memory).
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The encrypted history.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The credential store it was opened with.
    pub fn keystore(&self) -> &Arc<dyn Keystore> {
        &self.keystore
    }
}

/// Counts this open in the history and, after that is durable, in the credential store; `true` when the history's
/// count was behind the store's (an older copy of the history), whose sessions are then set aside first. A crash
/// between the two writes leaves the history ahead, which is not taken for a restore.
fn count_open(history: &History, keystore: &dyn Keystore, profile_id: Uuid) -> Result<bool> {
    let account = generation_account(profile_id);
    let stored = match keystore.load(&account)? {
        Some(bytes) => {
            let bytes: [u8; 8] = bytes
                .expose()
                .try_into()
                .map_err(|_| Error::CredentialStore(format!("the entry {account} is malformed")))?;
            u64::from_be_bytes(bytes)
        }
        None => 0,
    };
    let local = history.generation()?;
    let restored = local < stored;
    if restored {
        // Before the count moves on: until it has, every open sets them aside again.
        let set_aside = history.set_sessions_aside()?;
        tracing::warn!(%profile_id, local, stored, set_aside, "an older copy of this history was opened: new handshakes are due");
    }
    let next = local.max(stored).saturating_add(1);
    history.set_generation(next)?;
    keystore.store(&account, &next.to_be_bytes())?;
    Ok(restored)
}

fn load_required(keystore: &dyn Keystore, what: &'static str, account: String) -> Result<SecretBytes> {
    keystore
        .load(&account)?
        .ok_or(Error::ProfileKeyMissing { what, account })
}

/// A profile's key entries, read through its lock when it has one.
struct KeyEntries<'a> {
    keystore: &'a dyn Keystore,
    profile_id: Uuid,
    lock: Option<&'a WrappingKey>,
}

impl KeyEntries<'_> {
    /// The key in entry `account`. One found raw while the lock is on (a crash while the lock was set or removed)
    /// is wrapped now.
    fn load(&self, what: &'static str, account: String) -> Result<SecretBytes> {
        let value = load_required(self.keystore, what, account.clone())?;
        match (self.lock, is_wrapped(value.expose())) {
            (Some(lock), true) => lock.unwrap(&account, value.expose()),
            (Some(lock), false) => {
                self.keystore.store(&account, &lock.wrap(&account, value.expose())?)?;
                Ok(value)
            }
            (None, true) => Err(Error::ProfileKeyMissing {
                what: "lock",
                account: lock_account(self.profile_id),
            }),
            (None, false) => Ok(value),
        }
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| io_error("create", dir, source))
}

fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::ProfileIo {
        action,
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_lock;

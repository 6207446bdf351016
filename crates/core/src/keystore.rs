//! Where private keys live: the platform credential store (Keychain, Credential Manager, Secret Service) through
//! `keyring`, behind a trait so code above it can be unit-tested with [`MemoryKeystore`].
//!
//! Every entry is stored under the service [`SERVICE`] with an account name that says whose and what it is,
//! e.g. `<profile-id>:identity-key` ([`crate::profile`] lists the entries a profile creates). Values are raw
//! bytes (`set_secret`): PKCS#8 DER for a private key, since Windows' credential blobs are limited to 2,560 bytes
//! and PEM would waste a third of that.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The service name under which Magpie's entries live in the credential store.
pub const SERVICE: &str = "app.magpie.desktop";

/// An account name that is never written: reading it tells whether the store answers.
const PROBE_ACCOUNT: &str = "magpie-probe";

/// Secret bytes read from a store: wiped from memory when dropped, never printed.
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    pub(crate) fn new(bytes: Zeroizing<Vec<u8>>) -> Self {
        Self(bytes)
    }

    /// The bytes, for handing straight to the code that needs them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBytes(<redacted>)")
    }
}

/// A place to keep secrets by account name.
pub trait Keystore: Send + Sync + std::fmt::Debug {
    /// The secret under `account`, or `None` if there is no such entry.
    fn load(&self, account: &str) -> Result<Option<SecretBytes>>;
    /// Stores `secret` under `account`, replacing what was there.
    fn store(&self, account: &str, secret: &[u8]) -> Result<()>;
    /// Removes the entry; `false` if there was none.
    fn delete(&self, account: &str) -> Result<bool>;
}

/// The platform credential store. Its calls block (D-Bus, Keychain, Credential Manager): keep them off async workers.
#[derive(Debug, Clone)]
pub struct PlatformKeystore {
    service: String,
}

impl PlatformKeystore {
    /// Magpie's entries, under [`SERVICE`].
    pub fn new() -> Self {
        Self::with_service(SERVICE)
    }

    /// Entries under another service name (tests use one of their own).
    pub fn with_service(service: impl Into<String>) -> Self {
        Self {
            service: service.into(),
        }
    }

    fn entry(&self, account: &str) -> Result<keyring::Entry> {
        keyring::Entry::new(&self.service, account).map_err(|error| from_keyring(&error))
    }
}

impl Default for PlatformKeystore {
    fn default() -> Self {
        Self::new()
    }
}

impl Keystore for PlatformKeystore {
    fn load(&self, account: &str) -> Result<Option<SecretBytes>> {
        match self.entry(account)?.get_secret() {
            Ok(bytes) => Ok(Some(SecretBytes(Zeroizing::new(bytes)))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(error) => Err(from_keyring(&error)),
        }
    }

    fn store(&self, account: &str, secret: &[u8]) -> Result<()> {
        self.entry(account)?
            .set_secret(secret)
            .map_err(|error| from_keyring(&error))?;
        tracing::debug!(service = %self.service, account, "secret stored");
        Ok(())
    }

    fn delete(&self, account: &str) -> Result<bool> {
        match self.entry(account)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(error) => Err(from_keyring(&error)),
        }
    }
}

/// An in-memory store for unit tests of the code above the keystore. Never a stand-in for testing the real one.
#[derive(Debug, Default)]
pub struct MemoryKeystore {
    entries: Mutex<HashMap<String, Zeroizing<Vec<u8>>>>,
}

impl MemoryKeystore {
    /// Whether it holds no entry (a test's check that nothing was left behind).
    pub fn is_empty(&self) -> bool {
        self.entries().is_empty()
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Zeroizing<Vec<u8>>>> {
        // A panic elsewhere while holding the lock cannot leave a HashMap half-written: keep going.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Keystore for MemoryKeystore {
    fn load(&self, account: &str) -> Result<Option<SecretBytes>> {
        Ok(self.entries().get(account).map(|bytes| SecretBytes(bytes.clone())))
    }

    fn store(&self, account: &str, secret: &[u8]) -> Result<()> {
        self.entries()
            .insert(account.to_owned(), Zeroizing::new(secret.to_vec()));
        Ok(())
    }

    fn delete(&self, account: &str) -> Result<bool> {
        Ok(self.entries().remove(account).is_some())
    }
}

/// What the credential store said when asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialStoreStatus {
    /// A person-readable name of the platform store this build talks to.
    pub backend: String,
    /// Whether the store answered a read.
    pub available: bool,
    /// Why it is not available, in words a person understands.
    pub problem: Option<String>,
}

/// The platform credential store compiled into this build.
pub fn backend_name() -> &'static str {
    if cfg!(target_os = "linux") {
        "Secret Service (GNOME Keyring, KWallet or KeePassXC)"
    } else if cfg!(target_os = "macos") {
        "macOS Keychain"
    } else if cfg!(target_os = "windows") {
        "Windows Credential Manager"
    } else {
        "unsupported platform"
    }
}

/// Asks the credential store for an entry that does not exist; "no such entry" proves it is there and unlocked.
/// Blocking, like every [`PlatformKeystore`] call.
pub fn probe() -> CredentialStoreStatus {
    let problem = PlatformKeystore::new()
        .load(PROBE_ACCOUNT)
        .err()
        .map(|error| error.to_string());
    if let Some(problem) = &problem {
        tracing::warn!(backend = backend_name(), %problem, "credential store unavailable");
    }
    CredentialStoreStatus {
        backend: backend_name().to_owned(),
        available: problem.is_none(),
        problem,
    }
}

fn from_keyring(error: &keyring::Error) -> Error {
    match error {
        keyring::Error::NoStorageAccess(_) if cfg!(target_os = "linux") => Error::CredentialStoreLocked(
            "The keyring is locked or refused access. Unlock it (GNOME Keyring, KWallet or KeePassXC) and try again."
                .to_owned(),
        ),
        keyring::Error::PlatformFailure(_) if cfg!(target_os = "linux") => Error::CredentialStoreUnavailable(
            "No keyring service is running. Install and start gnome-keyring or KeePassXC (with its Secret Service \
             integration), then restart Magpie."
                .to_owned(),
        ),
        keyring::Error::NoStorageAccess(detail) => {
            Error::CredentialStoreLocked(format!("{} refused access: {detail}", backend_name()))
        }
        keyring::Error::PlatformFailure(detail) => {
            Error::CredentialStoreUnavailable(format!("{} did not answer: {detail}", backend_name()))
        }
        other => Error::CredentialStore(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_keystore_round_trips_and_deletes() {
        let store = MemoryKeystore::default();
        assert!(store.load("a").unwrap().is_none());
        store.store("a", b"secret-one").unwrap();
        store.store("a", b"secret-two").unwrap();
        assert_eq!(store.load("a").unwrap().unwrap().expose(), b"secret-two");
        assert!(store.delete("a").unwrap());
        assert!(!store.delete("a").unwrap());
        assert!(store.load("a").unwrap().is_none());
    }

    #[test]
    fn secret_bytes_debug_leaks_nothing() {
        let secret = SecretBytes(Zeroizing::new(b"hunter2".to_vec()));
        let printed = format!("{secret:?} {secret:#?}");
        assert!(!printed.contains("hunter2") && !printed.contains("104"), "{printed}");
        assert!(printed.contains("<redacted>"));
    }
}

//! The platform credential store: which one this build uses, and whether it answers.

use serde::Serialize;

/// The service name under which Magpie's entries live in the credential store.
pub const SERVICE: &str = "app.magpie.desktop";

/// An account name that is never written: reading it tells whether the store answers.
const PROBE_ACCOUNT: &str = "magpie-probe";

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
/// Blocking: it talks to D-Bus, Keychain or Credential Manager. Call it off the UI thread.
pub fn probe() -> CredentialStoreStatus {
    let outcome = keyring::Entry::new(SERVICE, PROBE_ACCOUNT).and_then(|entry| entry.get_password());
    let problem = match outcome {
        Ok(_) | Err(keyring::Error::NoEntry) => None,
        Err(error) => Some(explain(&error)),
    };
    if let Some(problem) = &problem {
        tracing::warn!(backend = backend_name(), %problem, "credential store unavailable");
    }
    CredentialStoreStatus {
        backend: backend_name().to_owned(),
        available: problem.is_none(),
        problem,
    }
}

fn explain(error: &keyring::Error) -> String {
    match error {
        keyring::Error::NoStorageAccess(_) if cfg!(target_os = "linux") => {
            "The keyring is locked or refused access. Unlock it (GNOME Keyring, KWallet or KeePassXC) and try again."
                .to_owned()
        }
        keyring::Error::PlatformFailure(_) | keyring::Error::NoStorageAccess(_) if cfg!(target_os = "linux") => {
            "No keyring service is running. Install and start gnome-keyring or KeePassXC (with its Secret Service \
             integration), then restart Magpie."
                .to_owned()
        }
        other => format!("The credential store did not answer: {other}"),
    }
}

//! The other person: the `magpie` command line with a profile of its own, registered on the app's embedded relay.
//! Its keys go to the same (private, throw-away) Secret Service as the app's.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;

use magpie_core::keystore::{Keystore, PlatformKeystore};
use tempfile::TempDir;

use crate::binaries::binary;

/// A `magpie --profile DIR` of its own.
pub struct Terminal {
    exe: PathBuf,
    dir: TempDir,
}

impl Terminal {
    /// Builds `magpie` (a no-op when fresh) and gives it an empty profile directory.
    pub async fn new() -> Self {
        let exe = tokio::task::spawn_blocking(|| binary("magpie", "magpie"))
            .await
            .unwrap();
        Self {
            exe,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn profile(&self) -> PathBuf {
        self.dir.path().join("profile")
    }

    /// Runs `magpie --profile DIR ARGS...` to the end (off the async workers: it can take a second).
    pub async fn run(&self, args: &[&str]) -> Output {
        let mut command = Command::new(&self.exe);
        command.arg("--profile").arg(self.profile()).args(args);
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    }

    /// Runs a command that must succeed; its stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args).await;
        assert!(
            output.status.success(),
            "magpie {args:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// `history PEER --json`, one object per message.
    pub async fn history(&self, peer: &str) -> Vec<serde_json::Value> {
        self.ok(&["history", peer, "--json"])
            .await
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

impl Drop for Terminal {
    /// Takes the profile's keys out of the credential store (the private test session is thrown away anyway, but
    /// run outside it this would otherwise leave keys in a developer's keyring).
    fn drop(&mut self) {
        let keystore: Arc<dyn Keystore> = Arc::new(PlatformKeystore::new());
        if self.profile().join(magpie_core::profile::PROFILE_FILE).exists() {
            if let Err(error) = magpie_core::Profile::remove(&self.profile(), keystore.as_ref()) {
                eprintln!("could not remove the terminal's profile keys: {error}");
            }
        }
    }
}

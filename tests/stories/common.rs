//! What every story needs: a real relay on 127.0.0.1:0 (sled on disk), profiles whose keys live in the real
//! credential store (Secret Service in the test's D-Bus session), and waiting for engine events.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use magpie_core::engine::Event;
use magpie_core::keystore::{Keystore, PlatformKeystore};
use magpie_core::{Client, Profile};
use magpie_proto::{Identity, Username};
use magpie_relay::server::{open_state, RunningRelay};
use magpie_relay::Config;
use tempfile::TempDir;
use tokio::sync::broadcast;

/// How long a story waits for one thing to happen before failing.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub fn name(s: &str) -> Username {
    magpie_tests::username(s)
}

/// `n`'s identity (fixed keys for alice, bob and mallory; others made once per test binary).
pub fn identity(n: &str) -> Identity {
    magpie_tests::identity(n)
}

/// `MAGPIE_LOG=debug cargo test ...` shows the engine's and relay's logs for a story.
pub fn logs() {
    if let Ok(filter) = std::env::var("MAGPIE_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// A relay with its sled store in a temporary directory.
pub struct Relay {
    pub running: RunningRelay,
    /// Kept for the relay's lifetime: its data directory.
    _data: TempDir,
}

impl Relay {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir).await
    }

    pub async fn start_in(dir: TempDir) -> Self {
        Self::start_configured(dir, |_| {}).await
    }

    /// A relay whose defaults `configure` changes (smaller limits, say).
    pub async fn start_configured(dir: TempDir, configure: impl FnOnce(&mut Config)) -> Self {
        logs();
        let mut config = Config::with_data_dir(dir.path());
        configure(&mut config);
        let state = open_state(config).unwrap();
        let running = RunningRelay::start(state).await.unwrap();
        Self { running, _data: dir }
    }

    pub fn url(&self) -> String {
        self.running.url("")
    }
}

/// The real credential store under a service name of this test's own, so parallel tests never collide.
pub fn keystore() -> Arc<dyn Keystore> {
    Arc::new(PlatformKeystore::with_service(format!(
        "app.magpie.test.{}",
        uuid::Uuid::new_v4()
    )))
}

/// A profile directory that outlives the client (to reopen it, or to grep it).
pub struct Person {
    pub client: Client,
    pub dir: TempDir,
    pub keystore: Arc<dyn Keystore>,
    _keys: ForgetKeys,
}

/// Deletes a profile's credential-store entries when the test is done (run outside the private test session,
/// the tests would otherwise leave keys in the developer's own keyring).
pub struct ForgetKeys(Arc<dyn Keystore>, uuid::Uuid);

impl ForgetKeys {
    pub fn new(keystore: Arc<dyn Keystore>, profile_id: uuid::Uuid) -> Self {
        Self(keystore, profile_id)
    }
}

impl Drop for ForgetKeys {
    fn drop(&mut self) {
        let _ = self.0.delete(&magpie_core::profile::identity_account(self.1));
        let _ = self.0.delete(&magpie_core::profile::history_account(self.1));
    }
}

impl Person {
    /// Creates a profile for `n` with the real credential store and registers it with `relay`.
    pub async fn register(n: &str, relay: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keystore = keystore();
        let profile = create_profile(&dir.path().join("profile"), n, keystore.clone()).await;
        let _keys = ForgetKeys(keystore.clone(), profile.id());
        let client = Client::register(profile, relay, None).await.unwrap();
        Self {
            client,
            dir,
            keystore,
            _keys,
        }
    }

    pub fn profile_dir(&self) -> PathBuf {
        self.dir.path().join("profile")
    }

    /// Drops the client and opens the profile again, as after a restart.
    pub async fn reopen(self) -> Self {
        self.reopen_after(|_| {}).await
    }

    /// As [`Person::reopen`], doing `to_files` to the profile's directory while nothing has it open (to copy it,
    /// or put an older copy back).
    pub async fn reopen_after_files(self, to_files: impl FnOnce(&Path)) -> Self {
        self.reopen_with(to_files, |_| {}).await
    }

    /// As [`Person::reopen`], doing `between` to the profile while no client holds it.
    pub async fn reopen_after(self, between: impl FnOnce(&Profile)) -> Self {
        self.reopen_with(|_| {}, between).await
    }

    async fn reopen_with(self, to_files: impl FnOnce(&Path), between: impl FnOnce(&Profile)) -> Self {
        let Person {
            client,
            dir,
            keystore,
            _keys,
        } = self;
        let profile = client
            .into_profile(std::time::Duration::from_secs(10))
            .await
            .expect("no task holds the client");
        drop(profile);
        let path = dir.path().join("profile");
        to_files(&path);
        let keys = keystore.clone();
        let profile = tokio::task::spawn_blocking(move || Profile::open(&path, keys))
            .await
            .unwrap()
            .unwrap();
        between(&profile);
        Self {
            client: Client::open(profile).unwrap(),
            dir,
            keystore,
            _keys,
        }
    }
}

/// Copies the directory `from` (files and folders) to `to`, which must not exist yet.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

pub async fn create_profile(dir: &Path, n: &str, keystore: Arc<dyn Keystore>) -> Profile {
    let dir = dir.to_owned();
    let identity = identity(n);
    tokio::task::spawn_blocking(move || Profile::create_with_identity(&dir, identity, keystore))
        .await
        .unwrap()
        .unwrap()
}

/// Runs the client's connection loop in the background (push socket, outbox).
pub fn go_online(client: &Client) -> tokio::task::JoinHandle<()> {
    let client = client.clone();
    tokio::spawn(async move {
        if let Err(e) = client.run().await {
            eprintln!("client stopped: {e}");
        }
    })
}

/// Waits for the first event `pick` accepts, skipping others; fails after [`PATIENCE`].
pub async fn wait_for<T>(events: &mut broadcast::Receiver<Event>, mut pick: impl FnMut(&Event) -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("timed out waiting for an event")
            .expect("event stream closed");
        if let Some(found) = pick(&event) {
            return found;
        }
    }
}

/// Alice and Bob registered with `relay`, both online, with a session: where most stories start. Bob's
/// connection task is kept so a story can take him offline.
pub struct OnlinePair {
    pub alice: Person,
    pub bob: Person,
    pub bob_online: tokio::task::JoinHandle<()>,
}

pub async fn online_pair(relay: &Relay) -> OnlinePair {
    online_pair_at(&relay.url()).await
}

/// [`online_pair`] at the relay at `url` (one a story runs its own way).
pub async fn online_pair_at(url: &str) -> OnlinePair {
    let alice = Person::register("alice", url).await;
    let bob = Person::register("bob", url).await;
    // Alice's connection task runs detached for the rest of the test.
    drop(go_online(&alice.client));
    let bob_online = go_online(&bob.client);
    handshake(&alice.client, &bob.client).await;
    OnlinePair { alice, bob, bob_online }
}

/// Alice asks Bob, Bob accepts, both sides reach a session (both online).
pub async fn handshake(alice: &Client, bob: &Client) {
    let mut alice_events = alice.events();
    let mut bob_events = bob.events();
    alice.request(bob.username()).await.unwrap();
    let from = wait_for(&mut bob_events, |e| match e {
        Event::RequestReceived { peer, .. } => Some(peer.clone()),
        _ => None,
    })
    .await;
    assert_eq!(from, alice.username().as_str());
    accept_from(bob, alice.username()).await.unwrap();
    for events in [&mut alice_events, &mut bob_events] {
        wait_for(events, |e| matches!(e, Event::SessionEstablished { .. }).then_some(())).await;
    }
}

/// Accepts the one request from `peer`, with the key it carries (what the user saw beside it).
pub async fn accept_from(client: &Client, peer: &Username) -> magpie_core::Result<()> {
    let request = client.sole_request_from(peer)?;
    client.accept(request.request_id, &request.fingerprint).await
}

//! The client engine: a registered profile talking to its relay.
//!
//! [`Client`] drives everything a face needs: registration, the seven-step handshake across the relay (state kept
//! in the history between steps), sending through a durable outbox, receiving (decrypt, store, then ack), and one
//! [`Event`] stream. It is cheap to clone; every method takes `&self`.
//!
//! Ordering rules that make "nothing lost, nothing doubled" hold:
//! - a sent message is written to history (state "sending") together with the advanced ratchet and its envelope in
//!   the outbox, in one atomic write, before anything goes out; the outbox retries until the relay's 202;
//! - an incoming envelope is decrypted and written to history before it is acknowledged to the relay; a second
//!   copy (the relay or we crashed before the ack) fails the ratchet's replay check or the message-id index and is
//!   acknowledged without effect.

mod chats;
mod discard;
mod events;
mod export;
mod files;
mod handshake;
mod handshake_state;
mod handshake_worker;
mod inbox;
mod outbox;
mod rekey;
mod replays;
mod requests;
mod run;
mod search;
mod trust;
mod waiting;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use magpie_proto::{Certificate, Credential, Fingerprint, Identity, Session, TrustAnchor, Username};
use tokio::sync::{broadcast, Notify};

pub use events::{
    ConnectionState, Discard, Event, FileView, HandshakeData, HandshakeStep, MessageView, Refusal, ThumbnailView,
};
pub use export::{utc_minute, ExportSummary};
pub use files::CANCELLED;
pub use handshake_state::HandshakeState;
pub use outbox::Flushed;
pub use rekey::REKEY_RETRY_AFTER;
pub use requests::{
    RequestView, AUTO_ACCEPTS_PER_SEC, AUTO_ACCEPT_BURST, MAX_INCOMING_REQUESTS, MAX_REQUESTS_PER_PEER,
};
pub use run::Synced;
pub use search::{ChatResults, Found, SNIPPET_CHARS};
pub use trust::SafetyCheck;

use crate::error::{Error, Result};
use crate::history::{Contact, Entry, RegistrationRecord};
use crate::lock_order::{Guard, Rank, Ranked};
use crate::profile::Profile;
use crate::relay::RelayClient;
use crate::store::prelude::*;
use crate::store::MemoryHome;

/// Events buffered for a slow subscriber before it starts missing some (it can reload from history).
pub const EVENT_BUFFER: usize = 4096;

/// A registered profile connected (or connecting) to its relay. Lives in a [`Profile`] on disk; the engine's unit
/// tests run one in a [`crate::store::MemoryHome`].
#[derive(Debug)]
pub struct Client<H: Home = Profile> {
    inner: Arc<Inner<H>>,
}

impl<H: Home> Clone for Client<H> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<H> {
    home: H,
    credential: Credential,
    trust: TrustAnchor,
    relay: RelayClient,
    events: broadcast::Sender<Event>,
    /// Live sessions by peer; the history holds the same state, written in the same step.
    sessions: Ranked<HashMap<Username, Session>>,
    /// Serializes handshake steps (they read, advance and store one state).
    handshakes: tokio::sync::Mutex<()>,
    outbox_wake: Notify,
    /// A file transfer was added (see `files.rs`).
    transfers_wake: Notify,
    /// Held by the transfer under way: one at a time.
    transfers_running: tokio::sync::Mutex<()>,
    /// Files cancelled, and files sealed by this run (see `files/`).
    file_flags: Ranked<files::FileFlags>,
    /// Asks the connection to read the mailbox again (envelopes were parked waiting for a session).
    resync: Notify,
    /// Envelopes were left in the mailbox for later since the last re-read: a new session reads it again.
    parked: std::sync::atomic::AtomicBool,
    outbox_running: tokio::sync::Mutex<()>,
    /// The open socket's writer, while connected: the outbox pipelines envelopes through it, and acks go out on it.
    socket: Ranked<Option<tokio::sync::mpsc::UnboundedSender<crate::relay::Outgoing>>>,
    /// The last outbox item handed to the socket: later passes read only what came after it.
    pipelined_up_to: Ranked<Option<crate::history::OutboxKey>>,
    /// Peers with a re-key handshake under way from this process, and when it started.
    rekeying: Ranked<HashMap<Username, std::time::Instant>>,
    /// How long a re-key request may go unanswered, in ms (see `rekey.rs`).
    rekey_retry_ms: std::sync::atomic::AtomicU64,
    /// Envelopes sent on the socket and not yet answered, by envelope id.
    in_flight: Ranked<HashMap<uuid::Uuid, outbox::InFlight>>,
    /// Chains the directory gave [`Client::check_key`] lately: the answer to the request that followed needs no
    /// second lookup.
    recent_chains: Ranked<HashMap<Username, (std::time::Instant, Vec<magpie_proto::Certificate>)>>,
    /// The second each chat's last activity was last stored at (see `Client::note_activity`).
    activity_noted: Ranked<HashMap<Username, u64>>,
    /// Which envelope each recent message came in (see `replays.rs`).
    recently_opened: Ranked<replays::RecentlyOpened>,
    /// Which peers have texts waiting for a session (see `waiting.rs`); also the order of texts to one peer.
    waiting: Ranked<HashMap<Username, bool>>,
    /// Re-keys each contact may still have accepted without asking (see `requests.rs`).
    auto_accepts: Ranked<requests::AutoAccepts>,
}

impl<H: Home> std::fmt::Debug for Inner<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("home", &self.home)
            .field("relay", &self.relay)
            .finish_non_exhaustive()
    }
}

impl Client<Profile> {
    /// Registers the profile's name with the relay at `relay_url` (CSR → certificate), pins the relay's CA and
    /// returns the client. `expected_ca`, when given (the fingerprint the user confirmed, like an SSH host key),
    /// must match the CA the relay presents.
    pub async fn register(mut profile: Profile, relay_url: &str, expected_ca: Option<&Fingerprint>) -> Result<Self> {
        if profile.history().registration()?.is_some() {
            return Self::open(profile);
        }
        let relay = RelayClient::new(relay_url)?;
        let ca = relay.ca().await?;
        let ca_fingerprint = TrustAnchor::new(ca.clone())?.fingerprint()?;
        if let Some(expected) = expected_ca {
            if expected != &ca_fingerprint {
                return Err(Error::RelayCaChanged {
                    pinned: expected.to_hex(),
                    presented: ca_fingerprint.to_hex(),
                });
            }
        }
        let registration = relay.register(profile.identity()).await?;
        if registration.ca.to_der()? != ca.to_der()? {
            return Err(Error::RelayProtocol("registration answered with another CA".into()));
        }
        let record = RegistrationRecord {
            relay_url: relay.url().to_owned(),
            ca_pem: pem_string(&registration.ca)?,
            certificate_pem: pem_string(&registration.certificate)?,
        };
        // The certificate must be for our key and chain to the CA before anything is stored.
        let credential = Credential::new(profile.identity().clone(), registration.certificate)?;
        let trust = TrustAnchor::new(registration.ca)?;
        profile.history().set_registration(&record)?;
        profile.set_relay_url(Some(record.relay_url.clone()))?;
        Ok(Self::assemble(profile, credential, trust, relay))
    }

    /// A client for a profile that registered before.
    pub fn open(profile: Profile) -> Result<Self> {
        Self::open_at(profile, None)
    }

    /// As [`Client::open`], reaching the relay at `relay_url` instead of the address it registered at (a relay
    /// embedded in the app may listen on another port after a restart). The pinned CA is checked as always.
    pub fn open_at(profile: Profile, relay_url: Option<&str>) -> Result<Self> {
        let record = profile.history().registration()?.ok_or(Error::NotRegistered)?;
        let certificate = Certificate::from_pem(record.certificate_pem.as_bytes())?;
        let credential = Credential::new(profile.identity().clone(), certificate)?;
        let trust = TrustAnchor::new(Certificate::from_pem(record.ca_pem.as_bytes())?)?;
        let relay = RelayClient::new(relay_url.unwrap_or(&record.relay_url))?;
        Ok(Self::assemble(profile, credential, trust, relay))
    }

    /// Gives the profile back once this is the last handle on the client, so its history can be closed and
    /// opened again (a history marked for rewriting is rewritten then). The tasks of a dropped [`Client::run`]
    /// let go at their next await; when handles are still held after `patience`, the client comes back.
    pub async fn into_profile(self, patience: std::time::Duration) -> std::result::Result<Profile, Client> {
        let deadline = tokio::time::Instant::now() + patience;
        let mut inner = self.inner;
        loop {
            inner = match Arc::try_unwrap(inner) {
                Ok(inner) => return Ok(inner.home),
                Err(shared) if tokio::time::Instant::now() >= deadline => return Err(Client { inner: shared }),
                Err(shared) => shared,
            };
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// The profile.
    pub fn profile(&self) -> &Profile {
        &self.inner.home
    }
}

impl Client<MemoryHome> {
    /// A client whose state lives in memory (the engine's unit tests): `identity` with the certificate `ca`
    /// issued it, talking to the relay at `relay_url` (never contacted unless asked).
    pub fn in_memory(identity: Identity, certificate: Certificate, ca: Certificate, relay_url: &str) -> Result<Self> {
        let home = MemoryHome::new(identity.username().clone());
        let credential = Credential::new(identity, certificate)?;
        let trust = TrustAnchor::new(ca)?;
        Ok(Self::assemble(home, credential, trust, RelayClient::new(relay_url)?))
    }
}

impl<H: Home> Client<H> {
    fn assemble(home: H, credential: Credential, trust: TrustAnchor, relay: RelayClient) -> Self {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Self {
            inner: Arc::new(Inner {
                home,
                credential,
                trust,
                relay,
                events,
                sessions: Ranked::new(Rank::Sessions, HashMap::new()),
                handshakes: tokio::sync::Mutex::new(()),
                outbox_wake: Notify::new(),
                transfers_wake: Notify::new(),
                transfers_running: tokio::sync::Mutex::new(()),
                file_flags: Ranked::with_default(Rank::FileFlags),
                resync: Notify::new(),
                parked: std::sync::atomic::AtomicBool::new(false),
                outbox_running: tokio::sync::Mutex::new(()),
                socket: Ranked::new(Rank::Socket, None),
                pipelined_up_to: Ranked::new(Rank::PipelinedUpTo, None),
                rekeying: Ranked::new(Rank::Rekeying, HashMap::new()),
                rekey_retry_ms: std::sync::atomic::AtomicU64::new(
                    u64::try_from(rekey::REKEY_RETRY_AFTER.as_millis()).unwrap_or(u64::MAX),
                ),
                in_flight: Ranked::new(Rank::InFlight, HashMap::new()),
                recent_chains: Ranked::new(Rank::RecentChains, HashMap::new()),
                activity_noted: Ranked::new(Rank::ActivityNoted, HashMap::new()),
                recently_opened: Ranked::with_default(Rank::RecentlyOpened),
                auto_accepts: Ranked::with_default(Rank::AutoAccepts),
                waiting: Ranked::new(Rank::Waiting, HashMap::new()),
            }),
        }
    }

    /// A new subscription to the event stream (events from now on).
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Our name.
    pub fn username(&self) -> &Username {
        self.inner.home.username()
    }

    /// Our certificate, issued by the relay's CA.
    pub fn certificate(&self) -> &Certificate {
        self.inner.credential.certificate()
    }

    /// Our key's SPKI fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.inner.credential.fingerprint()
    }

    /// The pinned relay CA's fingerprint.
    pub fn relay_ca_fingerprint(&self) -> Result<Fingerprint> {
        Ok(self.inner.trust.fingerprint()?)
    }

    /// The relay's address.
    pub fn relay_url(&self) -> &str {
        self.inner.relay.url()
    }

    /// What the engine keeps (the profile's history, on disk).
    pub fn store(&self) -> &H::Store {
        self.inner.home.store()
    }

    fn emit(&self, event: Event) {
        // No subscriber is fine: history holds the truth.
        let _ = self.inner.events.send(event);
    }

    fn sessions(&self) -> Result<Guard<'_, HashMap<Username, Session>>> {
        self.inner.sessions.lock().map_err(|_| Error::Poisoned)
    }

    /// Every contact (chats), most recently active first.
    pub fn contacts(&self) -> Result<Vec<Contact>> {
        let mut contacts = self.store().contacts()?;
        contacts.sort_by_key(|c| std::cmp::Reverse(c.last_activity));
        Ok(contacts)
    }

    /// The contact record of `peer`, if we have one.
    pub fn contact(&self, peer: &Username) -> Result<Option<Contact>> {
        self.store().contact(peer)
    }

    /// The last `n` messages with `peer`, oldest first.
    pub fn last_messages(&self, peer: &Username, n: usize) -> Result<Vec<Entry>> {
        self.store().last_messages(peer, n)
    }

    /// Whether a session with `peer` is established.
    pub fn has_session(&self, peer: &Username) -> Result<bool> {
        Ok(self.with_session(peer, |_| Ok(()))?.is_some())
    }

    /// Runs `f` on the session with `peer` (loaded from history on first use); `None` if there is none.
    fn with_session<T>(&self, peer: &Username, f: impl FnOnce(&mut Session) -> Result<T>) -> Result<Option<T>> {
        let mut sessions = self.sessions()?;
        if !sessions.contains_key(peer) {
            match self.store().load_session(peer)? {
                Some(session) => {
                    sessions.insert(peer.clone(), session);
                }
                None => return Ok(None),
            }
        }
        match sessions.get_mut(peer) {
            Some(session) => f(session).map(Some),
            None => Ok(None),
        }
    }
}

fn pem_string(cert: &Certificate) -> Result<String> {
    String::from_utf8(cert.to_pem()?).map_err(|e| Error::RelayProtocol(e.to_string()))
}

/// Now, Unix seconds.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

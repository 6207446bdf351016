//! A relay that lies: its directory swaps Bob's certificate for another key, validly signed by its own CA.
//! Alice's client must notice the key change and refuse to send.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use magpie_core::engine::Event;
use magpie_core::Error;
use magpie_proto::{Identity, Username};
use magpie_relay::server::RunningRelay;
use magpie_relay::store::{
    ChallengeRecord, Inserted, NewEnvelope, SledStore, Store, StoreResult, StoredEnvelope, TokenRecord, UserRecord,
};
use magpie_relay::{AppState, Config};
use uuid::Uuid;

use crate::common::{go_online, handshake, identity, name, wait_for, Person};

/// The real sled store, except that once `swap` is set, looking up `victim` returns `forged`.
#[derive(Debug)]
struct LyingDirectory {
    real: SledStore,
    victim: String,
    forged: String,
    swap: AtomicBool,
}

impl Store for LyingDirectory {
    fn add_user(&self, user: &UserRecord) -> StoreResult<bool> {
        self.real.add_user(user)
    }
    fn user(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        let real = self.real.user(username)?;
        if username == self.victim && self.swap.load(Ordering::SeqCst) {
            return Ok(real.map(|r| UserRecord {
                cert_pem: self.forged.clone(),
                ..r
            }));
        }
        Ok(real)
    }
    fn has_user(&self, username: &str) -> StoreResult<bool> {
        self.real.has_user(username)
    }
    fn put_challenge(&self, nonce: &[u8], challenge: &ChallengeRecord) -> StoreResult<()> {
        self.real.put_challenge(nonce, challenge)
    }
    fn take_challenge(&self, nonce: &[u8]) -> StoreResult<Option<ChallengeRecord>> {
        self.real.take_challenge(nonce)
    }
    fn put_token(&self, token_hash: &[u8; 32], token: &TokenRecord) -> StoreResult<()> {
        self.real.put_token(token_hash, token)
    }
    fn token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<TokenRecord>> {
        self.real.token(token_hash)
    }
    fn insert_envelope(&self, envelope: NewEnvelope) -> StoreResult<Inserted> {
        self.real.insert_envelope(envelope)
    }
    fn fetch(&self, to: &str, after: u64, limit: usize) -> StoreResult<Vec<StoredEnvelope>> {
        self.real.fetch(to, after, limit)
    }
    fn ack(&self, to: &str, ids: &[Uuid], now: u64) -> StoreResult<usize> {
        self.real.ack(to, ids, now)
    }
    fn purge_expired(&self, now: u64) -> StoreResult<usize> {
        self.real.purge_expired(now)
    }
    fn flush(&self) -> StoreResult<()> {
        self.real.flush()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_swapped_certificate_is_a_key_change_and_blocks_sending() {
    let dir = tempfile::tempdir().unwrap();
    let ca = magpie_relay::ca::load_or_create(dir.path()).unwrap();
    // The operator's CA signs a certificate named "bob" for Mallory's key.
    let impostor =
        Identity::from_pkcs8_der(name("bob"), identity("mallory").to_pkcs8_der().unwrap().expose_secret()).unwrap();
    let forged = ca.authority.issue(&impostor.csr().unwrap(), SystemTime::now()).unwrap();
    let store = Arc::new(LyingDirectory {
        real: SledStore::open(&dir.path().join("store"), Default::default()).unwrap(),
        victim: "bob".into(),
        forged: String::from_utf8(forged.to_pem().unwrap()).unwrap(),
        swap: AtomicBool::new(false),
    });
    let state = AppState::new(store.clone(), ca, Config::with_data_dir(dir.path())).unwrap();
    let relay = RunningRelay::start(state).await.unwrap();

    let alice = Person::register("alice", &relay.url("")).await;
    let bob = Person::register("bob", &relay.url("")).await;
    let _a = go_online(&alice.client);
    let _b = go_online(&bob.client);
    handshake(&alice.client, &bob.client).await;
    let bob_name: Username = name("bob");
    alice.client.send_text(&bob_name, "before the swap").unwrap();

    store.swap.store(true, Ordering::SeqCst);
    let mut events = alice.client.events();
    let changed = alice.client.check_keys().await.unwrap();
    assert_eq!(changed, vec![bob_name.clone()]);
    let (pinned, presented) = wait_for(&mut events, |e| match e {
        Event::KeyChanged {
            peer,
            pinned,
            presented,
        } if peer == "bob" => Some((pinned.clone(), presented.clone())),
        _ => None,
    })
    .await;
    assert_eq!(pinned, bob.client.fingerprint().to_hex());
    assert_eq!(presented, identity("mallory").fingerprint().unwrap().to_hex());

    let refused = alice.client.send_text(&bob_name, "after the swap");
    assert!(
        matches!(refused, Err(Error::KeyChanged(ref p)) if p == "bob"),
        "{refused:?}"
    );
    assert!(matches!(
        alice.client.request(&bob_name).await,
        Err(Error::KeyChanged(_))
    ));
    let contact = alice.client.contact(&bob_name).unwrap().unwrap();
    assert!(contact.key_changed);
    assert_eq!(
        contact.fingerprint,
        bob.client.fingerprint(),
        "the pin is not moved without the user"
    );
    let history = alice.client.last_messages(&bob_name, 10).unwrap();
    assert_eq!(history.len(), 1, "nothing was queued after the change");

    // Comparing safety numbers exposes the impostor: Alice's number is now computed with the presented key.
    let alices = alice.client.safety_number(&bob_name).unwrap();
    let bobs = bob.client.safety_number(&name("alice")).unwrap();
    assert_ne!(alices.digits(), bobs.digits());

    // Accepting the new key anyway (the user's explicit choice) unblocks the chat and starts a fresh handshake.
    let request = alice.client.accept_new_key(&bob_name).await.unwrap();
    assert!(request.is_some());
    let contact = alice.client.contact(&bob_name).unwrap().unwrap();
    assert!(!contact.key_changed);
    assert!(!contact.verified);
    assert_eq!(contact.fingerprint, identity("mallory").fingerprint().unwrap());
    assert!(matches!(
        alice.client.send_text(&bob_name, "x"),
        Err(Error::NoSession(_))
    ));
}

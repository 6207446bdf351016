//! A relay that lies the way its operator could: its CA certifies any key under any name, and it puts envelopes in
//! any mailbox and reads any. The client's policy must keep the pins the user trusted, pin nothing the user did
//! not see, and show what the relay tried. The test names follow issue 23's list (item 1, 2, 3…).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use magpie_core::engine::{Discard, Event};
use magpie_core::Error;
use magpie_proto::{
    AwaitingAccept, Certificate, ChatAccept, ChatRequest, Credential, Envelope, EnvelopeKind, Fingerprint, Identity,
    Initiator, KeyConfirm, SealedMessage, TrustAnchor,
};
use magpie_relay::ca::CaInfo;
use magpie_relay::server::RunningRelay;
use magpie_relay::store::{NewEnvelope, SledStore, Store};
use magpie_relay::{AppState, Config};
use tempfile::TempDir;

use crate::common::{accept_from, identity, name, wait_for, Person};

/// A real relay over HTTP on loopback whose operator also acts behind it, with its own CA and store.
pub(crate) struct Operator {
    running: RunningRelay,
    store: Arc<dyn Store>,
    ca: CaInfo,
    _dir: TempDir,
}

impl Operator {
    pub(crate) async fn start() -> Self {
        crate::common::logs();
        let dir = tempfile::tempdir().unwrap();
        let ca = magpie_relay::ca::load_or_create(dir.path()).unwrap();
        let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir.path().join("store"), Default::default()).unwrap());
        let state = AppState::new(store.clone(), ca.clone(), Config::with_data_dir(dir.path())).unwrap();
        let running = RunningRelay::start(state).await.unwrap();
        Self {
            running,
            store,
            ca,
            _dir: dir,
        }
    }

    pub(crate) fn url(&self) -> String {
        self.running.url("")
    }

    /// `key_owner`'s key under the name `as_name`, certified by the relay's own CA: valid for every client.
    fn forge(&self, as_name: &str, key_owner: &str) -> Credential {
        let der = identity(key_owner).to_pkcs8_der().unwrap();
        let impostor = Identity::from_pkcs8_der(name(as_name), der.expose_secret()).unwrap();
        let certificate = self
            .ca
            .authority
            .issue(&impostor.csr().unwrap(), SystemTime::now())
            .unwrap();
        Credential::new(impostor, certificate).unwrap()
    }

    /// Puts an envelope in `to`'s mailbox, under a new id, as if `from` had sent it; the id.
    fn deliver(&self, from: &str, to: &str, kind: EnvelopeKind, body: &[u8]) -> uuid::Uuid {
        let received_at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let id = uuid::Uuid::new_v4();
        self.store
            .insert_envelope(NewEnvelope {
                id,
                from: from.to_owned(),
                to: to.to_owned(),
                kind,
                body_b64: base64::engine::general_purpose::STANDARD.encode(body),
                received_at,
            })
            .unwrap();
        id
    }

    /// A chat request to `to` in the name `as_name`, signed with `key_owner`'s key; the state to go on with.
    fn forged_request(&self, as_name: &str, key_owner: &str, to: &str) -> AwaitingAccept {
        let credential = self.forge(as_name, key_owner);
        let (state, request) = Initiator::request(&credential, &name(to), SystemTime::now()).unwrap();
        self.deliver(as_name, to, EnvelopeKind::ChatRequest, &request.to_json().unwrap());
        state
    }

    /// Takes the first envelope of `kind` out of `to`'s mailbox (to deliver something else first); its body.
    fn hold_back(&self, to: &str, kind: EnvelopeKind) -> Vec<u8> {
        let held = self
            .store
            .fetch(to, 0, 100_000)
            .unwrap()
            .into_iter()
            .find(|e| e.kind == kind)
            .unwrap();
        self.store.ack(to, &[held.id], held.received_at).unwrap();
        base64::engine::general_purpose::STANDARD.decode(held.body_b64).unwrap()
    }

    /// The bodies of the envelopes of `kind` waiting in `to`'s mailbox.
    pub(crate) fn read(&self, to: &str, kind: EnvelopeKind) -> Vec<Vec<u8>> {
        self.store
            .fetch(to, 0, 100_000)
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == kind)
            .map(|e| base64::engine::general_purpose::STANDARD.decode(e.body_b64).unwrap())
            .collect()
    }
}

fn fingerprint_of(key_owner: &str) -> Fingerprint {
    identity(key_owner).fingerprint().unwrap()
}

/// Alice asks Bob and both reach a session, each step carried by an explicit catch-up (nobody stays online, so
/// what the operator puts in a mailbox is read at a known point).
async fn handshake_by_sync(alice: &Person, bob: &Person) {
    alice.client.request(bob.client.username()).await.unwrap();
    alice.client.flush_outbox().await.unwrap();
    bob.client.sync().await.unwrap();
    accept_from(&bob.client, alice.client.username()).await.unwrap();
    bob.client.flush_outbox().await.unwrap();
    alice.client.sync().await.unwrap(); // accept checked, key transfer posted
    bob.client.sync().await.unwrap(); // session, confirm posted
    alice.client.sync().await.unwrap(); // session
    assert!(alice.client.has_session(bob.client.username()).unwrap());
    assert!(bob.client.has_session(alice.client.username()).unwrap());
}

/// Alice and Bob with a session at a lying relay, Bob's key pinned on Alice's side.
pub(crate) async fn pair_at(operator: &Operator) -> (Person, Person) {
    let alice = Person::register("alice", &operator.url()).await;
    let bob = Person::register("bob", &operator.url()).await;
    handshake_by_sync(&alice, &bob).await;
    (alice, bob)
}

#[tokio::test(flavor = "multi_thread")]
async fn item01_verifying_is_refused_when_the_key_changed_after_the_number_was_shown() {
    let operator = Operator::start().await;
    let (alice, _bob) = pair_at(&operator).await;
    let bob_name = name("bob");
    // The relay presents Mallory's key as Bob's: a key change, and the dialog shows Mallory's number.
    operator.forged_request("bob", "mallory", "alice");
    alice.client.sync().await.unwrap();
    let shown = alice.client.safety_number(&bob_name).unwrap();
    assert_eq!(shown.fingerprint, fingerprint_of("mallory"));
    // While the dialog is open, another key arrives in Bob's name.
    operator.forged_request("bob", "eve", "alice");
    alice.client.sync().await.unwrap();

    let refused = alice.client.mark_verified(&bob_name, &shown.fingerprint).await;
    assert!(matches!(refused, Err(Error::FingerprintMismatch { .. })), "{refused:?}");
    let contact = alice.client.contact(&bob_name).unwrap().unwrap();
    assert_eq!(contact.fingerprint, fingerprint_of("bob"), "nothing was pinned");
    assert!(!contact.verified && contact.key_changed);
    assert_eq!(contact.pending_fingerprint, Some(fingerprint_of("eve")));

    // The number now on screen is Eve's; verifying what is shown pins exactly that.
    let now_shown = alice.client.safety_number(&bob_name).unwrap();
    assert_eq!(now_shown.fingerprint, fingerprint_of("eve"));
    let contact = alice
        .client
        .mark_verified(&bob_name, &now_shown.fingerprint)
        .await
        .unwrap();
    assert_eq!(contact.fingerprint, fingerprint_of("eve"));
    assert!(contact.verified && !contact.key_changed);
}

#[tokio::test(flavor = "multi_thread")]
async fn item01_accepting_a_new_key_is_refused_when_it_is_not_the_key_shown() {
    let operator = Operator::start().await;
    let (alice, bob) = pair_at(&operator).await;
    let bob_name = name("bob");
    // Alice verified Bob's real key.
    let real = alice.client.safety_number(&bob_name).unwrap();
    alice.client.mark_verified(&bob_name, &real.fingerprint).await.unwrap();
    operator.forged_request("bob", "mallory", "alice");
    alice.client.sync().await.unwrap();
    let banner = alice
        .client
        .contact(&bob_name)
        .unwrap()
        .unwrap()
        .pending_fingerprint
        .unwrap();
    operator.forged_request("bob", "eve", "alice");
    alice.client.sync().await.unwrap();

    let refused = alice.client.accept_new_key(&bob_name, &banner).await;
    assert!(matches!(refused, Err(Error::FingerprintMismatch { .. })), "{refused:?}");
    // And a key never presented at all is refused too.
    let refused = alice.client.accept_new_key(&bob_name, &fingerprint_of("alice")).await;
    assert!(matches!(refused, Err(Error::FingerprintMismatch { .. })), "{refused:?}");
    let contact = alice.client.contact(&bob_name).unwrap().unwrap();
    assert_eq!(contact.fingerprint, bob.client.fingerprint());
    assert!(
        contact.verified,
        "the verified pin stays while the user has not decided"
    );
    assert!(
        alice.client.has_session(&bob_name).unwrap(),
        "the session with the pinned key stays"
    );
}

/// Item 2: Bob accepted a first-contact request that the relay forged in Alice's name (nothing was pinned yet, so
/// it looked like any first request); then the real Alice's handshake completes and Bob verifies her. When the
/// relay finishes the forged handshake, Bob must not swap the pin he verified for Mallory's key.
#[tokio::test(flavor = "multi_thread")]
async fn item02_a_session_with_another_key_never_repins_a_verified_contact() {
    let operator = Operator::start().await;
    let alice = Person::register("alice", &operator.url()).await;
    let bob = Person::register("bob", &operator.url()).await;
    let alice_name = name("alice");
    let forged = operator.forged_request("alice", "mallory", "bob");
    bob.client.sync().await.unwrap();
    accept_from(&bob.client, &alice_name).await.unwrap();
    bob.client.flush_outbox().await.unwrap();
    let accept = ChatAccept::from_json(&operator.read("alice", EnvelopeKind::ChatAccept)[0]).unwrap();

    handshake_by_sync(&alice, &bob).await;
    let real = bob.client.safety_number(&alice_name).unwrap();
    assert_eq!(real.fingerprint, fingerprint_of("alice"));
    bob.client.mark_verified(&alice_name, &real.fingerprint).await.unwrap();

    // The operator completes the forged handshake with Bob's accept (and Bob's certificate, from its own store).
    let bob_record = operator.store.user("bob").unwrap().unwrap();
    let bob_chain = [bob_record.cert_pem.as_str(), operator.ca.pem.as_str()]
        .map(|pem| Certificate::from_pem(pem.as_bytes()).unwrap())
        .to_vec();
    let trust = TrustAnchor::new(operator.ca.authority.certificate().clone()).unwrap();
    let (_, transfer) = forged
        .on_accept(&accept, &bob_chain, &trust, None, SystemTime::now())
        .unwrap();
    operator.deliver("alice", "bob", EnvelopeKind::KeyTransfer, &transfer.to_json().unwrap());
    bob.client.sync().await.unwrap();

    let contact = bob.client.contact(&alice_name).unwrap().unwrap();
    assert_eq!(contact.fingerprint, fingerprint_of("alice"), "the verified pin stays");
    assert!(contact.verified);
    assert!(
        bob.client.outgoing_requests().unwrap().is_empty(),
        "the forged handshake is over, not left waiting"
    );
    // Bob's session is still the one with the real Alice: her next text opens with it.
    alice.client.send_text(&name("bob"), "still me").unwrap();
    alice.client.flush_outbox().await.unwrap();
    bob.client.sync().await.unwrap();
    let got = bob.client.last_messages(&alice_name, 1).unwrap();
    assert_eq!(got[0].message.body, "still me");
}

#[tokio::test(flavor = "multi_thread")]
async fn item02_a_stored_request_is_checked_against_the_pin_when_accepted() {
    let operator = Operator::start().await;
    let alice = Person::register("alice", &operator.url()).await;
    let bob = Person::register("bob", &operator.url()).await;
    let alice_name = name("alice");
    // Before Bob knows Alice, a forged request waits; the real Alice's request comes too, and Bob takes hers.
    operator.forged_request("alice", "mallory", "bob");
    alice.client.request(&name("bob")).await.unwrap();
    alice.client.flush_outbox().await.unwrap();
    bob.client.sync().await.unwrap();
    let requests = bob.client.incoming_requests().unwrap();
    assert_eq!(requests.len(), 2);
    assert!(
        requests.iter().all(|r| !r.key_changed),
        "nothing is pinned yet: both look like a first request"
    );
    let hers = requests
        .iter()
        .find(|r| r.fingerprint == fingerprint_of("alice"))
        .unwrap();
    bob.client.accept(hers.request_id, &hers.fingerprint).await.unwrap();
    bob.client.flush_outbox().await.unwrap();
    alice.client.sync().await.unwrap();
    bob.client.sync().await.unwrap();
    alice.client.sync().await.unwrap();
    assert!(bob.client.has_session(&alice_name).unwrap());

    // Now that Alice's key is pinned, the forged request left over is shown as a key change, and accepting it is
    // refused against today's pin (not the one it met when it came).
    let left = bob.client.incoming_requests().unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].fingerprint, fingerprint_of("mallory"));
    assert!(left[0].key_changed, "shown as suspicious");
    let refused = bob.client.accept(left[0].request_id, &left[0].fingerprint).await;
    assert!(matches!(refused, Err(Error::KeyChanged(_))), "{refused:?}");
    let contact = bob.client.contact(&alice_name).unwrap().unwrap();
    assert_eq!(contact.fingerprint, fingerprint_of("alice"));
    assert!(contact.key_changed, "the attempt is shown as a key change");
    assert_eq!(contact.pending_fingerprint, Some(fingerprint_of("mallory")));
}

#[tokio::test(flavor = "multi_thread")]
async fn item02_accept_names_the_request_and_the_key_shown() {
    let operator = Operator::start().await;
    let alice = Person::register("alice", &operator.url()).await;
    let bob = Person::register("bob", &operator.url()).await;
    alice.client.request(&name("bob")).await.unwrap();
    alice.client.flush_outbox().await.unwrap();
    bob.client.sync().await.unwrap();
    let request = bob.client.sole_request_from(&name("alice")).unwrap();
    let refused = bob.client.accept(request.request_id, &fingerprint_of("mallory")).await;
    assert!(matches!(refused, Err(Error::FingerprintMismatch { .. })), "{refused:?}");
    let unknown = bob.client.accept(uuid::Uuid::new_v4(), &request.fingerprint).await;
    assert!(matches!(unknown, Err(Error::RequestGone(_))), "{unknown:?}");
    // Two requests from one name: the caller must choose.
    operator.forged_request("alice", "mallory", "bob");
    bob.client.sync().await.unwrap();
    let several = bob.client.sole_request_from(&name("alice"));
    assert!(
        matches!(several, Err(Error::SeveralRequests { count: 2, .. })),
        "{several:?}"
    );
    bob.client
        .accept(request.request_id, &request.fingerprint)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn item03_a_request_with_a_changed_key_is_kept_and_shown() {
    let operator = Operator::start().await;
    let (alice, bob) = pair_at(&operator).await;
    let mut events = bob.client.events();
    operator.forged_request("alice", "mallory", "bob");
    bob.client.sync().await.unwrap();

    let requests = bob.client.incoming_requests().unwrap();
    assert_eq!(requests.len(), 1, "kept, not dropped");
    assert_eq!(requests[0].fingerprint, fingerprint_of("mallory"));
    assert!(requests[0].key_changed);
    let contact = bob.client.contact(&name("alice")).unwrap().unwrap();
    assert!(contact.key_changed, "the chat shows the key change");
    assert_eq!(contact.fingerprint, alice.client.fingerprint(), "the pin stays");
    assert_eq!(contact.pending_fingerprint, Some(fingerprint_of("mallory")));
    let (key_changed, presented) = wait_for(&mut events, |e| match e {
        Event::RequestReceived { key_changed, .. } => Some((*key_changed, None)),
        Event::KeyChanged { presented, .. } => Some((true, Some(presented.clone()))),
        _ => None,
    })
    .await;
    assert!(key_changed);
    if let Some(presented) = presented {
        assert_eq!(presented, fingerprint_of("mallory").to_hex());
    }
    // Sending waits for the user.
    assert!(matches!(
        bob.client.send_text(&name("alice"), "x"),
        Err(Error::KeyChanged(_))
    ));
}

/// Item 4: what does not verify is discarded, counted on the chat and reported, never shown, and so is a copy of a
/// message the relay makes under a new envelope id; ordinary duplicates from at-least-once delivery stay silent.
#[tokio::test(flavor = "multi_thread")]
async fn item04_forgeries_and_replays_are_counted_on_the_chat_and_duplicates_stay_silent() {
    let operator = Operator::start().await;
    let (alice, bob) = pair_at(&operator).await;
    let (alice_name, bob_name) = (name("alice"), name("bob"));
    let mut bob_events = bob.client.events();

    // A text with one bit flipped ahead of the genuine one (the relay holds the genuine back).
    alice.client.send_text(&bob_name, "genuine").unwrap();
    alice.client.flush_outbox().await.unwrap();
    let genuine = operator.hold_back("bob", EnvelopeKind::Message);
    let mut sealed = SealedMessage::from_json(&genuine).unwrap();
    sealed.ciphertext[3] ^= 0x01;
    operator.deliver("alice", "bob", EnvelopeKind::Message, &sealed.to_json().unwrap());
    let genuine_id = operator.deliver("alice", "bob", EnvelopeKind::Message, &genuine);
    bob.client.sync().await.unwrap();
    // The genuine envelope again, as the relay redelivers what was not acknowledged yet: a duplicate, silent.
    let redelivered = Envelope {
        id: genuine_id,
        from: "alice".into(),
        to: "bob".into(),
        kind: EnvelopeKind::Message,
        body: genuine.clone(),
    };
    bob.client.handle_envelopes(&[redelivered]).await.unwrap();
    assert_eq!(
        bob.client
            .contact(&alice_name)
            .unwrap()
            .unwrap()
            .discarded
            .unwrap()
            .messages,
        1
    );
    // The genuine text under a new envelope id: only the relay makes those, a replay.
    operator.deliver("alice", "bob", EnvelopeKind::Message, &genuine);
    bob.client.sync().await.unwrap();
    let stored = bob.client.last_messages(&alice_name, 10).unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].message.body, "genuine");
    let discarded = bob.client.contact(&alice_name).unwrap().unwrap().discarded.unwrap();
    assert_eq!((discarded.messages, discarded.steps), (2, 0));

    // A key exchange step for a handshake Bob never had.
    let confirm = KeyConfirm {
        v: 1,
        request_id: uuid::Uuid::new_v4(),
        from: "alice".into(),
        to: "bob".into(),
        mac: vec![7; 32],
    };
    operator.deliver("alice", "bob", EnvelopeKind::KeyConfirm, &confirm.to_json().unwrap());
    bob.client.sync().await.unwrap();
    let discarded = bob.client.contact(&alice_name).unwrap().unwrap().discarded.unwrap();
    assert_eq!((discarded.messages, discarded.steps), (2, 1));
    let mut reported = Vec::new();
    while let Ok(event) = bob_events.try_recv() {
        if let Event::Rejected { peer, what, reason } = event {
            reported.push((peer, what, reason.contains("the relay (or the sender) sent it again")));
        }
    }
    assert_eq!(
        reported,
        [
            ("alice".to_owned(), Discard::Message, false),
            ("alice".to_owned(), Discard::Message, true),
            ("alice".to_owned(), Discard::Step, false)
        ],
        "each forgery and the replay reported once, the redelivery not at all"
    );

    // A re-key whose accept the relay swaps for one with a broken signature: the handshake fails, counted on
    // Alice's chat; the genuine accept delivered after that is a step of an ended handshake, silent.
    alice.client.request(&bob_name).await.unwrap();
    alice.client.flush_outbox().await.unwrap();
    bob.client.sync().await.unwrap(); // accepted by itself: Bob's key is the pinned one
    let real = operator.hold_back("alice", EnvelopeKind::ChatAccept);
    let mut accept = ChatAccept::from_json(&real).unwrap();
    accept.signature[5] ^= 0x01;
    operator.deliver("bob", "alice", EnvelopeKind::ChatAccept, &accept.to_json().unwrap());
    let mut alice_events = alice.client.events();
    alice.client.sync().await.unwrap();
    let failed = wait_for(&mut alice_events, |e| match e {
        Event::HandshakeFailed { reason, .. } => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(failed.to_lowercase().contains("signature"), "{failed}");
    operator.deliver("bob", "alice", EnvelopeKind::ChatAccept, &real);
    alice.client.sync().await.unwrap();
    let discarded = alice.client.contact(&bob_name).unwrap().unwrap().discarded.unwrap();
    assert_eq!((discarded.messages, discarded.steps), (0, 1));
    assert!(alice.client.has_session(&bob_name).unwrap(), "the session in use stays");

    // Read and dismissed: the counts start again.
    alice.client.dismiss_discarded(&bob_name).unwrap();
    assert_eq!(alice.client.contact(&bob_name).unwrap().unwrap().discarded, None);
}

/// Item 4 at the command line: a catch-up that discarded a forgery warns on stderr, says so, and exits 0.
#[tokio::test(flavor = "multi_thread")]
async fn item04_the_cli_warns_of_what_it_discarded_and_exits_0() {
    use crate::cli::{magpie, ok};
    let operator = Operator::start().await;
    let url = operator.url();
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    let bob_profile = bob.clone();
    tokio::task::spawn_blocking(move || {
        ok(&alice, &["--relay", &url, "register", "alice"]);
        ok(&bob, &["--relay", &url, "register", "bob"]);
        ok(&alice, &["request", "bob"]);
        ok(&bob, &["accept", "alice"]);
        ok(&alice, &["sync"]);
        ok(&bob, &["sync"]);
        ok(&alice, &["send", "bob", "genuine"]);
    })
    .await
    .unwrap();
    let genuine = operator.hold_back("bob", EnvelopeKind::Message);
    let mut sealed = SealedMessage::from_json(&genuine).unwrap();
    sealed.ciphertext[0] ^= 0x80;
    operator.deliver("alice", "bob", EnvelopeKind::Message, &sealed.to_json().unwrap());
    operator.deliver("alice", "bob", EnvelopeKind::Message, &genuine);

    let synced = tokio::task::spawn_blocking(move || magpie(&bob_profile, &["sync"]))
        .await
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&synced.stdout),
        String::from_utf8_lossy(&synced.stderr),
    );
    assert_eq!(synced.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("magpie: warning: a message from alice could not be verified and was discarded"),
        "{stderr}"
    );
    assert!(stdout.contains("(1 discarded as unverifiable)"), "{stdout}");
}

/// Item 8: a relay on another computer must be https://, and `register` pins the relay CA it is given (refusing
/// another), as the app's onboarding does.
#[tokio::test(flavor = "multi_thread")]
async fn item08_a_remote_relay_must_be_https_and_register_pins_the_ca_given() {
    use crate::cli::{magpie, ok};
    let operator = Operator::start().await;
    let url = operator.url();
    let ca = operator.ca.fingerprint_hex();
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("alice");
    tokio::task::spawn_blocking(move || {
        let plain = magpie(&profile, &["--relay", "http://relay.example.org", "register", "alice"]);
        assert_eq!(plain.status.code(), Some(1));
        let said = String::from_utf8_lossy(&plain.stderr);
        assert!(
            said.contains("uses plain http://") && said.contains("Use https://"),
            "{said}"
        );
        assert!(!profile.exists(), "nothing is made for a relay that is refused");

        let other = "ab".repeat(32);
        let wrong = magpie(
            &profile,
            &["--relay", &url, "register", "alice", "--ca-fingerprint", &other],
        );
        assert_eq!(wrong.status.code(), Some(1));
        let said = String::from_utf8_lossy(&wrong.stderr);
        assert!(said.contains("certificate authority changed"), "{said}");
        assert!(
            !profile.exists(),
            "a relay whose CA is not the one given leaves nothing behind"
        );

        let registered = ok(
            &profile,
            &["--relay", &url, "register", "alice", "--ca-fingerprint", &ca],
        );
        assert!(
            registered.contains(&format!("Relay CA fingerprint: {ca}")),
            "{registered}"
        );
        assert!(ok(&profile, &["whoami"]).contains(&ca));
    })
    .await
    .unwrap();
}

/// Item 5: a peer (or the relay in its name) cannot grow our stored requests without bound, nor make us sign
/// re-key answers as fast as it sends requests.
#[tokio::test(flavor = "multi_thread")]
async fn item05_requests_are_bounded_per_peer_and_automatic_rekeys_are_rate_limited() {
    use magpie_core::engine::{AUTO_ACCEPTS_PER_SEC, AUTO_ACCEPT_BURST, MAX_REQUESTS_PER_PEER};
    let operator = Operator::start().await;
    let (alice, bob) = pair_at(&operator).await;

    // A stranger's name asks six times: only the newest few are kept.
    for _ in 0..6 {
        operator.forged_request("carol", "mallory", "bob");
    }
    bob.client.sync().await.unwrap();
    let from_carol = bob.client.incoming_requests().unwrap();
    assert_eq!(from_carol.len(), MAX_REQUESTS_PER_PEER, "{from_carol:?}");

    // Alice asks for forty re-keys at once: Bob answers a burst by himself, then waits for the user.
    for _ in 0..40 {
        alice.client.request(&name("bob")).await.unwrap();
    }
    alice.client.flush_outbox().await.unwrap();
    let started = std::time::Instant::now();
    bob.client.sync().await.unwrap();
    let took = started.elapsed().as_secs_f64();
    let answered = operator.read("alice", EnvelopeKind::ChatAccept).len();
    let allowed = AUTO_ACCEPT_BURST + (took * AUTO_ACCEPTS_PER_SEC).ceil();
    assert!(answered as f64 >= AUTO_ACCEPT_BURST, "{answered} answered");
    assert!(
        answered as f64 <= allowed,
        "{answered} answered in {took:.2} s, {allowed} allowed"
    );
    let waiting = bob.client.incoming_requests().unwrap();
    let from_alice = waiting.iter().filter(|r| r.peer == "alice").count();
    assert_eq!(
        from_alice, MAX_REQUESTS_PER_PEER,
        "the rest wait for the user, bounded too"
    );
}

/// Item 10: on the wire, a one-byte text, a 200-byte text and a receipt seal to the same size (one bucket).
#[tokio::test(flavor = "multi_thread")]
async fn item10_short_texts_and_receipts_are_one_size_on_the_wire() {
    let operator = Operator::start().await;
    let (alice, bob) = pair_at(&operator).await;
    alice.client.send_text(&name("bob"), "a").unwrap();
    alice.client.send_text(&name("bob"), &"a".repeat(200)).unwrap();
    alice.client.flush_outbox().await.unwrap();
    let texts = operator.read("bob", EnvelopeKind::Message);
    bob.client.sync().await.unwrap(); // answers with one receipt
    let receipts = operator.read("alice", EnvelopeKind::Message);
    let ciphertext = |body: &[u8]| SealedMessage::from_json(body).unwrap().ciphertext.len();
    let sizes: Vec<(usize, usize)> = texts
        .iter()
        .chain(&receipts)
        .map(|body| (ciphertext(body), body.len()))
        .collect();
    println!(
        "on the wire (ciphertext+tag bytes, envelope body bytes): 1-byte text {:?}, 200-byte text {:?}, receipt {:?}",
        sizes[0], sizes[1], sizes[2]
    );
    assert_eq!(sizes.len(), 3);
    // The envelopes differ only by what the relay knows anyway (the sender's name, the counter's digits).
    assert!(sizes.iter().all(|(c, _)| *c == 256 + 16), "{sizes:?}");
}

/// Item 9: a profile put back from an older copy (a backup, a snapshot) is told apart by the open count the
/// credential store keeps; its sessions are set aside and new ones set up before anything is sealed, so no two
/// envelopes ever share a (session, counter).
#[tokio::test(flavor = "multi_thread")]
async fn item09_a_restored_copy_never_reuses_a_send_counter() {
    use crate::common::copy_dir;
    let operator = Operator::start().await;
    let (alice, bob) = pair_at(&operator).await;
    let bob_name = name("bob");
    alice.client.send_text(&bob_name, "one").unwrap();
    alice.client.flush_outbox().await.unwrap();
    let backup = tempfile::tempdir().unwrap();
    let copy = backup.path().join("profile");
    let alice = alice.reopen_after_files(|dir| copy_dir(dir, &copy)).await;
    assert!(!alice.client.profile().restored());
    alice.client.send_text(&bob_name, "two").unwrap();
    alice.client.send_text(&bob_name, "three").unwrap();
    alice.client.flush_outbox().await.unwrap();
    let mut sent = operator.read("bob", EnvelopeKind::Message);

    // The older copy goes back.
    let alice = alice
        .reopen_after_files(|dir| {
            std::fs::remove_dir_all(dir).unwrap();
            copy_dir(&copy, dir);
        })
        .await;
    assert!(alice.client.profile().restored());
    // Written before the new session exists: it waits, unsealed, and goes with the new session (item 11).
    let waiting = alice.client.send_text(&bob_name, "too soon").unwrap();
    assert_eq!(waiting.delivery, magpie_core::history::Delivery::Waiting);
    alice.client.sync().await.unwrap(); // a new handshake with Bob
    bob.client.sync().await.unwrap(); // one, two, three; accepts the re-key by himself
    alice.client.sync().await.unwrap();
    bob.client.sync().await.unwrap();
    alice.client.sync().await.unwrap();
    assert!(alice.client.has_session(&bob_name).unwrap());
    alice.client.send_text(&bob_name, "four").unwrap();
    alice.client.flush_outbox().await.unwrap();
    sent.extend(operator.read("bob", EnvelopeKind::Message));
    bob.client.sync().await.unwrap();

    assert_sealed_once(sent.iter(), "alice", 5);
    let received: Vec<String> = bob
        .client
        .last_messages(&name("alice"), 10)
        .unwrap()
        .into_iter()
        .map(|entry| entry.message.body)
        .collect();
    assert_eq!(received, ["one", "two", "three", "too soon", "four"]);
}

/// Checks that `from` sealed `count` of the envelopes `sent` and no two with one (session, counter).
pub(crate) fn assert_sealed_once<'a>(sent: impl Iterator<Item = &'a Vec<u8>>, from: &str, count: usize) {
    let counters: Vec<(Vec<u8>, u64)> = sent
        .map(|body| SealedMessage::from_json(body).unwrap())
        .filter(|sealed| sealed.from == from)
        .map(|sealed| (sealed.session_id, sealed.n))
        .collect();
    assert_eq!(counters.len(), count, "{counters:?}");
    let unique: std::collections::HashSet<_> = counters.iter().collect();
    assert_eq!(
        unique.len(),
        counters.len(),
        "a (session, counter) sealed twice: {counters:?}"
    );
}

/// Alice asked Bob and Bob accepted; the rest of the handshake has not happened yet.
async fn accepted_not_yet_set_up(operator: &Operator) -> (Person, Person) {
    let alice = Person::register("alice", &operator.url()).await;
    let bob = Person::register("bob", &operator.url()).await;
    alice.client.request(&name("bob")).await.unwrap();
    alice.client.flush_outbox().await.unwrap();
    bob.client.sync().await.unwrap();
    accept_from(&bob.client, &name("alice")).await.unwrap();
    bob.client.flush_outbox().await.unwrap();
    (alice, bob)
}

/// Item 11: a text written after the peer accepted, before the session exists, waits unsealed and goes with the
/// session once it is set up.
#[tokio::test(flavor = "multi_thread")]
async fn item11_a_text_written_before_the_session_waits_and_goes_with_it() {
    use magpie_core::history::Delivery;
    let operator = Operator::start().await;
    let (alice, bob) = accepted_not_yet_set_up(&operator).await;
    let alice_name = name("alice");
    let early = bob.client.send_text(&alice_name, "written early").unwrap();
    assert_eq!(early.delivery, Delivery::Waiting);
    assert!(
        operator.read("alice", EnvelopeKind::Message).is_empty(),
        "nothing is sealed before the session exists"
    );
    alice.client.sync().await.unwrap(); // the key transfer
    bob.client.sync().await.unwrap(); // the session: the waiting text is sealed and posted with it
    alice.client.sync().await.unwrap();
    let got = alice.client.last_messages(&name("bob"), 10).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message.body, "written early");
    assert_eq!(got[0].message.id, early.id);
    let stored = bob.client.last_messages(&alice_name, 10).unwrap();
    assert_ne!(stored[0].message.delivery, Delivery::Waiting);
}

/// Item 11, however many wait: more texts than one page of the chat (600, written while the session is set up)
/// all go, in order, once it exists. (Only the newest 500 were looked for, and the older ones waited for good.)
#[tokio::test(flavor = "multi_thread")]
async fn item11_every_waiting_text_goes_however_many_there_are() {
    use magpie_core::history::Delivery;
    const TEXTS: usize = 600;
    let operator = Operator::start().await;
    let (alice, bob) = accepted_not_yet_set_up(&operator).await;
    let alice_name = name("alice");
    for i in 0..TEXTS {
        let text = bob.client.send_text(&alice_name, &format!("early {i}")).unwrap();
        assert_eq!(text.delivery, Delivery::Waiting);
    }
    alice.client.sync().await.unwrap(); // the key transfer
    bob.client.sync().await.unwrap(); // the session: every waiting text is sealed and posted
    alice.client.sync().await.unwrap();
    let got = alice.client.last_messages(&name("bob"), TEXTS + 10).unwrap();
    let bodies: Vec<String> = got.into_iter().map(|e| e.message.body).collect();
    let expected: Vec<String> = (0..TEXTS).map(|i| format!("early {i}")).collect();
    assert_eq!(bodies, expected);
    let stored = bob.client.last_messages(&alice_name, TEXTS + 10).unwrap();
    assert!(stored.iter().all(|e| e.message.delivery != Delivery::Waiting));
}

/// Item 11: when the handshake fails instead, the waiting text fails visibly and is never sealed.
#[tokio::test(flavor = "multi_thread")]
async fn item11_waiting_texts_fail_visibly_when_the_handshake_fails() {
    use magpie_core::history::Delivery;
    let operator = Operator::start().await;
    let (alice, bob) = accepted_not_yet_set_up(&operator).await;
    let alice_name = name("alice");
    let early = bob.client.send_text(&alice_name, "never sealed").unwrap();
    alice.client.sync().await.unwrap();
    // The relay flips a bit of the key transfer: Bob's handshake fails.
    let transfer = operator.hold_back("bob", EnvelopeKind::KeyTransfer);
    let mut tampered = magpie_proto::KeyTransfer::from_json(&transfer).unwrap();
    tampered.wrapped_key[10] ^= 0x80;
    operator.deliver("alice", "bob", EnvelopeKind::KeyTransfer, &tampered.to_json().unwrap());
    let mut events = bob.client.events();
    bob.client.sync().await.unwrap();
    let failed = wait_for(&mut events, |e| match e {
        Event::DeliveryChanged { id, delivery, .. } if *id == early.id => Some(*delivery),
        _ => None,
    })
    .await;
    assert_eq!(failed, Delivery::Failed);
    let stored = bob.client.last_messages(&alice_name, 10).unwrap();
    assert_eq!(stored[0].message.delivery, Delivery::Failed);
    assert!(
        operator.read("alice", EnvelopeKind::Message).is_empty(),
        "nothing was sealed"
    );
}

/// Item 11 at the command line: `send` before the session exists says the text is queued (exit 0), and the next
/// sync after the session is set up sends it.
#[tokio::test(flavor = "multi_thread")]
async fn item11_the_cli_queues_a_text_written_before_the_session() {
    use crate::cli::ok;
    let operator = Operator::start().await;
    let url = operator.url();
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    tokio::task::spawn_blocking(move || {
        ok(&alice, &["--relay", &url, "register", "alice"]);
        ok(&bob, &["--relay", &url, "register", "bob"]);
        ok(&alice, &["request", "bob"]);
        ok(&bob, &["accept", "alice"]);
        let queued = ok(&bob, &["send", "alice", "written early"]);
        assert!(queued.starts_with("Queued "), "{queued}");
        ok(&alice, &["sync"]); // the key transfer
        ok(&bob, &["sync"]); // the session, and the queued text with it
        ok(&alice, &["sync"]);
        let history = ok(&alice, &["history", "bob", "--json"]);
        assert!(history.contains("\"written early\""), "{history}");
    })
    .await
    .unwrap();
}

/// Item 7: either side re-keys. Only the side that answered the first request (the responder) writes, three
/// thousand texts, and the keys still rotate.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn item07_only_the_responder_talks_for_3000_messages_and_keys_still_rotate() {
    use crate::chat::wait_until_all_delivered;
    use crate::common::{online_pair, Relay};
    const TEXTS: usize = 3000;
    let relay = Relay::start().await;
    let pair = online_pair(&relay).await;
    let (alice, bob) = (pair.alice.client.clone(), pair.bob.client.clone());
    let rekeys = crate::chat::count_rekeys(bob.events());
    for i in 0..TEXTS {
        bob.send_text(alice.username(), &format!("bob {i}")).unwrap();
        if i % 50 == 0 {
            tokio::task::yield_now().await;
        }
    }
    wait_until_all_delivered(&bob, alice.username()).await;
    let rekeys = rekeys.abort_and_count().await;
    assert!(rekeys >= 2, "{rekeys} re-keys in {TEXTS} texts");
    let received = alice.last_messages(bob.username(), TEXTS).unwrap();
    assert_eq!(received.len(), TEXTS);
    let out_of_order: Vec<(usize, &str)> = received
        .iter()
        .enumerate()
        .filter(|(i, e)| e.message.body != format!("bob {i}"))
        .map(|(i, e)| (i, e.message.body.as_str()))
        .take(10)
        .collect();
    assert!(out_of_order.is_empty(), "stored out of order: {out_of_order:?}");
}

/// Item 7: a re-key request that is lost (the relay drops it) is replaced by a new one once the retry time has
/// passed, and the keys rotate.
#[tokio::test(flavor = "multi_thread")]
async fn item07_a_dropped_rekey_request_is_retried() {
    let operator = Operator::start().await;
    let (alice, bob) = pair_at(&operator).await;
    let bob_name = name("bob");
    alice
        .client
        .set_rekey_retry_after(std::time::Duration::from_millis(200));
    let mut alice_events = alice.client.events();
    for i in 0..magpie_proto::REKEY_AFTER_MESSAGES {
        alice.client.send_text(&bob_name, &format!("{i}")).unwrap();
    }
    let first = wait_for(&mut alice_events, |e| match e {
        Event::Handshake { data, .. } => Some(data.request_id),
        _ => None,
    })
    .await;
    alice.client.flush_outbox().await.unwrap();
    let dropped = ChatRequest::from_json(&operator.hold_back("bob", EnvelopeKind::ChatRequest)).unwrap();
    assert_eq!(dropped.request_id, first);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    alice.client.sync().await.unwrap(); // past the retry time: a new request
    let second = wait_for(&mut alice_events, |e| match e {
        Event::Handshake { data, .. } if data.request_id != first => Some(data.request_id),
        _ => None,
    })
    .await;
    // Long enough again for the rest of the handshake.
    alice
        .client
        .set_rekey_retry_after(magpie_core::engine::REKEY_RETRY_AFTER);
    alice.client.flush_outbox().await.unwrap();
    bob.client.sync().await.unwrap(); // the thousand texts, and the new request, accepted by itself
    alice.client.sync().await.unwrap();
    bob.client.sync().await.unwrap();
    alice.client.sync().await.unwrap();
    let rekeyed = wait_for(&mut alice_events, |e| match e {
        Event::SessionEstablished { rekey, .. } => Some(*rekey),
        _ => None,
    })
    .await;
    assert!(rekeyed);
    assert!(
        alice.client.outgoing_requests().unwrap().is_empty(),
        "nothing left waiting ({second})"
    );
}

/// Item 7: both sides ask for a re-key at once: one request goes on (the one from the name that sorts first),
/// the other is dropped on both sides, and both end with the same new session.
#[tokio::test(flavor = "multi_thread")]
async fn item07_crossing_rekeys_end_in_one_new_session() {
    let operator = Operator::start().await;
    let (alice, bob) = pair_at(&operator).await;
    let (alice_name, bob_name) = (name("alice"), name("bob"));
    let mut alice_events = alice.client.events();
    let mut bob_events = bob.client.events();
    alice.client.request(&bob_name).await.unwrap();
    bob.client.request(&alice_name).await.unwrap();
    alice.client.flush_outbox().await.unwrap();
    bob.client.flush_outbox().await.unwrap();
    for _ in 0..3 {
        alice.client.sync().await.unwrap();
        bob.client.sync().await.unwrap();
    }
    let established = |events: &mut tokio::sync::broadcast::Receiver<Event>| {
        let mut n = 0;
        while let Ok(event) = events.try_recv() {
            n += usize::from(matches!(event, Event::SessionEstablished { rekey: true, .. }));
        }
        n
    };
    assert_eq!(established(&mut alice_events), 1);
    assert_eq!(established(&mut bob_events), 1);
    assert!(alice.client.outgoing_requests().unwrap().is_empty());
    assert!(bob.client.outgoing_requests().unwrap().is_empty());
    // The same session on both sides: a text each way opens with it.
    alice.client.send_text(&bob_name, "after").unwrap();
    bob.client.send_text(&alice_name, "after too").unwrap();
    alice.client.flush_outbox().await.unwrap();
    bob.client.flush_outbox().await.unwrap();
    alice.client.sync().await.unwrap();
    bob.client.sync().await.unwrap();
    assert_eq!(
        bob.client.last_messages(&alice_name, 1).unwrap()[0].message.body,
        "after"
    );
    assert_eq!(
        alice.client.last_messages(&bob_name, 1).unwrap()[0].message.body,
        "after too"
    );
}

/// Item 7: past twice the re-key point without a new session, texts wait for it instead of being sealed.
#[tokio::test(flavor = "multi_thread")]
async fn item07_a_session_past_its_maximum_seals_no_more_texts() {
    use magpie_core::history::Delivery;
    let operator = Operator::start().await;
    let (alice, bob) = pair_at(&operator).await;
    let bob_name = name("bob");
    // Bob is away: the re-key Alice asks for at the thousandth text goes unanswered.
    for i in 0..magpie_proto::SESSION_MAX_MESSAGES {
        let sent = alice.client.send_text(&bob_name, &format!("{i}")).unwrap();
        assert_eq!(sent.delivery, Delivery::Sending, "text {i}");
    }
    let waits = alice.client.send_text(&bob_name, "past the maximum").unwrap();
    assert_eq!(waits.delivery, Delivery::Waiting);
    alice.client.flush_outbox().await.unwrap();
    // Bob is back: the re-key completes, and the text goes with the new session.
    for _ in 0..3 {
        bob.client.sync().await.unwrap();
        alice.client.sync().await.unwrap();
    }
    bob.client.sync().await.unwrap();
    let last = bob.client.last_messages(&name("alice"), 1).unwrap();
    assert_eq!(last[0].message.body, "past the maximum");
}

/// Item 6: "Delete messages" removes the chat's sealed messages from the profile's files, not only from the
/// database's view of them.
#[tokio::test(flavor = "multi_thread")]
async fn item06_deleted_messages_are_gone_from_the_profiles_files() {
    let operator = Operator::start().await;
    let (alice, bob) = pair_at(&operator).await;
    let alice_name = name("alice");
    for i in 0..40 {
        alice
            .client
            .send_text(&name("bob"), &format!("to be deleted {i}"))
            .unwrap();
    }
    alice.client.flush_outbox().await.unwrap();
    bob.client.sync().await.unwrap();
    let sealed = bob.client.profile().history().sealed_blocks(&alice_name).unwrap();
    bob.client.profile().history().flush().unwrap();
    assert!(!sealed.is_empty());
    // A run of bytes from the middle of each sealed block, long enough to be found only where the block is.
    let needles: Vec<Vec<u8>> = sealed
        .iter()
        .map(|block| block[block.len() / 2..][..48].to_vec())
        .collect();
    let found = |dir: &std::path::Path| needles.iter().filter(|n| magpie_tests::dir_contains(dir, n)).count();
    assert_eq!(
        found(&bob.profile_dir()),
        needles.len(),
        "the sealed blocks are on disk before"
    );

    let position = bob.client.profile().history().mark_position().unwrap();
    assert_eq!(bob.client.clear_chat(&alice_name).unwrap(), 40);
    // A client someone else still holds is given back, open, rather than closed under them.
    let held = bob.client.clone();
    let given_back = held.into_profile(std::time::Duration::from_millis(50)).await;
    assert!(given_back.is_err(), "bob.client still holds the history");
    drop(given_back);
    let bob = bob.reopen().await;
    assert!(
        bob.client.profile().history().mark_position().unwrap() > position,
        "the rewritten history's positions go on from the old one's"
    );
    assert_eq!(
        found(&bob.profile_dir()),
        0,
        "a deleted message's sealed block is still in the profile's files"
    );
    assert!(bob.client.last_messages(&alice_name, 10).unwrap().is_empty());
    // The chat goes on, pushed to Bob while he is online.
    let mut events = bob.client.events();
    let _online = crate::common::go_online(&bob.client);
    alice.client.send_text(&name("bob"), "after the deletion").unwrap();
    alice.client.flush_outbox().await.unwrap();
    wait_for(&mut events, |e| {
        matches!(e, Event::MessageReceived { .. }).then_some(())
    })
    .await;
    let after = bob.client.last_messages(&alice_name, 10).unwrap();
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0].message.body, "after the deletion");
}

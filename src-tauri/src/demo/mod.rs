//! The handshake demo: two throwaway profiles, Alice and Bob, run the real seven steps on a relay of their own
//! inside the app; every event and every envelope is recorded and handed to the UI to walk through.
//!
//! Nothing is canned: the values are what magpie-core computed this run, and a failure is shown as it happened.
//! The demo's keys live in memory (they are thrown away with the run), not in the credential store.

mod attacks;
mod mitm;
mod relay;
mod steps;
mod wire;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use magpie_core::engine::ConnectionState;
use magpie_core::keystore::MemoryKeystore;
use magpie_core::{Client, Event, Profile};
use magpie_proto::{CertificateAuthority, Identity, Username};
use tokio::sync::mpsc;

use crate::commands::blocking;
use crate::error::{IpcError, IpcErrorCode};
use crate::ipc_types::{DemoActor, DemoAttack, DemoParty, DemoRun};
use relay::DemoRelay;
use wire::{Tap, WireLog};

/// What Alice says once the keys are agreed.
pub const DEMO_MESSAGE: &str = "Hi Bob! Only you can read this.";
/// How long one stage of the demo may take before it is reported as stuck.
const PATIENCE: Duration = Duration::from_secs(20);
/// How long Alice waits for a key confirmation the relay dropped before the demo says so.
const DROPPED_CONFIRM_WAIT: Duration = Duration::from_secs(3);

#[tauri::command]
pub async fn run_demo(attack: DemoAttack) -> Result<DemoRun, IpcError> {
    run(attack).await
}

/// Runs the demo once, with the relay playing `attack`.
pub async fn run(attack: DemoAttack) -> Result<DemoRun, IpcError> {
    let started = Instant::now();
    let scratch = tempfile::tempdir().map_err(|e| failed(format!("no scratch folder: {e}")))?;
    let impostor_needed = matches!(
        attack,
        DemoAttack::SubstituteKnownContact | DemoAttack::SubstituteFirstContact
    );
    // The RSA-3072 keys (the relay's CA, Alice, Bob, and the relay's impostor if it plays one), made in parallel.
    let (ca, alice_id, bob_id, impostor_key) = tokio::try_join!(
        blocking(
            || CertificateAuthority::create("Magpie demo relay CA", std::time::SystemTime::now())
                .map_err(IpcError::from)
        ),
        blocking(|| Identity::generate(name("alice")?).map_err(IpcError::from)),
        blocking(|| Identity::generate(name("bob")?).map_err(IpcError::from)),
        blocking(move || match impostor_needed {
            true => Identity::generate(name("mallory")?).map(Some).map_err(IpcError::from),
            false => Ok(None),
        }),
    )?;
    let relay_ca_fingerprint = magpie_proto::TrustAnchor::new(ca.certificate().clone())?
        .fingerprint()?
        .to_hex();
    let issuer = format!("CN={}", ca.certificate().common_name().unwrap_or_default());
    let substitute = match (attack, &impostor_key) {
        (DemoAttack::SubstituteKnownContact, Some(key)) => Some(attacks::certificate_for(&ca, "bob", key)?),
        _ => None,
    };
    let log: WireLog = Arc::new(Mutex::new(Vec::new()));
    let first_contact_mitm = attack == DemoAttack::SubstituteFirstContact;
    // A man in the middle shows Bob a relay of its own, with the same CA.
    let bob_relay = match first_contact_mitm {
        true => Some(
            DemoRelay::start(
                copy_of(&ca)?,
                Tap::new(Arc::clone(&log), attack, Some(DemoActor::Bob)),
                &scratch.path().join("relay-bob"),
            )
            .await?,
        ),
        false => None,
    };
    let relay = DemoRelay::start(
        ca,
        Tap::new(Arc::clone(&log), attack, first_contact_mitm.then_some(DemoActor::Alice)),
        &scratch.path().join("relay"),
    )
    .await?;
    let bob_url = bob_relay.as_ref().map_or(relay.url.clone(), |r| r.url.clone());

    let alice = register(alice_id.clone(), &scratch.path().join("alice"), &relay.url).await?;
    let bob = register(bob_id, &scratch.path().join("bob"), &bob_url).await?;
    let mallory = match (first_contact_mitm, &impostor_key) {
        (true, Some(key)) => {
            Some(mitm::Mallory::start(key, &relay.url, &bob_url, &scratch.path().join("mallory")).await?)
        }
        _ => None,
    };
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let tasks = [
        follow(&alice, DemoActor::Alice, events_tx.clone()),
        follow(&bob, DemoActor::Bob, events_tx),
        tokio::spawn(run_client(alice.clone())),
        tokio::spawn(run_client(bob.clone())),
    ];
    let mut recorded = Vec::new();
    let mut outcome = drive(&alice, &bob, attack, &mut events, &mut recorded).await;
    let stage = attacks::Stage {
        attack,
        alice: &alice,
        bob: &bob,
        relay: &relay,
        alice_identity: &alice_id,
        substitute: substitute.as_deref(),
        mallory: mallory.as_ref(),
    };
    let mut verdict = None;
    if outcome.is_ok() {
        match attacks::after_handshake(&stage, &mut events, &mut recorded).await {
            Ok(after) => verdict = after,
            // The attack came after a handshake that completed, and no check was seen to stop it.
            Err(reason) => {
                verdict = Some(attacks::missed(&reason));
                outcome = Err(reason);
            }
        }
    }
    for task in &tasks {
        task.abort();
    }
    if let Some(mallory) = &mallory {
        mallory.stop();
    }
    // Whatever arrived after the last wait still belongs to the story.
    while let Ok(event) = events.try_recv() {
        recorded.push(event);
    }
    if let Err(reason) = &outcome {
        if verdict.is_none() {
            verdict = attacks::in_handshake(&stage, &recorded, &log, reason);
        }
    }
    let relay_url = match &bob_relay {
        Some(bob_relay) => format!("{} (Alice's) and {} (Bob's)", relay.url, bob_relay.url),
        None => relay.url.clone(),
    };
    relay.stop().await;
    if let Some(bob_relay) = bob_relay {
        bob_relay.stop().await;
    }

    let wire = log.lock().map(|log| log.clone()).unwrap_or_default();
    let failure = outcome.err();
    let built = steps::build(&recorded, &wire, failure.as_deref(), attack);
    Ok(DemoRun {
        attack,
        relay_url,
        relay_ca_fingerprint,
        alice: party(&alice, &issuer)?,
        bob: party(&bob, &issuer)?,
        steps: built.steps,
        message: built.message,
        wire,
        // A failure after seven steps that passed is the attack's own (see the verdict).
        failure: built.failure.or(failure),
        verdict,
        elapsed_ms: u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX),
    })
}

type Recorded = (DemoActor, Event);

/// The story: Alice asks, Bob accepts, the engine does steps 3–7, Alice says hello. `Err` is why it stopped.
async fn drive(
    alice: &Client,
    bob: &Client,
    attack: DemoAttack,
    events: &mut mpsc::UnboundedReceiver<Recorded>,
    recorded: &mut Vec<Recorded>,
) -> Result<(), String> {
    let (mut alice_online, mut bob_online) = (false, false);
    while !(alice_online && bob_online) {
        let (actor, _) = wait(events, recorded, |(_, event)| {
            matches!(
                event,
                Event::Connection {
                    state: ConnectionState::Online
                }
            )
        })
        .await?;
        match actor {
            DemoActor::Alice => alice_online = true,
            DemoActor::Bob => bob_online = true,
        }
    }
    alice.request(bob.username()).await.map_err(|e| e.to_string())?;
    wait(events, recorded, |(actor, event)| {
        *actor == DemoActor::Bob && matches!(event, Event::RequestReceived { .. })
    })
    .await?;
    let request = bob.sole_request_from(alice.username()).map_err(|e| e.to_string())?;
    bob.accept(request.request_id, &request.fingerprint)
        .await
        .map_err(|e| e.to_string())?;
    // A man in the middle completes Alice's handshake on its own: it may be over before Bob has even accepted.
    if !alice_holds_session(recorded)? {
        until_alice_holds_session(attack, events, recorded).await?;
    }
    alice
        .send_text(bob.username(), DEMO_MESSAGE)
        .map_err(|e| e.to_string())?;
    // Alice's "sent" and Bob's "received" come through two forwarding tasks, in either order: wait for both.
    let (mut sent, mut received) = (false, false);
    wait(events, recorded, |(actor, event)| {
        sent |= *actor == DemoActor::Alice && matches!(event, Event::MessageSent { .. });
        received |= *actor == DemoActor::Bob && matches!(event, Event::MessageReceived { .. });
        sent && received
    })
    .await?;
    Ok(())
}

/// Whether Alice's session is among what was recorded; `Err` if a handshake failed.
fn alice_holds_session(recorded: &[Recorded]) -> Result<bool, String> {
    for (actor, event) in recorded {
        match event {
            Event::HandshakeFailed { reason, .. } => return Err(reason.clone()),
            Event::SessionEstablished { .. } if *actor == DemoActor::Alice => return Ok(true),
            _ => {}
        }
    }
    Ok(false)
}

/// Bob installs his session at step 6, Alice hers at step 7; a failure on either side ends the story. Once Bob
/// has sent a confirmation the relay drops, Alice is given a short while.
async fn until_alice_holds_session(
    attack: DemoAttack,
    events: &mut mpsc::UnboundedReceiver<Recorded>,
    recorded: &mut Vec<Recorded>,
) -> Result<(), String> {
    let mut patience = PATIENCE;
    loop {
        let (actor, event) = wait_for(patience, events, recorded, |(_, event)| {
            matches!(event, Event::HandshakeFailed { .. } | Event::SessionEstablished { .. })
        })
        .await
        .map_err(|stuck| match attack {
            DemoAttack::DropKeyConfirm => format!(
                "no key confirmation from bob came in {} seconds, so she installed no session and sealed nothing",
                DROPPED_CONFIRM_WAIT.as_secs()
            ),
            _ => stuck,
        })?;
        match event {
            Event::HandshakeFailed { reason, .. } => return Err(reason),
            Event::SessionEstablished { .. } if actor == DemoActor::Alice => return Ok(()),
            Event::SessionEstablished { .. } if attack == DemoAttack::DropKeyConfirm => {
                patience = DROPPED_CONFIRM_WAIT;
            }
            _ => {}
        }
    }
}

/// Records events until one that `want`s arrives, and returns it.
async fn wait(
    events: &mut mpsc::UnboundedReceiver<Recorded>,
    recorded: &mut Vec<Recorded>,
    want: impl FnMut(&Recorded) -> bool,
) -> Result<Recorded, String> {
    wait_for(PATIENCE, events, recorded, want).await
}

/// [`wait`], for at most `patience`.
async fn wait_for(
    patience: Duration,
    events: &mut mpsc::UnboundedReceiver<Recorded>,
    recorded: &mut Vec<Recorded>,
    mut want: impl FnMut(&Recorded) -> bool,
) -> Result<Recorded, String> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let next = tokio::time::timeout_at(deadline, events.recv())
            .await
            .map_err(|_| {
                format!(
                    "Nothing happened for {} seconds: the demo stopped here.",
                    patience.as_secs()
                )
            })?
            .ok_or_else(|| "The demo's clients stopped.".to_owned())?;
        recorded.push(next.clone());
        if want(&next) {
            return Ok(next);
        }
    }
}

fn follow(client: &Client, actor: DemoActor, out: mpsc::UnboundedSender<Recorded>) -> tokio::task::JoinHandle<()> {
    let mut events = client.events();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            if out.send((actor, event)).is_err() {
                return;
            }
        }
    })
}

pub(super) async fn run_client(client: Client) {
    if let Err(error) = client.run().await {
        tracing::warn!(%error, "a demo client stopped");
    }
}

pub(super) async fn register(identity: Identity, dir: &std::path::Path, relay_url: &str) -> Result<Client, IpcError> {
    let dir = dir.to_owned();
    let profile = blocking(move || {
        Profile::create_with_identity(&dir, identity, Arc::new(MemoryKeystore::default())).map_err(IpcError::from)
    })
    .await?;
    Ok(Client::register(profile, relay_url, None).await?)
}

fn party(client: &Client, issuer: &str) -> Result<DemoParty, IpcError> {
    let certificate = client.certificate();
    Ok(DemoParty {
        username: client.username().to_string(),
        certificate_subject: format!("CN={}", certificate.common_name().unwrap_or_default()),
        certificate_issuer: issuer.to_owned(),
        certificate_serial: certificate.serial_hex()?,
        fingerprint: client.fingerprint().to_hex(),
    })
}

pub(super) fn name(name: &str) -> Result<Username, IpcError> {
    Username::parse(name).map_err(IpcError::from)
}

/// A second handle on the CA: the man in the middle's two relays sign with the one key.
fn copy_of(ca: &CertificateAuthority) -> Result<CertificateAuthority, IpcError> {
    Ok(CertificateAuthority::from_parts(
        ca.certificate().clone(),
        ca.key_to_pkcs8_der()?.expose_secret(),
    )?)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn failed(message: String) -> IpcError {
    IpcError::new(IpcErrorCode::Internal, message)
}

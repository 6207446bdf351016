//! The client engine end to end, through a real relay on loopback (sled store, durable 202s):
//!
//! - send → receive: from the call to Alice's `send_text` to Bob's `MessageReceived` event, including sealing, the
//!   history writes on both sides, the relay and its push (the relay's flush, Alice's and Bob's follow the
//!   text: it leaves with its counter reserved, see `history::reserve`); at a steady background rate
//!   (`MAGPIE_BENCH_RATE`, default 1,000/s) for `MAGPIE_BENCH_SECONDS` (default 5); and `send_text` alone; then the
//!   same with the receiver in a process of its own (see `engine/peer.rs`);
//! - the same path without the engine (send an envelope on a socket, as the engine does, and receive its push): the
//!   raw relay hop, the baseline; and the same with an HTTP post;
//! - the seven-step handshake through the relay (keys pre-made), beside the same steps in-process;
//! - catch-up: Bob comes back online to `MAGPIE_BENCH_CATCH_UP` (default 2,000) messages waiting at the relay;
//!   the time from his reconnect to the last one's `MessageReceived`.
//!
//! `cargo bench -p magpie-tests --bench engine`; the last line is the summary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    reason = "a benchmark"
)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use magpie_core::engine::Event;
use magpie_core::keystore::{Keystore, MemoryKeystore};
use magpie_core::relay::{Outgoing, PushEvent, RelayClient};
use magpie_core::{Client, Profile};
use magpie_proto::{
    CertificateAuthority, Credential, Envelope, EnvelopeKind, Identity, Initiator, Responder, TrustAnchor, Username,
};
use magpie_relay::server::{open_state, RunningRelay};
use magpie_relay::Config;
use uuid::Uuid;

#[path = "engine/peer.rs"]
mod peer;

const HANDSHAKES: usize = 100;

fn name(s: &str) -> Username {
    Username::canonical(s).unwrap()
}

fn env(key: &str, default: u64) -> u64 {
    std::env::var(key).map_or(default, |v| v.parse().unwrap())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    if let Some(spec) = peer::spec() {
        peer::run(&spec).await;
    }
    if let Ok(filter) = std::env::var("MAGPIE_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .init();
    }
    let rate = env("MAGPIE_BENCH_RATE", 1000);
    let seconds = env("MAGPIE_BENCH_SECONDS", 5);
    let data = tempfile::tempdir().unwrap();
    let relay = RunningRelay::start(open_state(Config::with_data_dir(data.path().join("relay"))).unwrap())
        .await
        .unwrap();
    let url = relay.url("");
    let keys: Arc<dyn Keystore> = Arc::new(MemoryKeystore::default());
    let identities: Vec<Identity> = ["alice", "bob"]
        .map(|n| std::thread::spawn(move || Identity::generate(name(n)).unwrap()))
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    let mut clients = Vec::new();
    for identity in identities.clone() {
        let dir = data.path().join(identity.username().as_str());
        let profile = Profile::create_with_identity(&dir, identity, keys.clone()).unwrap();
        clients.push(Client::register(profile, &url, None).await.unwrap());
    }
    let (alice, bob) = (clients[0].clone(), clients[1].clone());
    let online = |client: &Client| {
        let client = client.clone();
        tokio::spawn(async move { client.run().await })
    };
    let alice_online = online(&alice);
    let bob_online = online(&bob);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let handshake_ms = handshakes(&alice, &bob).await;
    let in_process_ms = handshake_in_process(&identities);
    println!(
        "handshake through the relay: median {handshake_ms:.2} ms over {HANDSHAKES}; in-process {in_process_ms:.2} ms \
         (relay adds {:.2} ms)",
        handshake_ms - in_process_ms
    );

    let engine = send_receive(&alice, &bob, rate, seconds).await;
    let apart = peer::send_receive(&alice, &url, &data.path().join("carol"), rate, seconds).await;
    let raw_http = raw_hop(&url, &identities, &bob, rate, seconds, Via::Http).await;
    let raw = raw_hop(&url, &identities, &bob, rate, seconds, Via::Socket).await;
    println!(
        "send→receive with the engine: p50 {} µs, p99 {} µs over {} messages at {rate}/s",
        engine.0, engine.1, engine.2
    );
    println!(
        "send→receive with the receiver in its own process: p50 {} µs, p99 {} µs over {} messages",
        apart.0, apart.1, apart.2
    );
    println!(
        "raw relay hop (HTTP post → push):   p50 {} µs, p99 {} µs",
        raw_http.0, raw_http.1
    );
    println!("raw relay hop (socket send → push): p50 {} µs, p99 {} µs", raw.0, raw.1);
    println!(
        "ratio engine/raw socket hop (the engine sends on its socket): p50 {:.2}x, p99 {:.2}x",
        engine.0 as f64 / raw.0.max(1) as f64,
        engine.1 as f64 / raw.1.max(1) as f64
    );

    let waiting = usize::try_from(env("MAGPIE_BENCH_CATCH_UP", 2000)).unwrap();
    bob_online.abort();
    let _ = bob_online.await;
    let (catch_up_ms, bob_online) = catch_up(&alice, &bob, waiting, || online(&bob)).await;
    println!(
        "catch-up of {waiting} waiting messages: {catch_up_ms:.0} ms ({:.0} messages/s)",
        waiting as f64 / catch_up_ms * 1000.0
    );
    println!(
        "send_recv_p50_us={} p99_us={} handshake_ms={handshake_ms:.2} raw_hop_p50_us={} raw_http_hop_p50_us={} \
         in_process_handshake_ms={in_process_ms:.2} catch_up_ms={catch_up_ms:.0}",
        engine.0, engine.1, raw.0, raw_http.0
    );
    // Every history closes before its directory goes: sled closing one whose files were deleted has hung.
    for task in [alice_online, bob_online] {
        task.abort();
        let _ = task.await;
    }
    drop((alice, bob, clients, relay));
    // Their child tasks (aborted with them) drop their handles on the workers' next turn.
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(data);
}

/// With Bob offline, Alice sends `waiting` texts and the relay accepts them all; then Bob comes back (`go_online`).
/// Returns the time from then to his last `MessageReceived`, in ms, and what `go_online` returned.
async fn catch_up<T>(alice: &Client, bob: &Client, waiting: usize, go_online: impl FnOnce() -> T) -> (f64, T) {
    for i in 0..waiting {
        alice.send_text(bob.username(), &format!("while away {i}")).unwrap();
    }
    let deadline = Instant::now() + STALL;
    while !alice.profile().history().outbox().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the relay never accepted them all");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut events = bob.events();
    let start = Instant::now();
    let online = go_online();
    let mut received = 0;
    let mut seen = std::collections::HashSet::new();
    while received < waiting {
        match tokio::time::timeout(STALL, events.recv()).await {
            Ok(Ok(Event::MessageReceived { message })) => {
                received += 1;
                seen.insert(message.body);
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("bob's events: {e}"),
            Err(_) => {
                let missing: Vec<usize> = (0..waiting)
                    .filter(|i| !seen.contains(&format!("while away {i}")))
                    .collect();
                panic!(
                    "catch-up stalled after {received} of {waiting}; missing {} from {:?} to {:?}",
                    missing.len(),
                    missing.first(),
                    missing.last()
                )
            }
        }
    }
    (start.elapsed().as_secs_f64() * 1000.0, online)
}

/// Median time from `request` to the initiator's `SessionEstablished` (repeated handshakes re-key the pair).
async fn handshakes(alice: &Client, bob: &Client) -> f64 {
    let mut times = Vec::new();
    for _ in 0..HANDSHAKES {
        let mut events = alice.events();
        let mut bob_events = bob.events();
        let start = Instant::now();
        alice.request(bob.username()).await.unwrap();
        if times.is_empty() {
            // The first one needs Bob's user to accept; later ones are re-keys he accepts by himself.
            loop {
                if let Ok(Event::RequestReceived { .. }) = bob_events.recv().await {
                    break;
                }
            }
            let request = bob.sole_request_from(alice.username()).unwrap();
            bob.accept(request.request_id, &request.fingerprint).await.unwrap();
        }
        loop {
            if let Ok(Event::SessionEstablished { .. }) = events.recv().await {
                break;
            }
        }
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        // Bob accepts a contact's re-keys by himself only so often (magpie_core::engine::AUTO_ACCEPTS_PER_SEC):
        // pace them, after the timing, so each is one he answers by himself.
        let spacing = std::time::Duration::from_secs_f64(1.0 / magpie_core::engine::AUTO_ACCEPTS_PER_SEC);
        tokio::time::sleep_until((start + spacing).into()).await;
    }
    // The first includes Bob's (instant) decision; the median is of the rest.
    times.remove(0);
    median(&mut times)
}

fn handshake_in_process(identities: &[Identity]) -> f64 {
    let now = SystemTime::now();
    let ca = CertificateAuthority::create("bench CA", now).unwrap();
    let trust = TrustAnchor::new(ca.certificate().clone()).unwrap();
    let cred = |i: &Identity| Credential::new(i.clone(), ca.issue(&i.csr().unwrap(), now).unwrap()).unwrap();
    let (a, b) = (cred(&identities[0]), cred(&identities[1]));
    let b_chain = vec![b.certificate().clone(), ca.certificate().clone()];
    let mut times = Vec::new();
    for _ in 0..HANDSHAKES {
        let start = Instant::now();
        let (waiting, request) = Initiator::request(&a, b.username(), now).unwrap();
        let incoming = Responder::on_request(&b, &trust, &request, None, now).unwrap();
        let (b_waiting, accept) = incoming.accept().unwrap();
        let (a_confirm, transfer) = waiting.on_accept(&accept, &b_chain, &trust, None, now).unwrap();
        let (_b_session, confirm) = b_waiting.on_key_transfer(&transfer, now).unwrap();
        let _a_session = a_confirm.on_confirm(&confirm, now).unwrap();
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    median(&mut times)
}

/// Paces `send_text` at `rate` and times each message to Bob's event. Returns (p50 µs, p99 µs, count).
async fn send_receive(alice: &Client, bob: &Client, rate: u64, seconds: u64) -> (u64, u64, usize) {
    let sent_at: Arc<Mutex<HashMap<Uuid, Instant>>> = Arc::default();
    let total = usize::try_from(rate * seconds).unwrap();
    let mut events = bob.events();
    let receiver = {
        let sent_at = sent_at.clone();
        let (alice, bob) = (alice.clone(), bob.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(total);
            while latencies.len() < total {
                let Ok(event) = tokio::time::timeout(STALL, events.recv()).await else {
                    stalled(&alice, &bob, &sent_at, latencies.len());
                };
                match event {
                    Ok(Event::MessageReceived { message }) => {
                        let start = sent_at.lock().unwrap().remove(&message.id).unwrap();
                        latencies.push(u64::try_from(start.elapsed().as_micros()).unwrap());
                    }
                    Ok(_) => {}
                    Err(e) => panic!("bob's events: {e}"),
                }
            }
            latencies
        })
    };
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let mut sending = Vec::with_capacity(total);
    for i in 0..total {
        tick.tick().await;
        // Held across the send, so the receiver cannot look the id up before it is there; timed from before the
        // send, so Alice's sealing and history write count.
        let mut sent = sent_at.lock().unwrap();
        let start = Instant::now();
        let view = alice.send_text(bob.username(), &format!("bench {i}")).unwrap();
        sending.push(u64::try_from(start.elapsed().as_micros()).unwrap());
        sent.insert(view.id, start);
    }
    let mut latencies = receiver.await.unwrap();
    println!(
        "send_text alone (seal, history step, queue): p50 {} µs, p99 {} µs",
        percentile(&mut sending, 50),
        percentile(&mut sending, 99)
    );
    (percentile(&mut latencies, 50), percentile(&mut latencies, 99), total)
}

/// How long without an event before a run stops and says where it stalled.
const STALL: Duration = Duration::from_secs(20);

/// Panics with what each side holds of the first message that never arrived.
fn stalled(alice: &Client, bob: &Client, sent_at: &Mutex<HashMap<Uuid, Instant>>, received: usize) -> ! {
    let missing: Vec<Uuid> = sent_at.lock().unwrap().keys().copied().collect();
    let first = missing.first().copied();
    let on_alice = first.map(|id| alice.profile().history().get_message(id).unwrap());
    let on_bob = first.map(|id| bob.profile().history().get_message(id).unwrap());
    panic!(
        "stalled after {received} received, {} missing; first missing {first:?}: alice has {on_alice:?}, bob has \
         {on_bob:?}; outboxes: alice {}, bob {}",
        missing.len(),
        alice.profile().history().outbox().unwrap().len(),
        bob.profile().history().outbox().unwrap().len(),
    );
}

/// How the raw hop's sender hands envelopes to the relay.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    Http,
    /// Frames on the sender's own push socket, as the engine sends.
    Socket,
}

/// The relay alone: send an envelope as Alice, time its push to a socket of Bob's, at the same rate.
async fn raw_hop(url: &str, identities: &[Identity], bob: &Client, rate: u64, seconds: u64, via: Via) -> (u64, u64) {
    let ca = bob.relay_ca_fingerprint().unwrap();
    let (sender, receiver) = (RelayClient::new(url).unwrap(), RelayClient::new(url).unwrap());
    sender.login(&identities[0], &ca).await.unwrap();
    receiver.login(&identities[1], &ca).await.unwrap();
    let mut push = receiver.push().await.unwrap();
    let total = usize::try_from(rate * seconds).unwrap();
    let sent_at: Arc<Mutex<HashMap<Uuid, Instant>>> = Arc::default();
    let listener = {
        let sent_at = sent_at.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(total);
            while latencies.len() < total {
                let next = tokio::time::timeout(STALL, push.next()).await;
                let Ok(next) = next else {
                    panic!("raw hop stalled after {} received", latencies.len());
                };
                let Some(PushEvent::Envelope { envelope, .. }) = next.unwrap() else {
                    panic!("push closed");
                };
                // Bob's own client shares the mailbox: only count ours.
                if let Some(start) = sent_at.lock().unwrap().remove(&envelope.id) {
                    latencies.push(u64::try_from(start.elapsed().as_micros()).unwrap());
                }
            }
            latencies
        })
    };
    let mut socket = match via {
        Via::Http => None,
        Via::Socket => {
            let (out, mut answers) = sender.push().await.unwrap().split();
            // Answers must be read for the relay to go on writing them.
            let drain = tokio::spawn(async move {
                while let Some(answer) = answers.next().await.unwrap() {
                    assert!(matches!(answer, PushEvent::Accepted { .. }), "{answer:?}");
                }
            });
            Some((out, drain))
        }
    };
    let sender = Arc::new(sender);
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    for i in 0..total {
        tick.tick().await;
        let envelope = Envelope {
            id: Uuid::new_v4(),
            from: "alice".into(),
            to: "bob".into(),
            kind: EnvelopeKind::Message,
            body: format!("raw {i}").into_bytes(),
        };
        sent_at.lock().unwrap().insert(envelope.id, Instant::now());
        if let Some((out, _)) = socket.as_mut() {
            out.feed(&Outgoing::Send(envelope)).await.unwrap();
            out.flush().await.unwrap();
            continue;
        }
        let sender = sender.clone();
        tokio::spawn(async move { sender.send(&envelope).await.unwrap() });
    }
    let mut latencies = listener.await.unwrap();
    if let Some((out, drain)) = socket {
        out.close().await;
        drain.abort();
    }
    (percentile(&mut latencies, 50), percentile(&mut latencies, 99))
}

fn percentile(values: &mut [u64], p: usize) -> u64 {
    values.sort_unstable();
    values[(values.len() * p / 100).min(values.len() - 1)]
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

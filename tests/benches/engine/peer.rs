//! send → receive with the receiver in a process of its own, as a real peer is. In one process, the two clients
//! share sled 0.34's concurrency-control lock (a process-wide static): each side's settling transaction would stall
//! the other's history writes, a cost no two real peers pay. The peer prints each message's id and the wall-clock
//! time it got the `MessageReceived` event; both processes read the same clock.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use magpie_core::engine::Event;
use magpie_core::keystore::MemoryKeystore;
use magpie_core::{Client, Profile};
use magpie_proto::{Identity, Username};
use uuid::Uuid;

use super::{percentile, STALL};

/// Set in the child: the relay URL and the profile directory.
const PEER_ENV: &str = "MAGPIE_BENCH_PEER";
const PEER_NAME: &str = "carol";

fn unix_nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()
}

/// In the child: the relay URL and profile directory the parent gave it, if this process is the peer.
pub fn spec() -> Option<String> {
    std::env::var(PEER_ENV).ok()
}

/// In the child: registers, accepts the first request, prints `<id> <unix ns>` per message received, and exits when
/// its stdin closes.
pub async fn run(spec: &str) -> ! {
    let (url, dir) = spec.split_once(' ').unwrap();
    let identity = Identity::generate(Username::canonical(PEER_NAME).unwrap()).unwrap();
    let profile = Profile::create_with_identity(Path::new(dir), identity, Arc::new(MemoryKeystore::default())).unwrap();
    let client = Client::register(profile, url, None).await.unwrap();
    let mut events = client.events();
    let _online = {
        let client = client.clone();
        tokio::spawn(async move { client.run().await })
    };
    std::thread::spawn(|| {
        // The parent closes our stdin when it is done (or dies).
        let _ = std::io::stdin().read_line(&mut String::new());
        std::process::exit(0);
    });
    println!("ready");
    let mut out = std::io::stdout().lock();
    loop {
        match events.recv().await {
            Ok(Event::RequestReceived {
                request_id,
                fingerprint,
                ..
            }) => {
                let fingerprint = magpie_proto::Fingerprint::from_hex(&fingerprint).unwrap();
                client.accept(request_id, &fingerprint).await.unwrap()
            }
            Ok(Event::MessageReceived { message }) => {
                writeln!(out, "{} {}", message.id, unix_nanos()).unwrap();
                out.flush().unwrap();
            }
            Ok(_) => {}
            Err(e) => panic!("the peer's events: {e}"),
        }
    }
}

/// The peer process; killed when dropped.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the peer, has `alice` establish a session with it, then paces `send_text` at `rate` for `seconds` and
/// times each message to the peer's event. Returns (p50 µs, p99 µs, count).
pub async fn send_receive(alice: &Client, url: &str, dir: &Path, rate: u64, seconds: u64) -> (u64, u64, usize) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(PEER_ENV, format!("{url} {}", dir.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let peer = Peer(child);
    assert_eq!(lines.next().unwrap().unwrap(), "ready");

    let mut events = alice.events();
    alice.request(&Username::canonical(PEER_NAME).unwrap()).await.unwrap();
    tokio::time::timeout(STALL, async {
        while !matches!(events.recv().await, Ok(Event::SessionEstablished { .. })) {}
    })
    .await
    .expect("no session with the peer process");

    let total = usize::try_from(rate * seconds).unwrap();
    let sent_at: Arc<Mutex<HashMap<Uuid, u128>>> = Arc::default();
    let (done, finished) = mpsc::channel();
    let reader = {
        let sent_at = sent_at.clone();
        std::thread::spawn(move || {
            let mut latencies = Vec::with_capacity(total);
            for line in lines.by_ref() {
                let line = line.unwrap();
                let (id, at) = line.split_once(' ').unwrap();
                let at: u128 = at.parse().unwrap();
                let Some(start) = sent_at.lock().unwrap().remove(&id.parse::<Uuid>().unwrap()) else {
                    continue;
                };
                latencies.push(u64::try_from(at.saturating_sub(start) / 1000).unwrap());
                if latencies.len() == total {
                    break;
                }
            }
            let _ = done.send(());
            latencies
        })
    };
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    for i in 0..total {
        tick.tick().await;
        // Held across the send, so the reader cannot look the id up before it is there.
        let mut sent = sent_at.lock().unwrap();
        let start = unix_nanos();
        let view = alice
            .send_text(&Username::canonical(PEER_NAME).unwrap(), &format!("bench {i}"))
            .unwrap();
        sent.insert(view.id, start);
    }
    let deadline = std::time::Instant::now() + STALL;
    while finished.try_recv().is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the peer process stopped receiving"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut latencies = reader.join().unwrap();
    drop(peer);
    (percentile(&mut latencies, 50), percentile(&mut latencies, 99), total)
}

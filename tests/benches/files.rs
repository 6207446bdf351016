//! A file through the relay, beside plain HTTP carrying the same bytes, in one run:
//!
//! - Magpie: from Alice's `send_file` (seal into her profile, upload in parts, seal and send the message) to Bob's
//!   file kept and checked (message received, blob downloaded in ranges, every segment and the digest checked, the
//!   relay's copy released), both clients online, through a relay on loopback with its data directory;
//! - raw: the same sealed bytes `PUT` to a plain HTTP server in the same kind of process (one streamed request,
//!   written to a file) and `GET` back into a file: the floor of moving them over HTTP through a disk.
//!
//! The relay and the raw server run in a child process (this program again), so each side's memory is its own:
//! each side's peak RSS over the transfer is measured from a reset of its high-water mark (`/proc/PID/clear_refs`).
//! `cargo bench -p magpie-tests --bench files` (`MAGPIE_BENCH_FILE_MB`, default 200); the last line is the summary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    reason = "a benchmark"
)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use magpie_core::engine::Event;
use magpie_core::history::FileState;
use magpie_core::keystore::{Keystore, MemoryKeystore};
use magpie_core::{Client, Profile};
use magpie_proto::{Identity, Username};
use magpie_relay::server::{open_state, RunningRelay};
use magpie_relay::Config;

/// Set in the child: its data directory.
const SERVER_ENV: &str = "MAGPIE_BENCH_FILES_SERVER";
const MIB: u64 = 1 << 20;
const PIECE: usize = 256 * 1024;

fn name(s: &str) -> Username {
    Username::canonical(s).unwrap()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    if let Ok(dir) = std::env::var(SERVER_ENV) {
        serve(Path::new(&dir)).await;
    }
    let mib: u64 = std::env::var("MAGPIE_BENCH_FILE_MB").map_or(200, |v| v.parse().unwrap());
    let data = tempfile::tempdir().unwrap();
    let (mut server, relay_url, raw_url) = start_server(&data.path().join("server"));
    let server_pid = server.id();

    let keys: Arc<dyn Keystore> = Arc::new(MemoryKeystore::default());
    let mut clients = Vec::new();
    for n in ["alice", "bob"] {
        let identity = Identity::generate(name(n)).unwrap();
        let profile = Profile::create_with_identity(&data.path().join(n), identity, keys.clone()).unwrap();
        clients.push(Client::register(profile, &relay_url, None).await.unwrap());
    }
    let (alice, bob) = (clients[0].clone(), clients[1].clone());
    let online: Vec<_> = [&alice, &bob]
        .map(|c| {
            let c = c.clone();
            tokio::spawn(async move { c.run().await })
        })
        .into_iter()
        .collect();
    handshake(&alice, &bob).await;

    let original = data.path().join("original.bin");
    write_file(&original, mib * MIB);
    let mut bob_events = bob.events();
    let mut alice_events = alice.events();
    for pid in [std::process::id(), server_pid] {
        reset_peak(pid);
    }
    let (client_before, server_before) = (rss_kib(std::process::id()), rss_kib(server_pid));
    let started = Instant::now();
    let sent = alice.send_file(bob.username(), &original, None).await.unwrap();
    let sealed = started.elapsed();
    let uploaded = tokio::spawn(async move {
        loop {
            if let Ok(Event::FileStateChanged {
                state: FileState::Kept, ..
            }) = alice_events.recv().await
            {
                return started.elapsed();
            }
        }
    });
    loop {
        match bob_events.recv().await.unwrap() {
            // Over 25 MiB, a file waits for the user to ask for it: Bob asks as soon as it is offered.
            Event::MessageReceived { message } if message.id == sent.id => bob.download_file(sent.id).unwrap(),
            Event::FileStateChanged { id, state, .. } if id == sent.id => match state {
                FileState::Kept => break,
                FileState::Failed(reason) => panic!("the transfer failed: {reason}"),
                _ => {}
            },
            _ => {}
        }
    }
    let magpie = started.elapsed();
    let uploaded = uploaded.await.unwrap();
    println!(
        "sealed into the profile after {:.2} s, uploaded after {:.2} s, downloaded and checked after {:.2} s",
        sealed.as_secs_f64(),
        uploaded.as_secs_f64(),
        magpie.as_secs_f64()
    );
    let client_peak = peak_kib(std::process::id()).saturating_sub(client_before);
    let server_peak = peak_kib(server_pid).saturating_sub(server_before);
    let saved = data.path().join("saved.bin");
    let save_started = Instant::now();
    bob.save_file(sent.id, &saved).await.unwrap();
    let save = save_started.elapsed();
    assert!(same_file(&original, &saved), "the file arrived as sent");

    let blob = data.path().join("alice/files").join(sent.id.to_string());
    let (put, get) = raw_transfer(&raw_url, &blob, &data.path().join("raw-back.bin")).await;
    let raw = put + get;

    let file_mb_per_s = mib as f64 / magpie.as_secs_f64();
    let raw_mb_per_s = mib as f64 / raw.as_secs_f64();
    println!(
        "magpie: {mib} MiB sent and received in {:.2} s ({file_mb_per_s:.0} MiB/s); saved (opened and checked) in \
         {:.2} s",
        magpie.as_secs_f64(),
        save.as_secs_f64()
    );
    println!(
        "raw HTTP: the {} MiB sealed blob PUT in {:.2} s and GET in {:.2} s ({raw_mb_per_s:.0} MiB/s)",
        std::fs::metadata(&blob).unwrap().len() / MIB,
        put.as_secs_f64(),
        get.as_secs_f64()
    );
    println!(
        "peak RSS growth during the transfer: clients (Alice and Bob, one process) {} MiB, relay {} MiB",
        client_peak / 1024,
        server_peak / 1024
    );
    println!(
        "file_mb_per_s={file_mb_per_s:.0} raw_http_mb_per_s={raw_mb_per_s:.0} ratio={:.2} peak_rss_delta_mb={}",
        file_mb_per_s / raw_mb_per_s,
        client_peak.max(server_peak).div_ceil(1024)
    );
    for task in online {
        task.abort();
        let _ = task.await;
    }
    drop((alice, bob, clients));
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(server.stdin.take());
    let _ = server.wait();
}

/// Alice asks, Bob accepts, until both hold the session.
async fn handshake(alice: &Client, bob: &Client) {
    let mut alice_events = alice.events();
    let mut bob_events = bob.events();
    alice.request(bob.username()).await.unwrap();
    loop {
        if let Event::RequestReceived {
            request_id,
            fingerprint,
            ..
        } = bob_events.recv().await.unwrap()
        {
            let fingerprint = magpie_proto::Fingerprint::from_hex(&fingerprint).unwrap();
            bob.accept(request_id, &fingerprint).await.unwrap();
            break;
        }
    }
    while !matches!(alice_events.recv().await.unwrap(), Event::SessionEstablished { .. }) {}
}

fn write_file(path: &Path, len: u64) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let piece: Vec<u8> = (0..PIECE).map(|i| (i % 251) as u8).collect();
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left.min(PIECE as u64)).unwrap();
        out.write_all(&piece[..n]).unwrap();
        left -= n as u64;
    }
    out.flush().unwrap();
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::io::Read as _;
    let (mut a, mut b) = (std::fs::File::open(a).unwrap(), std::fs::File::open(b).unwrap());
    let (mut x, mut y) = (vec![0u8; PIECE], vec![0u8; PIECE]);
    loop {
        let n = a.read(&mut x).unwrap();
        let mut m = 0;
        while m < n {
            let got = b.read(&mut y[m..n]).unwrap();
            if got == 0 {
                return false;
            }
            m += got;
        }
        if x[..n] != y[..n] {
            return false;
        }
        if n == 0 {
            return b.read(&mut y).unwrap() == 0;
        }
    }
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

fn peak_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:")
}

/// Sets the process's peak RSS back to its RSS now (Linux 4.0 and later).
fn reset_peak(pid: u32) {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
}

/// Starts this program as the server: a relay and a raw HTTP server on loopback; their URLs.
fn start_server(dir: &Path) -> (Child, String, String) {
    std::fs::create_dir_all(dir).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(SERVER_ENV, dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let relay = lines.next().unwrap().unwrap();
    let raw = lines.next().unwrap().unwrap();
    (child, relay, raw)
}

/// In the child: serves the relay and the raw server until stdin closes.
async fn serve(dir: &Path) -> ! {
    // The 200 MiB is twice the default limit.
    let config = Config {
        max_file_mb: 1024,
        ..Config::with_data_dir(dir.join("relay"))
    };
    let relay = RunningRelay::start(open_state(config).unwrap()).await.unwrap();
    let raw_path = dir.join("raw.bin");
    let app = axum::Router::new().route(
        "/raw",
        axum::routing::put(put_raw).get(get_raw).with_state(Arc::new(raw_path)),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let raw_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    println!("{}", relay.url(""));
    println!("http://{raw_addr}/raw");
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_line(&mut String::new());
        std::process::exit(0);
    });
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

async fn put_raw(axum::extract::State(path): axum::extract::State<Arc<PathBuf>>, body: axum::body::Body) {
    use futures_util::StreamExt as _;
    use tokio::io::AsyncWriteExt as _;
    let mut file = tokio::fs::File::create(path.as_ref()).await.unwrap();
    let mut frames = body.into_data_stream();
    while let Some(frame) = frames.next().await {
        file.write_all(&frame.unwrap()).await.unwrap();
    }
    file.sync_data().await.unwrap();
}

async fn get_raw(axum::extract::State(path): axum::extract::State<Arc<PathBuf>>) -> axum::body::Body {
    use tokio::io::AsyncReadExt as _;
    let file = tokio::fs::File::open(path.as_ref()).await.unwrap();
    let pieces = futures_util::stream::try_unfold(file, |mut file| async move {
        let mut piece = vec![0u8; PIECE];
        let n = file.read(&mut piece).await?;
        piece.truncate(n);
        Ok::<_, std::io::Error>((n > 0).then(|| (axum::body::Bytes::from(piece), file)))
    });
    axum::body::Body::from_stream(pieces)
}

/// PUTs `blob` to the raw server in one streamed request and GETs it back into `back`: the two times.
async fn raw_transfer(url: &str, blob: &Path, back: &Path) -> (Duration, Duration) {
    use futures_util::StreamExt as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let http = reqwest::Client::new();
    let started = Instant::now();
    let file = tokio::fs::File::open(blob).await.unwrap();
    let pieces = futures_util::stream::try_unfold(file, |mut file| async move {
        let mut piece = vec![0u8; PIECE];
        let n = file.read(&mut piece).await?;
        piece.truncate(n);
        Ok::<_, std::io::Error>((n > 0).then_some((piece, file)))
    });
    let put = http
        .put(url)
        .body(reqwest::Body::wrap_stream(pieces))
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    let put_time = started.elapsed();
    let started = Instant::now();
    let response = http.get(url).send().await.unwrap();
    let mut out = tokio::fs::File::create(back).await.unwrap();
    let mut body = response.bytes_stream();
    while let Some(piece) = body.next().await {
        out.write_all(&piece.unwrap()).await.unwrap();
    }
    out.sync_data().await.unwrap();
    (put_time, started.elapsed())
}

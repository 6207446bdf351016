//! Abuse run: honest pairs chat at a steady rate through a real `magpie-relay` child with its default limits, first
//! alone, then beside one abusive client of each kind:
//!
//! - **slowloris**: 500 connections that send half a request and then a header line every 5 s, never finishing;
//! - **push flooder**: a push socket that never reads and writes 100,000 send and ack frames (reconnecting when
//!   the relay drops it);
//! - **mailbox filler**: 256 KiB envelopes to one victim as fast as HTTP takes them, on past 507;
//! - **fetch hammer**: the victim fetching its full mailbox, 1,000 at a time, as fast as it can, on past 429;
//! - **directory scanner**: lookups of made-up names as fast as it can, on past 429.
//!
//! Per-address limits (logins, registrations, connections per address) do not apply on loopback, where this
//! runs; the relay's tests cover them. Midway a new user registers, logs in and sends. Ends with
//! `abuse_rss_mb=… slowloris_closed_s=… honest_p99_ms_under_abuse=… honest_p99_ms_quiet=…`.
//!
//! ```text
//! cargo build --release -p magpie-relay --bin magpie-relay --example abuse
//! target/release/examples/abuse
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout)]

#[path = "support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use clap::Parser;
use futures_util::{SinkExt as _, StreamExt as _};
use magpie_proto::{Identity, Username};
use magpie_tests::relay_api::RelayApi;
use serde_json::json;
use support::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Parser)]
struct Args {
    /// The relay binary (default: next to this example's directory).
    #[arg(long)]
    relay_bin: Option<PathBuf>,
    /// Honest sender→receiver pairs.
    #[arg(long, default_value_t = 50)]
    pairs: usize,
    /// Envelopes per second the honest senders offer in all.
    #[arg(long, default_value_t = 500)]
    rate: u64,
    /// Seconds measured before the abuse.
    #[arg(long, default_value_t = 20)]
    quiet_secs: u64,
    /// Seconds measured under abuse (longer than the relay's 30 s header-read timeout).
    #[arg(long, default_value_t = 40)]
    abuse_secs: u64,
    /// Slowloris connections.
    #[arg(long, default_value_t = 500)]
    slowloris: usize,
    /// Frames the push flooder writes.
    #[arg(long, default_value_t = 100_000)]
    flood_frames: u64,
    /// Which abusers run (to see what each costs).
    #[arg(long, value_delimiter = ',', default_value = "slowloris,flood,fill,hammer,scan")]
    abusers: Vec<String>,
}

/// What the abusers did, for the report.
#[derive(Default)]
struct Tally {
    flood_frames: AtomicU64,
    flood_connections: AtomicU64,
    filler: [AtomicU64; 3],
    hammer: [AtomicU64; 2],
    hammer_bytes: AtomicU64,
    scanner: [AtomicU64; 3],
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    epoch();
    let relay = Relay::start(args.relay_bin.clone(), &[]);
    let http = reqwest::Client::new();
    let mut names: Vec<String> = (0..args.pairs)
        .flat_map(|i| [format!("s{i:05}"), format!("r{i:05}")])
        .collect();
    names.extend(["flooder", "filler", "victim", "scanner"].map(String::from));
    let tokens = relay.users(&http, &names).await;
    let token = |name: &str| tokens[names.iter().position(|n| n == name).unwrap()].clone();

    let window = Window::new();
    let pace = Duration::from_secs_f64(args.pairs as f64 / args.rate as f64);
    let mut tasks = Vec::new();
    for pair in 0..args.pairs {
        let ws = ws_connect(&relay.addr, &tokens[2 * pair + 1]).await;
        tasks.push(receive(ws, window.clone(), Ack::OnSocket(Duration::from_millis(50))));
        let to = format!("r{pair:05}");
        let sender = ws_sender(&relay.addr, &tokens[2 * pair], to, 4, Some(pace), 256, window.clone());
        tasks.extend(sender.await);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (quiet_rate, _, quiet_p99) = window.measure(args.quiet_secs).await;
    let quiet_rss = rss_mb(relay.pid);
    eprintln!("quiet: {quiet_rate:.0} envelopes/s, p99 {quiet_p99:.2} ms, relay rss {quiet_rss:.1} MB");

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let peak_rss_kb = Arc::new(AtomicU64::new(0));
    tasks.push(sample_rss(relay.pid, peak_rss_kb.clone()));
    let on = |name: &str| args.abusers.iter().any(|a| a == name);
    let slowloris = tokio::spawn(slowloris(
        relay.addr.clone(),
        if on("slowloris") { args.slowloris } else { 0 },
    ));
    let mut abusers = Vec::new();
    if on("flood") {
        let frames = args.flood_frames;
        abusers.push(tokio::spawn(flood(
            relay.addr.clone(),
            token("flooder"),
            frames,
            tally.clone(),
            stop.clone(),
        )));
    }
    if on("fill") {
        abusers.push(tokio::spawn(fill(
            http.clone(),
            relay.base.clone(),
            token("filler"),
            tally.clone(),
            stop.clone(),
        )));
    }
    if on("hammer") {
        abusers.push(tokio::spawn(hammer(
            http.clone(),
            relay.base.clone(),
            token("victim"),
            tally.clone(),
            stop.clone(),
        )));
    }
    if on("scan") {
        abusers.push(tokio::spawn(scan(
            http.clone(),
            relay.base.clone(),
            token("scanner"),
            tally.clone(),
            stop.clone(),
        )));
    }
    let newcomer = tokio::spawn(newcomer(http.clone(), relay.base.clone(), relay.fingerprint));
    let (abuse_rate, _, abuse_p99) = window.measure(args.abuse_secs).await;
    stop.store(true, Relaxed);
    let (closed, closed_s) = slowloris.await.unwrap();
    let newcomer_ms = newcomer.await.unwrap();
    for a in abusers {
        a.abort();
    }
    for t in tasks {
        t.abort();
    }
    let peak_rss = peak_rss_kb.load(Relaxed) as f64 / 1024.0;
    let n = |c: &AtomicU64| c.load(Relaxed);
    eprintln!("under abuse: {abuse_rate:.0} honest envelopes/s, p99 {abuse_p99:.2} ms");
    eprintln!(
        "slowloris: {closed} of {} closed by the relay, the last after {closed_s:.1} s",
        args.slowloris
    );
    eprintln!(
        "push flooder: {} frames written over {} connections",
        n(&tally.flood_frames),
        n(&tally.flood_connections)
    );
    let [stored, full, limited] = &tally.filler;
    eprintln!(
        "mailbox filler: {} stored, {} mailbox_full, {} rate_limited",
        n(stored),
        n(full),
        n(limited)
    );
    let [pages, refused] = &tally.hammer;
    eprintln!(
        "fetch hammer: {} pages ({:.0} MB), {} rate_limited",
        n(pages),
        n(&tally.hammer_bytes) as f64 / 1e6,
        n(refused)
    );
    let [found, missing, limited] = &tally.scanner;
    eprintln!(
        "directory scanner: {} found, {} not found, {} rate_limited",
        n(found),
        n(missing),
        n(limited)
    );
    eprintln!(
        "a newcomer registered, logged in and sent under abuse in {newcomer_ms:.0} ms; relay \
         metrics: rate_limited {}",
        relay.metric(&http, "magpie_rate_limited_total").await
    );
    println!(
        "abuse_rss_mb={peak_rss:.1} slowloris_closed_s={closed_s:.1} honest_p99_ms_under_abuse={abuse_p99:.2} \
         honest_p99_ms_quiet={quiet_p99:.2}"
    );
}

/// The relay's peak RSS, sampled every 250 ms, in KiB.
fn sample_rss(pid: u32, peak_kb: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            peak_kb.fetch_max((rss_mb(pid) * 1024.0) as u64, Relaxed);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
}

/// Opens `n` connections that never finish their request; returns how many the relay closed within 120 s and
/// the longest any of those stayed open (s).
async fn slowloris(addr: String, n: usize) -> (usize, f64) {
    let conns = (0..n).map(|_| {
        let addr = addr.clone();
        tokio::spawn(async move {
            let opened = Instant::now();
            let mut tcp = tokio::net::TcpStream::connect(&addr).await.ok()?;
            tcp.write_all(b"GET /v1/health HTTP/1.1\r\nHost: relay\r\n")
                .await
                .ok()?;
            let mut buf = [0u8; 512];
            let deadline = tokio::time::sleep(Duration::from_secs(120));
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    read = tcp.read(&mut buf) => match read {
                        // The relay may answer 408 before it closes; either way it hung up.
                        Ok(0) | Err(_) => return Some(opened.elapsed().as_secs_f64()),
                        Ok(_) => {}
                    },
                    () = tokio::time::sleep(Duration::from_secs(5)) => {
                        if tcp.write_all(b"X-Slow: still here\r\n").await.is_err() {
                            return Some(opened.elapsed().as_secs_f64());
                        }
                    }
                    () = &mut deadline => return None,
                }
            }
        })
    });
    let mut closed = Vec::new();
    for c in conns.collect::<Vec<_>>() {
        if let Some(s) = c.await.unwrap() {
            closed.push(s);
        }
    }
    (closed.len(), closed.iter().copied().fold(0.0, f64::max))
}

/// A push socket that writes send and ack frames and never reads.
async fn flood(addr: String, token: String, frames: u64, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    while tally.flood_frames.load(Relaxed) < frames && !stop.load(Relaxed) {
        let (mut sink, _unread) = ws_connect(&addr, &token).await.split();
        tally.flood_connections.fetch_add(1, Relaxed);
        while tally.flood_frames.load(Relaxed) < frames {
            let i = tally.flood_frames.load(Relaxed);
            let frame = if i.is_multiple_of(2) {
                json!({"type": "send", "id": uuid::Uuid::new_v4(), "to": "victim", "kind": "message",
                    "body": STANDARD.encode([7u8; 64])})
            } else {
                json!({"type": "ack", "ids": [uuid::Uuid::new_v4()]})
            };
            if sink.send(Message::text(frame.to_string())).await.is_err() {
                break;
            }
            tally.flood_frames.fetch_add(1, Relaxed);
        }
    }
}

/// 256 KiB envelopes to the victim, as fast as they are answered.
async fn fill(http: reqwest::Client, base: String, token: String, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    let api = RelayApi::new(&http, &base).with_token(&token);
    let body = STANDARD.encode(vec![9u8; 256 * 1024]);
    while !stop.load(Relaxed) {
        let envelope = magpie_api::SendRequest {
            id: uuid::Uuid::new_v4(),
            from: None,
            to: "victim".into(),
            kind: magpie_proto::EnvelopeKind::Message,
            body: body.clone().into(),
        };
        let slot = match api.send(&envelope).await {
            Ok(_) => 0,
            Err(r) if r.status == 507 => 1,
            Err(r) if r.status == 429 => 2,
            Err(r) => panic!("filler: {r:?}"),
        };
        tally.filler[slot].fetch_add(1, Relaxed);
    }
}

/// The victim fetching its whole mailbox over and over, never acknowledging.
async fn hammer(http: reqwest::Client, base: String, token: String, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    while !stop.load(Relaxed) {
        let response = http
            .get(format!("{base}/v1/envelopes?after=0&limit=1000"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap().len() as u64;
        match status {
            200 => {
                tally.hammer[0].fetch_add(1, Relaxed);
                tally.hammer_bytes.fetch_add(bytes, Relaxed);
            }
            429 => {
                tally.hammer[1].fetch_add(1, Relaxed);
            }
            other => panic!("fetch hammer: {other}"),
        }
    }
}

/// Directory lookups of made-up names.
async fn scan(http: reqwest::Client, base: String, token: String, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    let api = RelayApi::new(&http, &base).with_token(&token);
    let mut i = 0u64;
    while !stop.load(Relaxed) {
        i += 1;
        let slot = match api.lookup(&format!("guess{i}")).await {
            Ok(_) => 0,
            Err(r) if r.status == 404 => 1,
            Err(r) if r.status == 429 => 2,
            Err(r) => panic!("scanner: {r:?}"),
        };
        tally.scanner[slot].fetch_add(1, Relaxed);
    }
}

/// Ten seconds into the abuse, a new user registers, logs in and sends one envelope: how long that took (ms).
async fn newcomer(http: reqwest::Client, base: String, fingerprint: [u8; 32]) -> f64 {
    tokio::time::sleep(Duration::from_secs(10)).await;
    let identity = Identity::generate(Username::canonical("newcomer").unwrap()).unwrap();
    let started = Instant::now();
    let mut api = RelayApi::new(&http, &base);
    api.register(&identity).await.unwrap();
    api.login(&identity, &fingerprint).await.unwrap();
    let envelope = magpie_api::SendRequest {
        id: uuid::Uuid::new_v4(),
        from: None,
        to: "r00000".into(),
        kind: magpie_proto::EnvelopeKind::Message,
        body: STANDARD.encode(stamp(64)).into(),
    };
    api.send(&envelope).await.unwrap();
    started.elapsed().as_secs_f64() * 1e3
}

//! Load generator: N sender→receiver pairs against a real `magpie-relay` child on loopback.
//!
//! Senders POST envelopes (each with its send time in the body); receivers hold a push WebSocket,
//! measure send→push latency and acknowledge what they got every `--ack-every-ms`, as clients do.
//! Optionally opens many idle push connections, and runs a raw axum WebSocket echo baseline in the
//! same run. Ends with
//! `relay_msgs_per_s=… p50_ms=… p99_ms=… rss_mb=…`.
//!
//! ```text
//! cargo build --release -p magpie-relay --bin magpie-relay --example load
//! target/release/examples/load --pairs 100 --secs 10 --idle 10000 --baseline
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout)]

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use clap::Parser;
use futures_util::{SinkExt as _, StreamExt as _};
use magpie_proto::{Identity, Username};
use magpie_relay::api::{READ_BUFFER_BYTES, WRITE_BUFFER_BYTES};
use magpie_tests::relay_api::RelayApi;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Parser)]
struct Args {
    /// The relay binary (default: next to this example's directory).
    #[arg(long)]
    relay_bin: Option<PathBuf>,
    /// Sender→receiver pairs.
    #[arg(long, default_value_t = 100)]
    pairs: usize,
    /// Measured seconds (after 1 s of warm-up).
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Requests each sender keeps in flight.
    #[arg(long, default_value_t = 4)]
    inflight: usize,
    /// Envelope body bytes.
    #[arg(long, default_value_t = 256)]
    body_bytes: usize,
    /// Idle push connections to open afterwards (RSS reported).
    #[arg(long, default_value_t = 0)]
    idle: usize,
    /// Also run a raw axum WebSocket echo with the same pairs and in-flight window.
    #[arg(long)]
    baseline: bool,
    /// How senders send: `ws` (frames on their push socket) or `http` (POST /v1/envelopes).
    #[arg(long, default_value = "ws")]
    send_via: String,
    /// Relay `--sync` mode.
    #[arg(long, default_value = "flush")]
    sync: String,
    /// Total envelopes per second to offer, spread over the senders (0: as fast as the in-flight window allows;
    /// `--send-via ws` only). With a rate below saturation the latencies are those of a relay that keeps up. An open
    /// loop: latency counts from when each envelope was due, so it includes the senders' own lateness (reported).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// How often receivers acknowledge what they got, as clients do (0: never, and mailboxes only grow).
    #[arg(long, default_value_t = 50)]
    ack_every_ms: u64,
    /// How receivers acknowledge: `ws` (a frame on their push socket, as clients do) or `http` (POST /v1/envelopes/ack)
    #[arg(long, default_value = "ws")]
    ack_via: String,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// A body carrying the time it was sent (or, paced, was due to be sent).
fn stamp(body_bytes: usize) -> Vec<u8> {
    stamp_at(body_bytes, Instant::now())
}

fn stamp_at(body_bytes: usize, at: Instant) -> Vec<u8> {
    let mut body = vec![0u8; body_bytes.max(8)];
    let nanos = u64::try_from(at.duration_since(epoch()).as_nanos()).unwrap();
    body[..8].copy_from_slice(&nanos.to_le_bytes());
    body
}

/// A random number in [0, 1) (from a v4 UUID): enough to spread senders' phases.
fn rand_unit() -> f64 {
    f64::from(uuid::Uuid::new_v4().as_bytes()[0]) / 256.0
}

/// A push or an answer, read without copying: the load generator shares the CPU with the relay it measures.
#[derive(serde::Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(borrow)]
    envelope: Option<PushedEnvelope<'a>>,
}

#[derive(serde::Deserialize)]
struct PushedEnvelope<'a> {
    id: uuid::Uuid,
    #[serde(borrow)]
    body: &'a str,
}

/// [`latency_of`] a base64 body, decoding only its first 12 characters (the 8 bytes of the stamp).
fn latency_of_b64(body_b64: &str) -> Option<Duration> {
    latency_of(&STANDARD.decode(body_b64.get(..12)?).ok()?)
}

fn latency_of(body: &[u8]) -> Option<Duration> {
    let nanos = u64::from_le_bytes(body.get(..8)?.try_into().ok()?);
    Some(epoch().elapsed().saturating_sub(Duration::from_nanos(nanos)))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

struct Window {
    measuring: AtomicBool,
    stop: AtomicBool,
    sent: AtomicU64,
    latencies: Mutex<Vec<Duration>>,
    /// Paced senders: how late each envelope left after it was due (the generator's own delay, inside the latency).
    lateness: Mutex<Vec<Duration>>,
}

impl Window {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            measuring: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            latencies: Mutex::new(Vec::new()),
            lateness: Mutex::new(Vec::new()),
        })
    }

    async fn run(&self, secs: u64) -> (f64, f64, f64) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.measuring.store(true, Relaxed);
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(secs)).await;
        self.measuring.store(false, Relaxed);
        let elapsed = started.elapsed().as_secs_f64();
        self.stop.store(true, Relaxed);
        let mut lat = std::mem::take(&mut *self.latencies.lock().unwrap());
        lat.sort();
        let rate = lat.len() as f64 / elapsed;
        (rate, percentile(&lat, 0.5), percentile(&lat, 0.99))
    }

    fn record(&self, d: Duration) {
        if self.measuring.load(Relaxed) {
            self.latencies.lock().unwrap().push(d);
        }
    }

    fn record_lateness(&self, d: Duration) {
        if self.measuring.load(Relaxed) {
            self.lateness.lock().unwrap().push(d);
        }
    }

    /// p50 and p99 of the paced senders' lateness, ms.
    fn lateness(&self) -> (f64, f64) {
        let mut late = std::mem::take(&mut *self.lateness.lock().unwrap());
        late.sort();
        (percentile(&late, 0.5), percentile(&late, 0.99))
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    epoch();
    let bin = args.relay_bin.clone().unwrap_or_else(|| {
        let exe = std::env::current_exe().unwrap();
        exe.parent().unwrap().parent().unwrap().join("magpie-relay")
    });
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(&bin)
        .args([
            "--data",
            data.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--sync",
            &args.sync,
        ])
        .args([
            "--send-per-second",
            "10000000",
            "--send-burst",
            "10000000",
            "--login-per-minute",
            "1000000",
        ])
        .env("RUST_LOG", "warn,magpie_relay=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let pid = child.id();
    let stderr = child.stderr.take().unwrap();
    let child = KillOnDrop(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("magpie-relay listening") {
                let _ = tx.send(line);
            } else if line.contains("ERROR") || line.contains("WARN") {
                eprintln!("relay: {line}");
            }
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(60)).expect("relay did not start");
    let start = line.find("listen=").unwrap() + 7;
    let addr = line[start..].split_whitespace().next().unwrap().to_owned();
    let fp_start = line.find("ca_fingerprint_sha256=").unwrap() + 22;
    let fingerprint = magpie_proto::Fingerprint::from_hex(line[fp_start..].split_whitespace().next().unwrap())
        .unwrap()
        .as_bytes()
        .to_owned();
    let base = format!("http://{addr}");
    eprintln!("relay pid {pid} on {addr}; rss at start {:.1} MB", rss_mb(pid));

    // One RSA key for every simulated user: key generation is slow and the relay does not care.
    let key = Identity::generate(Username::canonical("loadgen").unwrap())
        .unwrap()
        .to_pkcs8_der()
        .unwrap();
    let key = Arc::new(key.expose_secret().to_vec());
    let http = reqwest::Client::builder().pool_max_idle_per_host(1024).build().unwrap();
    let names: Vec<String> = (0..args.pairs)
        .flat_map(|i| [format!("s{i:05}"), format!("r{i:05}")])
        .collect();
    let mut tokens = Vec::new();
    for chunk in names.chunks(32) {
        let logins = chunk.iter().map(|name| {
            let (http, base, key, name) = (http.clone(), base.clone(), key.clone(), name.clone());
            tokio::spawn(async move { setup_user(&http, &base, &key, &name, &fingerprint).await })
        });
        for t in logins {
            tokens.push(t.await.unwrap());
        }
    }
    eprintln!("{} users registered and logged in", names.len());

    let window = Window::new();
    let mut tasks = Vec::new();
    for pair in 0..args.pairs {
        let (sender, receiver) = (tokens[2 * pair].clone(), tokens[2 * pair + 1].clone());
        let mut ws = ws_connect(&addr, &receiver).await;
        let w = window.clone();
        let (acker, ack_base, ack_every_ms) = (http.clone(), base.clone(), args.ack_every_ms);
        let ack_on_socket = args.ack_via == "ws";
        tasks.push(tokio::spawn(async move {
            let mut received = Vec::new();
            let mut ack_tick = tokio::time::interval(Duration::from_millis(ack_every_ms.max(1)));
            loop {
                tokio::select! {
                    msg = ws.next() => {
                        let Some(Ok(msg)) = msg else { break };
                        if let Message::Text(t) = msg {
                            let frame: Frame<'_> = serde_json::from_str(&t).unwrap();
                            let Some(envelope) = frame.envelope else {
                                assert_eq!(frame.kind, "acked", "{t}");
                                continue;
                            };
                            if let Some(d) = latency_of_b64(envelope.body) {
                                w.record(d);
                            }
                            if ack_every_ms > 0 {
                                received.push(envelope.id);
                            }
                        }
                    }
                    _ = ack_tick.tick(), if !received.is_empty() => {
                        for ids in std::mem::take(&mut received).chunks(1000) {
                            if ack_on_socket {
                                let frame = json!({"type": "ack", "ids": ids}).to_string();
                                if ws.send(Message::text(frame)).await.is_err() && !w.stop.load(Relaxed) {
                                    panic!("ack frame refused");
                                }
                                continue;
                            }
                            let r = acker.post(format!("{ack_base}/v1/envelopes/ack")).bearer_auth(&receiver)
                                .json(&json!({"ids": ids})).send().await;
                            // Ends with the run: the relay's socket may close under a last ack.
                            if !r.is_ok_and(|r| r.status() == 200) && !w.stop.load(Relaxed) {
                                panic!("ack refused");
                            }
                        }
                    }
                }
                if w.stop.load(Relaxed) {
                    break;
                }
            }
        }));
        let to = format!("r{pair:05}");
        if args.send_via == "ws" {
            let pace = (args.rate > 0).then(|| Duration::from_secs_f64(args.pairs as f64 / args.rate as f64));
            tasks.extend(ws_sender(&addr, &sender, to, args.inflight, pace, args.body_bytes, window.clone()).await);
            continue;
        }
        for _ in 0..args.inflight {
            let (http, base, sender, to, w) = (http.clone(), base.clone(), sender.clone(), to.clone(), window.clone());
            let body_bytes = args.body_bytes;
            tasks.push(tokio::spawn(async move {
                while !w.stop.load(Relaxed) {
                    let e = json!({"id": uuid::Uuid::new_v4(), "to": to, "kind": "message",
                        "body": STANDARD.encode(stamp(body_bytes))});
                    let r = http
                        .post(format!("{base}/v1/envelopes"))
                        .bearer_auth(&sender)
                        .json(&e)
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status() == 202 => {
                            w.sent.fetch_add(1, Relaxed);
                        }
                        Ok(r) => panic!("send refused: {} {}", r.status(), r.text().await.unwrap_or_default()),
                        Err(e) => panic!("send failed: {e}"),
                    }
                }
            }));
        }
    }
    let (rate, p50, p99) = window.run(args.secs).await;
    let rss = rss_mb(pid);
    if args.rate > 0 {
        let (late50, late99) = window.lateness();
        eprintln!(
            "latency is timed from when each envelope was due; the senders' own lateness in it: \
             p50 {late50:.2} ms, p99 {late99:.2} ms"
        );
    }
    for t in tasks {
        t.abort();
    }
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let metric = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    eprintln!(
        "store flushes {} for {} envelopes ({:.1} per flush)",
        metric("magpie_store_flushes_total"),
        metric("magpie_store_flush_waiters_total"),
        metric("magpie_store_flush_waiters_total") / metric("magpie_store_flushes_total")
    );

    if args.idle > 0 {
        let mut idle = Vec::with_capacity(args.idle);
        let before = rss_mb(pid);
        for _ in 0..args.idle {
            idle.push(ws_connect(&addr, &tokens[1]).await);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = rss_mb(pid);
        println!(
            "idle_clients={} connected={} relay_rss_mb={after:.1} per_client_kb={:.1}",
            args.idle,
            idle.len(),
            (after - before) * 1024.0 / args.idle as f64
        );
    }

    if args.baseline {
        let (b_rate, b_p50, b_p99) = echo_baseline(args.pairs, args.inflight, args.body_bytes, args.secs).await;
        println!("baseline_ws_echo_msgs_per_s={b_rate:.0} p50_ms={b_p50:.2} p99_ms={b_p99:.2}");
        println!("ratio_relay_to_echo={:.3}", rate / b_rate);
    }
    drop(child);
    println!("relay_msgs_per_s={rate:.0} p50_ms={p50:.2} p99_ms={p99:.2} rss_mb={rss:.1}");
}

/// Ends the relay child however this program ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn setup_user(http: &reqwest::Client, base: &str, key: &[u8], name: &str, fingerprint: &[u8; 32]) -> String {
    let identity = Identity::from_pkcs8_der(Username::canonical(name).unwrap(), key).unwrap();
    let mut api = RelayApi::new(http, base);
    api.register(&identity).await.unwrap();
    api.login(&identity, fingerprint).await.unwrap().token
}

/// A sender that sends frames on its own push socket, `inflight` unanswered at most, one per `pace` if given.
async fn ws_sender(
    addr: &str,
    token: &str,
    to: String,
    inflight: usize,
    pace: Option<Duration>,
    body_bytes: usize,
    w: Arc<Window>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let (mut sink, mut stream) = ws_connect(addr, token).await.split();
    let permits = Arc::new(tokio::sync::Semaphore::new(inflight));
    let (p, w2) = (permits.clone(), w.clone());
    let reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            if let Message::Text(t) = msg {
                let frame: Frame<'_> = serde_json::from_str(&t).unwrap();
                assert_eq!(frame.kind, "accepted", "{t}");
                w2.sent.fetch_add(1, Relaxed);
                p.add_permits(1);
            }
        }
    });
    let writer = tokio::spawn(async move {
        // Senders start out of phase, so a paced load arrives spread over each interval.
        let mut ticks = pace.map(|p| {
            let phase = p.mul_f64(rand_unit());
            // An open loop: a sender that fell behind catches up, so the offered rate is the one asked for, and
            // each envelope is timed from when it was due, so a slow relay cannot hide its delay by slowing the
            // senders down (coordinated omission).
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + phase, p);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            t
        });
        while !w.stop.load(Relaxed) {
            let due = match ticks.as_mut() {
                Some(t) => t.tick().await.into_std(),
                None => Instant::now(),
            };
            permits.acquire().await.unwrap().forget();
            if ticks.is_some() {
                w.record_lateness(due.elapsed());
            }
            let frame = json!({"type": "send", "id": uuid::Uuid::new_v4(), "to": to, "kind": "message",
                "body": STANDARD.encode(stamp_at(body_bytes, due))});
            if sink.send(Message::text(frame.to_string())).await.is_err() {
                break;
            }
        }
    });
    vec![reader, writer]
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(addr: &str, token: &str) -> Ws {
    let mut request = format!("ws://{addr}/v1/push").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async_with_config(request, Some(client_ws_config()), true)
        .await
        .unwrap();
    ws
}

/// The relay's buffer sizes, which magpie-core's push client uses too: tungstenite zeroes its whole read buffer
/// (128 KiB by default) on every read, which cost the load generator a third of its CPU, taken from the relay it
/// shares cores with.
fn client_ws_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
}

/// A raw axum WebSocket echo on loopback, driven like the relay: `pairs` connections, `inflight` each.
async fn echo_baseline(pairs: usize, inflight: usize, body_bytes: usize, secs: u64) -> (f64, f64, f64) {
    use axum::extract::ws::WebSocketUpgrade;
    use axum::serve::ListenerExt as _;
    let app = axum::Router::new().route(
        "/echo",
        axum::routing::get(|ws: WebSocketUpgrade| async move {
            // The relay's buffer sizes, so the baseline differs from it only in what the relay does.
            ws.read_buffer_size(READ_BUFFER_BYTES)
                .write_buffer_size(WRITE_BUFFER_BYTES)
                .on_upgrade(|mut socket| async move {
                    while let Some(Ok(msg)) = socket.recv().await {
                        if socket.send(msg).await.is_err() {
                            break;
                        }
                    }
                })
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let window = Window::new();
    let mut tasks = Vec::new();
    for _ in 0..pairs {
        let (ws, _) =
            tokio_tungstenite::connect_async_with_config(format!("ws://{addr}/echo"), Some(client_ws_config()), true)
                .await
                .unwrap();
        let (mut sink, mut stream) = ws.split();
        let permits = Arc::new(tokio::sync::Semaphore::new(inflight));
        let (w, p) = (window.clone(), permits.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(Message::Binary(b))) = stream.next().await {
                if let Some(d) = latency_of(&b) {
                    w.record(d);
                }
                p.add_permits(1);
            }
        }));
        let w = window.clone();
        tasks.push(tokio::spawn(async move {
            while !w.stop.load(Relaxed) {
                permits.acquire().await.unwrap().forget();
                if sink.send(Message::Binary(stamp(body_bytes).into())).await.is_err() {
                    break;
                }
            }
        }));
    }
    let result = window.run(secs).await;
    for t in tasks {
        t.abort();
    }
    server.abort();
    result
}

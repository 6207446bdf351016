//! What the relay's load examples share: a relay child on loopback, users, push sockets, timed bodies and the
//! window that collects their latencies.
#![allow(dead_code, reason = "shared by load.rs and abuse.rs; each uses part of it")]

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use magpie_proto::{Identity, Username};
use magpie_relay::api::{READ_BUFFER_BYTES, WRITE_BUFFER_BYTES};
use magpie_tests::relay_api::RelayApi;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::Message;

/// A `magpie-relay` child on an ephemeral loopback port, killed when dropped.
pub struct Relay {
    _child: KillOnDrop,
    _data: tempfile::TempDir,
    pub pid: u32,
    /// `127.0.0.1:port`.
    pub addr: String,
    /// `http://127.0.0.1:port`.
    pub base: String,
    pub fingerprint: [u8; 32],
}

impl Relay {
    /// Starts `bin` (default: the `magpie-relay` next to this example's directory) with `args`.
    pub fn start(bin: Option<PathBuf>, args: &[&str]) -> Self {
        let bin = bin.unwrap_or_else(|| {
            let exe = std::env::current_exe().unwrap();
            exe.parent().unwrap().parent().unwrap().join("magpie-relay")
        });
        let data = tempfile::tempdir().unwrap();
        let mut child = Command::new(&bin)
            .args(["--data", data.path().to_str().unwrap(), "--listen", "127.0.0.1:0"])
            .args(args)
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
                } else if line.contains("ERROR") {
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
        Self {
            _child: child,
            _data: data,
            pid,
            addr,
            base,
            fingerprint,
        }
    }

    /// Registers and logs in `names` (32 at a time), all with one key (key generation is slow and the relay does
    /// not care): their tokens, in order.
    pub async fn users(&self, http: &reqwest::Client, names: &[String]) -> Vec<String> {
        let key = Identity::generate(Username::canonical("loadgen").unwrap())
            .unwrap()
            .to_pkcs8_der()
            .unwrap();
        let key = Arc::new(key.expose_secret().to_vec());
        let mut tokens = Vec::new();
        for chunk in names.chunks(32) {
            let logins = chunk.iter().map(|name| {
                let (http, base, key, name, fingerprint) = (
                    http.clone(),
                    self.base.clone(),
                    key.clone(),
                    name.clone(),
                    self.fingerprint,
                );
                tokio::spawn(async move { setup_user(&http, &base, &key, &name, &fingerprint).await })
            });
            for t in logins {
                tokens.push(t.await.unwrap());
            }
        }
        tokens
    }

    /// One counter of the relay's `/metrics`.
    pub async fn metric(&self, http: &reqwest::Client, name: &str) -> f64 {
        let metrics = http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    }
}

pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// A body carrying the time it was sent (or, paced, was due to be sent).
pub fn stamp(body_bytes: usize) -> Vec<u8> {
    stamp_at(body_bytes, Instant::now())
}

pub fn stamp_at(body_bytes: usize, at: Instant) -> Vec<u8> {
    let mut body = vec![0u8; body_bytes.max(8)];
    let nanos = u64::try_from(at.duration_since(epoch()).as_nanos()).unwrap();
    body[..8].copy_from_slice(&nanos.to_le_bytes());
    body
}

/// A random number in [0, 1) (from a v4 UUID): enough to spread senders' phases.
pub fn rand_unit() -> f64 {
    f64::from(uuid::Uuid::new_v4().as_bytes()[0]) / 256.0
}

/// A push or an answer, read without copying: the load generator shares the CPU with the relay it measures.
#[derive(serde::Deserialize)]
pub struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: &'a str,
    #[serde(borrow)]
    pub envelope: Option<PushedEnvelope<'a>>,
}

#[derive(serde::Deserialize)]
pub struct PushedEnvelope<'a> {
    pub id: uuid::Uuid,
    #[serde(borrow)]
    pub body: &'a str,
}

/// [`latency_of`] a base64 body, decoding only its first 12 characters (the 8 bytes of the stamp).
pub fn latency_of_b64(body_b64: &str) -> Option<Duration> {
    latency_of(&STANDARD.decode(body_b64.get(..12)?).ok()?)
}

pub fn latency_of(body: &[u8]) -> Option<Duration> {
    let nanos = u64::from_le_bytes(body.get(..8)?.try_into().ok()?);
    Some(epoch().elapsed().saturating_sub(Duration::from_nanos(nanos)))
}

pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

pub fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

pub struct Window {
    pub measuring: AtomicBool,
    pub stop: AtomicBool,
    pub sent: AtomicU64,
    pub latencies: Mutex<Vec<Duration>>,
    /// Paced senders: how late each envelope left after it was due (the generator's own delay, inside the latency).
    pub lateness: Mutex<Vec<Duration>>,
}

impl Window {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            measuring: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            latencies: Mutex::new(Vec::new()),
            lateness: Mutex::new(Vec::new()),
        })
    }

    /// Warms up for 1 s, measures for `secs`, then stops the senders: envelopes per second, p50 and p99 (ms).
    pub async fn run(&self, secs: u64) -> (f64, f64, f64) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let measured = self.measure(secs).await;
        self.stop.store(true, Relaxed);
        measured
    }

    /// Measures for `secs` while the senders go on.
    pub async fn measure(&self, secs: u64) -> (f64, f64, f64) {
        self.measuring.store(true, Relaxed);
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(secs)).await;
        self.measuring.store(false, Relaxed);
        let elapsed = started.elapsed().as_secs_f64();
        let mut lat = std::mem::take(&mut *self.latencies.lock().unwrap());
        lat.sort();
        let rate = lat.len() as f64 / elapsed;
        (rate, percentile(&lat, 0.5), percentile(&lat, 0.99))
    }

    pub fn record(&self, d: Duration) {
        if self.measuring.load(Relaxed) {
            self.latencies.lock().unwrap().push(d);
        }
    }

    pub fn record_lateness(&self, d: Duration) {
        if self.measuring.load(Relaxed) {
            self.lateness.lock().unwrap().push(d);
        }
    }

    /// p50 and p99 of the paced senders' lateness, ms.
    pub fn lateness(&self) -> (f64, f64) {
        let mut late = std::mem::take(&mut *self.lateness.lock().unwrap());
        late.sort();
        (percentile(&late, 0.5), percentile(&late, 0.99))
    }
}

/// Ends the relay child however this program ends.
pub struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub async fn setup_user(http: &reqwest::Client, base: &str, key: &[u8], name: &str, fingerprint: &[u8; 32]) -> String {
    let identity = Identity::from_pkcs8_der(Username::canonical(name).unwrap(), key).unwrap();
    let mut api = RelayApi::new(http, base);
    api.register(&identity).await.unwrap();
    api.login(&identity, fingerprint).await.unwrap().token
}

/// A sender that sends frames on its own push socket, `inflight` unanswered at most, one per `pace` if given.
pub async fn ws_sender(
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

/// How a receiver acknowledges what it got.
pub enum Ack {
    /// Never: mailboxes only grow.
    Never,
    /// With a frame on its push socket this often, as clients do.
    OnSocket(Duration),
    /// With `POST /v1/envelopes/ack` this often (client, relay URL, token).
    OverHttp(Duration, reqwest::Client, String, String),
}

/// A receiver on its push socket: records each envelope's latency in `w` and acknowledges as `ack` says.
pub fn receive(mut ws: Ws, w: Arc<Window>, ack: Ack) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = match &ack {
            Ack::Never => Duration::from_secs(3600),
            Ack::OnSocket(every) | Ack::OverHttp(every, ..) => *every,
        };
        let mut received = Vec::new();
        let mut ack_tick = tokio::time::interval(every.max(Duration::from_millis(1)));
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
                        if !matches!(ack, Ack::Never) {
                            received.push(envelope.id);
                        }
                    }
                }
                _ = ack_tick.tick(), if !received.is_empty() => {
                    for ids in std::mem::take(&mut received).chunks(1000) {
                        let acked = match &ack {
                            Ack::Never => true,
                            Ack::OnSocket(_) => {
                                let frame = json!({"type": "ack", "ids": ids}).to_string();
                                ws.send(Message::text(frame)).await.is_ok()
                            }
                            Ack::OverHttp(_, http, base, token) => {
                                let r = http.post(format!("{base}/v1/envelopes/ack")).bearer_auth(token)
                                    .json(&json!({"ids": ids})).send().await;
                                r.is_ok_and(|r| r.status() == 200)
                            }
                        };
                        // Ends with the run: the relay's socket may close under a last ack.
                        assert!(acked || w.stop.load(Relaxed), "ack refused");
                    }
                }
            }
            if w.stop.load(Relaxed) {
                break;
            }
        }
    })
}

pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn ws_connect(addr: &str, token: &str) -> Ws {
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
pub fn client_ws_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
}

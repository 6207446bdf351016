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

#[path = "support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use clap::Parser;
use futures_util::{SinkExt as _, StreamExt as _};
use magpie_relay::api::{READ_BUFFER_BYTES, WRITE_BUFFER_BYTES};
use serde_json::json;
use support::*;
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
    /// Run the relay on this PostgreSQL database (its `--database`) instead of its embedded store.
    #[arg(long)]
    database: Option<String>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    epoch();
    let mut relay_args = vec![
        "--sync",
        &args.sync,
        "--send-per-second",
        "10000000",
        "--send-burst",
        "10000000",
        "--login-per-minute",
        "1000000",
    ];
    if let Some(database) = &args.database {
        relay_args.extend(["--database", database]);
    }
    let relay = Relay::start(args.relay_bin.clone(), &relay_args);
    let (pid, addr, base) = (relay.pid, relay.addr.clone(), relay.base.clone());
    let http = reqwest::Client::builder().pool_max_idle_per_host(1024).build().unwrap();
    let names: Vec<String> = (0..args.pairs)
        .flat_map(|i| [format!("s{i:05}"), format!("r{i:05}")])
        .collect();
    let tokens = relay.users(&http, &names).await;
    eprintln!("{} users registered and logged in", names.len());

    let window = Window::new();
    let mut tasks = Vec::new();
    for pair in 0..args.pairs {
        let (sender, receiver) = (tokens[2 * pair].clone(), tokens[2 * pair + 1].clone());
        let ws = ws_connect(&addr, &receiver).await;
        let ack = match (args.ack_every_ms, args.ack_via.as_str()) {
            (0, _) => Ack::Never,
            (ms, "ws") => Ack::OnSocket(Duration::from_millis(ms)),
            (ms, _) => Ack::OverHttp(Duration::from_millis(ms), http.clone(), base.clone(), receiver),
        };
        tasks.push(receive(ws, window.clone(), ack));
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
    let metric = |name: &'static str| relay.metric(&http, name);
    eprintln!(
        "store flushes {} for {} envelopes ({:.1} per flush)",
        metric("magpie_store_flushes_total").await,
        metric("magpie_store_flush_waiters_total").await,
        metric("magpie_store_flush_waiters_total").await / metric("magpie_store_flushes_total").await
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
    drop(relay);
    println!("relay_msgs_per_s={rate:.0} p50_ms={p50:.2} p99_ms={p99:.2} rss_mb={rss:.1}");
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

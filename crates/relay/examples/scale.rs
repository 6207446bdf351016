//! Scale-out figures in one run: the embedded log store, one relay on PostgreSQL, three relays on one database
//! (every pair's sender and receiver on different relays), and the push latency from one relay to another at a
//! steady 1,000 envelopes/s. Ends with
//! `log_msgs_per_s=… pg1_msgs_per_s=… pg3_msgs_per_s=… cross_node_push_p50_ms=… p99_ms=… batch_mean=…`
//! (`batch_mean`: envelopes per insert group, one transaction and fsync each, in the one-relay run).
//!
//! Each PostgreSQL run gets a fresh database on the server of `MAGPIE_TEST_DATABASE_URL`, which
//! `scripts/pg-session.sh` starts:
//!
//! ```text
//! cargo build --release -p magpie-relay --bin magpie-relay --example scale
//! scripts/pg-session.sh target/release/examples/scale
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout)]

#[path = "support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use support::*;

#[derive(Debug, Parser)]
struct Args {
    /// The relay binary (default: next to this example's directory).
    #[arg(long)]
    relay_bin: Option<PathBuf>,
    /// Sender→receiver pairs in the throughput runs.
    #[arg(long, default_value_t = 50)]
    pairs: usize,
    /// Requests each sender keeps in flight in the throughput runs.
    #[arg(long, default_value_t = 8)]
    inflight: usize,
    /// Measured seconds of each run (after 1 s of warm-up).
    #[arg(long, default_value_t = 8)]
    secs: u64,
    /// Envelopes per second offered in the cross-relay latency run, spread over `--pairs` senders.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Envelope body bytes.
    #[arg(long, default_value_t = 256)]
    body_bytes: usize,
}

/// What every relay of these runs is started with: limits that a load generator would hit lifted.
const UNLIMITED: [&str; 6] = [
    "--send-per-second",
    "10000000",
    "--send-burst",
    "10000000",
    "--login-per-minute",
    "1000000",
];

#[tokio::main]
async fn main() {
    let args = Args::parse();
    epoch();
    let http = reqwest::Client::builder().pool_max_idle_per_host(1024).build().unwrap();

    let log = Relay::start(args.relay_bin.clone(), &UNLIMITED);
    let (log_rate, ..) = run_pairs(&http, &[&log], &args, "log", 0, |_| (0, 0)).await;
    drop(log);
    eprintln!("log store: {log_rate:.0} envelopes/s");

    let one = start_nodes(&args, 1).await;
    let (pg1_rate, pg1_p50, _) = run_pairs(&http, &refs(&one), &args, "one", 0, |_| (0, 0)).await;
    let batch_mean = one[0].metric(&http, "magpie_store_flush_waiters_total").await
        / one[0].metric(&http, "magpie_store_flushes_total").await;
    drop(one);
    eprintln!("one relay on PostgreSQL: {pg1_rate:.0} envelopes/s (p50 {pg1_p50:.1} ms), {batch_mean:.1} per group");

    let three = start_nodes(&args, 3).await;
    // Every pair crosses relays: its receiver is on the relay after its sender's.
    let (pg3_rate, pg3_p50, _) = run_pairs(&http, &refs(&three), &args, "three", 0, |i| (i % 3, (i + 1) % 3)).await;
    eprintln!("three relays on PostgreSQL: {pg3_rate:.0} envelopes/s (p50 {pg3_p50:.1} ms), every pair across relays");
    // Senders on the first relay, receivers on the third, at a rate all of them keep up with.
    let (paced, p50, p99) = run_pairs(&http, &refs(&three), &args, "paced", args.rate, |_| (0, 2)).await;
    eprintln!(
        "relay 1 → relay 3 at {} envelopes/s offered: {paced:.0} received/s",
        args.rate
    );
    drop(three);

    println!(
        "log_msgs_per_s={log_rate:.0} pg1_msgs_per_s={pg1_rate:.0} pg3_msgs_per_s={pg3_rate:.0} \
         cross_node_push_p50_ms={p50:.2} p99_ms={p99:.2} batch_mean={batch_mean:.1}"
    );
}

fn refs(nodes: &[Relay]) -> Vec<&Relay> {
    nodes.iter().collect()
}

/// `count` relays on one fresh database, started one after another (the first stores the CA the others serve).
async fn start_nodes(args: &Args, count: usize) -> Vec<Relay> {
    let database = magpie_tests::pg::fresh_database()
        .await
        .expect("no PostgreSQL: run this under scripts/pg-session.sh");
    (0..count)
        .map(|_| {
            let mut relay_args = UNLIMITED.to_vec();
            relay_args.extend(["--database", &database]);
            Relay::start(args.relay_bin.clone(), &relay_args)
        })
        .collect()
}

/// `--pairs` sender→receiver pairs on push sockets, pair `i`'s sender on `relays[place(i).0]` and receiver on
/// `relays[place(i).1]`; receivers acknowledge every 50 ms, as clients do. `rate` envelopes/s offered in all (0:
/// as fast as `--inflight` allows). Envelopes received per second, p50 and p99 of send → push (ms).
async fn run_pairs(
    http: &reqwest::Client,
    relays: &[&Relay],
    args: &Args,
    prefix: &str,
    rate: u64,
    place: impl Fn(usize) -> (usize, usize),
) -> (f64, f64, f64) {
    let names: Vec<String> = (0..args.pairs)
        .flat_map(|i| [format!("{prefix}s{i:05}"), format!("{prefix}r{i:05}")])
        .collect();
    let tokens = relays[0].users(http, &names).await;
    let window = Window::new();
    let pace = (rate > 0).then(|| Duration::from_secs_f64(args.pairs as f64 / rate as f64));
    let mut tasks = Vec::new();
    for pair in 0..args.pairs {
        let (sender_at, receiver_at) = place(pair);
        let ws = ws_connect(&relays[receiver_at].addr, &tokens[2 * pair + 1]).await;
        tasks.push(receive(ws, window.clone(), Ack::OnSocket(Duration::from_millis(50))));
        let (addr, token, to) = (&relays[sender_at].addr, &tokens[2 * pair], names[2 * pair + 1].clone());
        tasks.extend(ws_sender(addr, token, to, args.inflight, pace, args.body_bytes, window.clone()).await);
    }
    let measured = window.run(args.secs).await;
    if rate > 0 {
        let (late50, late99) = window.lateness();
        eprintln!("  the senders' own lateness, inside those latencies: p50 {late50:.2} ms, p99 {late99:.2} ms");
    }
    for task in tasks {
        task.abort();
    }
    measured
}

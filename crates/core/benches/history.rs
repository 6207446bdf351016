//! History at scale: fills one chat with N messages (env `MAGPIE_BENCH_MESSAGES`, default 1,000,000), then a fresh
//! process opens it cold and measures last-50 loads warm and its own RSS. Prints
//! `last50_p99_us=… open_cold_ms=… rss_mb=…`.
//!
//! `MAGPIE_BENCH_DIR=path` keeps the filled history there and reuses it on the next run (fill once, measure often);
//! `MAGPIE_BENCH_CACHE_MB` overrides the page-cache bound for the measuring process.
//!
//!     CARGO_TARGET_DIR=/work/target-core cargo bench -p magpie-core --bench history
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a benchmark prints its figures and fails loudly"
)]

use std::path::Path;
use std::time::{Duration, Instant};

use magpie_core::history::{Delivery, Direction, HistoryKey, Message};
use magpie_core::History;
use magpie_proto::{MessageKind, Username};

#[path = "common/process.rs"]
mod process;

use process::{dir_size, status_kb};

const BATCH: usize = 1_000;
const WARM_LOADS: usize = 2_000;

fn main() {
    // A fixed key: this history is a throwaway, and the measuring child must open it.
    let key = HistoryKey::from_slice(&[7; 32]).unwrap();
    process::fill_then_measure(|dir, n| fill(dir, &key, n), |dir| measure(dir, &key));
}

fn fill(dir: &Path, key: &HistoryKey, n: usize) {
    let history = History::open(dir, key).unwrap();
    let bob = Username::parse("bob").unwrap();
    let carol = Username::parse("carol").unwrap();
    let started = Instant::now();
    let mut written = 0;
    while written < n {
        let batch: Vec<Message> = (written..(written + BATCH).min(n))
            .map(|i| message(if i % 100 == 99 { &carol } else { &bob }, i))
            .collect();
        history.append_messages(&batch).unwrap();
        written += batch.len();
    }
    history.flush().unwrap();
    let fill = started.elapsed();
    let size: u64 = dir_size(dir);
    println!(
        "filled messages={n} (99% bob, 1% carol) fill_s={:.1} per_msg_us={:.1} disk_mb={:.0} fill_rss_mb={:.0} \
         fill_peak_rss_mb={:.0}",
        fill.as_secs_f64(),
        fill.as_secs_f64() * 1e6 / n as f64,
        size as f64 / 1e6,
        status_kb("VmRSS") as f64 / 1024.0,
        status_kb("VmHWM") as f64 / 1024.0,
    );
}

fn measure(dir: &Path, key: &HistoryKey) {
    let bob = Username::parse("bob").unwrap();
    let cache_mb: u64 = std::env::var("MAGPIE_BENCH_CACHE_MB").map_or(16, |v| v.parse().unwrap());
    let started = Instant::now();
    let history = History::open_with_cache(dir, key, cache_mb * 1024 * 1024).unwrap();
    let open_cold = started.elapsed();
    let rss_after_open = status_kb("VmRSS") as f64 / 1024.0;
    let started = Instant::now();
    assert_eq!(history.last_messages(&bob, 50).unwrap().len(), 50);
    let first_load = started.elapsed();

    let mut samples = warm_loads(&history, &bob);
    let first_round_p99_us = samples[samples.len() * 99 / 100].as_secs_f64() * 1e6;
    // sled cleans up segments in the background after a cold open: measure "warm" once that has settled.
    std::thread::sleep(Duration::from_secs(3));
    samples = warm_loads(&history, &bob);
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)].as_secs_f64() * 1e6;

    // Scrolling back: 20 pages of 50 from the end.
    let started = Instant::now();
    let mut page = history.last_messages(&bob, 50).unwrap();
    for _ in 0..20 {
        page = history.messages_before(&bob, page[0].cursor, 50).unwrap();
    }
    let page_back = started.elapsed() / 21;

    println!(
        "cache_mb={cache_mb} open_cold_ms={:.1} rss_after_open_mb={rss_after_open:.0} first_last50_us={:.0} \
         first_round_p99_us={first_round_p99_us:.0} last50_p50_us={:.0} page_back_avg_us={:.0} peak_rss_mb={:.0}",
        open_cold.as_secs_f64() * 1e3,
        first_load.as_secs_f64() * 1e6,
        pct(0.50),
        page_back.as_secs_f64() * 1e6,
        status_kb("VmHWM") as f64 / 1024.0,
    );
    println!(
        "last50_p99_us={:.0} open_cold_ms={:.1} rss_mb={:.1}",
        pct(0.99),
        open_cold.as_secs_f64() * 1e3,
        status_kb("VmRSS") as f64 / 1024.0,
    );
}

fn warm_loads(history: &History, peer: &Username) -> Vec<Duration> {
    let mut samples: Vec<Duration> = (0..WARM_LOADS)
        .map(|_| {
            let started = Instant::now();
            let page = history.last_messages(peer, 50).unwrap();
            let elapsed = started.elapsed();
            assert_eq!(page.len(), 50);
            elapsed
        })
        .collect();
    samples.sort();
    samples
}

fn message(peer: &Username, i: usize) -> Message {
    Message {
        id: uuid::Uuid::new_v4(),
        peer: peer.clone(),
        direction: if i.is_multiple_of(2) {
            Direction::Outgoing
        } else {
            Direction::Incoming
        },
        kind: MessageKind::Text,
        body: format!("message number {i}: a line of chat about the usual things, lunch and so on"),
        sent_at: 1_700_000_000 + i as u64,
        received_at: (!i.is_multiple_of(2)).then_some(1_700_000_001 + i as u64),
        delivery: if i.is_multiple_of(2) {
            Delivery::Delivered
        } else {
            Delivery::Received
        },
    }
}

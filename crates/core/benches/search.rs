//! Search at scale: 1,000,000 messages (env `MAGPIE_BENCH_MESSAGES`) across 100 chats of varied text, then a fresh
//! process opens the history and searches every chat, newest chat first, as the window does. Per query it prints
//! the time to the first chat with a match (`first_ms`) and to the end of all chats (`full_ms`), warm (the second
//! run of each query); then the process's peak RSS. The last line is
//! `search_first_ms=… search_full_ms=… peak_rss_mb=…` (the slowest query's figures).
//!
//! `MAGPIE_BENCH_DIR=path` keeps the filled history and reuses it (fill once, measure often).
//!
//!     cargo bench -p magpie-core --bench search
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a benchmark prints its figures and fails loudly"
)]

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use magpie_core::history::HistoryKey;
use magpie_core::search::Query;
use magpie_core::History;
use magpie_proto::Username;

#[path = "common/fill.rs"]
mod fill;
#[path = "common/process.rs"]
mod process;

use process::status_kb;

use fill::{fill, peers};

const HITS_PER_CHAT: usize = 20;
/// Common words (one in 60 messages has "lunch"), a rare one, a prefix, accents, and a word in no message.
const QUERIES: &[&str] = &["lunch", "zurich", "caf", "Straße morgen", "xylophone"];

fn main() {
    let key = HistoryKey::from_slice(&[7; 32]).unwrap();
    process::fill_then_measure(
        |dir, n| fill(&History::open(dir, &key).unwrap(), n),
        |dir| measure(dir, &key),
    );
}

fn measure(dir: &Path, key: &HistoryKey) {
    let cache_mb: u64 = std::env::var("MAGPIE_BENCH_CACHE_MB").map_or(16, |v| v.parse().unwrap());
    let history = History::open_with_cache(dir, key, cache_mb << 20).unwrap();
    println!("rss_after_open_mb={:.0}", status_kb("VmRSS") as f64 / 1024.0);
    // The window lists chats newest first: the last filled is the newest.
    let mut peers = peers();
    peers.reverse();
    let mut slowest = (Duration::ZERO, Duration::ZERO);
    for text in QUERIES {
        let query = Query::parse(text).unwrap();
        search_all(&history, &peers, &query);
        let (first, full, total, shown) = search_all(&history, &peers, &query);
        let first_ms = first.map_or(f64::NAN, |first| first.as_secs_f64() * 1e3);
        println!(
            "query={text:?} matches={total} shown={shown} first_ms={first_ms:.1} full_ms={:.0} rss_mb={:.0} hwm_mb={:.0}",
            full.as_secs_f64() * 1e3,
            status_kb("VmRSS") as f64 / 1024.0,
            status_kb("VmHWM") as f64 / 1024.0
        );
        slowest.0 = slowest.0.max(first.unwrap_or_default());
        slowest.1 = slowest.1.max(full);
    }
    println!(
        "search_first_ms={:.1} search_full_ms={:.0} peak_rss_mb={:.0}",
        slowest.0.as_secs_f64() * 1e3,
        slowest.1.as_secs_f64() * 1e3,
        status_kb("VmHWM") as f64 / 1024.0
    );
}

/// Every chat in turn: when the first chat with a match was done, when all were, how many matched, how many kept.
fn search_all(history: &History, peers: &[Username], query: &Query) -> (Option<Duration>, Duration, usize, usize) {
    let never = AtomicBool::new(false);
    let started = Instant::now();
    let (mut first, mut total, mut shown) = (None, 0, 0);
    for peer in peers {
        let found = history.search_chat(peer, query, None, HITS_PER_CHAT, &never).unwrap();
        if !found.hits.is_empty() && first.is_none() {
            first = Some(started.elapsed());
        }
        total += found.total;
        shown += found.hits.len();
    }
    (first, started.elapsed(), total, shown)
}

//! What one history step costs sled, apart from our own work: a step shaped like `History::record_step` (its
//! record, then its four writes: a session, a 4 KiB block, an index bucket, an outbox item), then `flush_async`,
//! as the outbox does after sending a text (and before a receipt or a handshake step). Paced like a chat (one step
//! every 2 ms) so each flush stands alone.
//!
//! `cargo run --release -p magpie-core --example sled_flush -- [STEPS] [--transaction]`: prints p50/p90/p99 of
//! each part in µs. `--transaction` makes the four writes one sled transaction instead (no record), the other
//! way to make them atomic. The data directory is made under the current directory, so the figures are those of
//! its disk (not a tmpfs). `vendor/sled/MAGPIE.md` quotes this example's figures.
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a measurement prints its figures and fails loudly"
)]

use std::time::{Duration, Instant};

use sled::transaction::ConflictableTransactionError;
use sled::Transactional as _;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let transaction = args.iter().any(|a| a == "--transaction");
    let steps: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(2000);
    let dir = tempfile::tempdir_in(".").unwrap();
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(16 << 20)
        .open()
        .unwrap();
    let steps_tree = db.open_tree("steps").unwrap();
    let trees: Vec<sled::Tree> = ["sessions", "blocks", "index", "outbox"]
        .iter()
        .map(|name| db.open_tree(name).unwrap())
        .collect();
    let (small, block) = (vec![7u8; 600], vec![9u8; 4096]);
    let (mut write_us, mut flush_us) = (Vec::with_capacity(steps), Vec::with_capacity(steps));
    for step in 0..steps as u64 {
        let keys = (
            (step / 32).to_be_bytes(),
            (step % 1000).to_be_bytes(),
            step.to_be_bytes(),
        );
        let started = Instant::now();
        if !transaction {
            let record = [small.as_slice(), block.as_slice(), small.as_slice(), small.as_slice()].concat();
            steps_tree.insert(step.to_be_bytes(), record).unwrap();
            trees[0].insert(b"peer", small.as_slice()).unwrap();
            trees[1].insert(keys.0, block.as_slice()).unwrap();
            trees[2].insert(keys.1, small.as_slice()).unwrap();
            trees[3].insert(keys.2, small.as_slice()).unwrap();
        } else {
            (&trees[0], &trees[1], &trees[2], &trees[3])
                .transaction(|(sessions, blocks, index, outbox)| {
                    sessions.insert(b"peer".as_slice(), small.as_slice())?;
                    blocks.insert(keys.0.as_slice(), block.as_slice())?;
                    index.insert(keys.1.as_slice(), small.as_slice())?;
                    outbox.insert(keys.2.as_slice(), small.as_slice())?;
                    Ok::<_, ConflictableTransactionError<()>>(())
                })
                .unwrap();
        }
        let written = Instant::now();
        db.flush_async().await.unwrap();
        write_us.push(written.duration_since(started));
        flush_us.push(written.elapsed());
        // The flush made the step durable: its record goes. The relay's 202 removes the outbox item.
        steps_tree.remove(step.to_be_bytes()).unwrap();
        trees[3].remove(keys.2).unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let what = match transaction {
        true => "transaction over 4 trees",
        false => "record and 4 inserts",
    };
    for (name, times) in [(what, &mut write_us), ("flush_async", &mut flush_us)] {
        times.sort_unstable();
        let at = |p: usize| times[(times.len() * p / 100).min(times.len() - 1)].as_micros();
        println!(
            "{name}: p50 {} µs, p90 {} µs, p99 {} µs over {steps}",
            at(50),
            at(90),
            at(99)
        );
    }
}

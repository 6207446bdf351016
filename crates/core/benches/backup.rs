//! Backup and restore at scale: a profile with 1,000,000 messages (env `MAGPIE_BENCH_MESSAGES`) over 100 chats is
//! backed up with the real scrypt parameters, then restored into a new directory. Prints the times, the backup's
//! size against the sealed history's (its files on disk), and the peak RSS of each step's own process:
//! `backup_s=… restore_s=… size_ratio=… backup_rss_mb=… restore_rss_mb=…`.
//!
//! `MAGPIE_BENCH_DIR=path` keeps the filled profile there and reuses it (fill once, measure often).
//!
//!     cargo bench -p magpie-core --bench backup
#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a benchmark prints its figures and fails loudly"
)]

use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use magpie_core::backup::{restore, write_backup};
use magpie_core::keystore::{Keystore, MemoryKeystore};
use magpie_core::profile::{history_account, identity_account, ProfileInfo, HISTORY_DIR};
use magpie_core::Profile;
use magpie_proto::{Identity, Username};

#[path = "common/fill.rs"]
mod fill;
#[path = "common/process.rs"]
mod process;

use process::{dir_size, status_kb};

const PASSPHRASE: &str = "a passphrase for the benchmark";
const STEP_ENV: &str = "MAGPIE_BENCH_STEP";
/// The credential store does not outlive a process: the keys travel between the steps in files of the bench's.
const KEYS: &str = "bench-keys";

fn main() {
    if let Ok(step) = std::env::var(STEP_ENV) {
        let dir = std::env::var("MAGPIE_BENCH_DIR").unwrap();
        return run_step(&step, Path::new(&dir));
    }
    let n: usize = std::env::var("MAGPIE_BENCH_MESSAGES").map_or(1_000_000, |v| v.parse().unwrap());
    let temp = tempfile::tempdir().unwrap();
    let dir = std::env::var("MAGPIE_BENCH_DIR").map_or(temp.path().to_owned(), std::path::PathBuf::from);
    let profile_dir = dir.join("profile");
    if profile_dir.join("profile.json").exists() {
        println!("reusing the profile in {}", profile_dir.display());
    } else {
        let keystore = Arc::new(MemoryKeystore::default());
        let identity = Identity::generate(Username::parse("alice").unwrap()).unwrap();
        let profile = Profile::create_with_identity(&profile_dir, identity, keystore.clone()).unwrap();
        fill::fill(profile.history(), n);
        save_keys(&dir, &profile, keystore.as_ref());
    }
    let _ = std::fs::remove_file(dir.join("alice.backup"));
    let _ = std::fs::remove_dir_all(dir.join("restored"));
    let step = |name: &str| {
        let status = Command::new(std::env::current_exe().unwrap())
            .env(STEP_ENV, name)
            .env("MAGPIE_BENCH_DIR", &dir)
            .status()
            .unwrap();
        assert!(status.success(), "step {name}");
    };
    step("backup");
    step("restore");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    let history_bytes = dir_size(&profile_dir.join(HISTORY_DIR));
    let backup_bytes = std::fs::metadata(dir.join("alice.backup")).unwrap().len();
    println!(
        "history_mb={:.0} backup_mb={:.0} (history on disk is sled's files, with the space it keeps)",
        history_bytes as f64 / 1e6,
        backup_bytes as f64 / 1e6
    );
    println!(
        "{} {} size_ratio={:.2}",
        read("backup.out").trim(),
        read("restore.out").trim(),
        backup_bytes as f64 / history_bytes as f64
    );
}

fn run_step(step: &str, dir: &Path) {
    let keystore = Arc::new(MemoryKeystore::default());
    let never = AtomicBool::new(false);
    let started = Instant::now();
    let line = match step {
        "backup" => {
            load_keys(dir, keystore.as_ref());
            let profile = Profile::open(&dir.join("profile"), keystore).unwrap();
            let summary = write_backup(&profile, &dir.join("alice.backup"), PASSPHRASE, &never, &mut |_| {}).unwrap();
            assert!(summary.messages > 0);
            format!(
                "backup_s={:.1} backup_messages={} backup_rss_mb={:.0}",
                started.elapsed().as_secs_f64(),
                summary.messages,
                status_kb("VmHWM") as f64 / 1024.0
            )
        }
        _ => {
            let restored = restore(
                &dir.join("alice.backup"),
                PASSPHRASE,
                &dir.join("restored"),
                keystore,
                &never,
                &mut |_| {},
            )
            .unwrap();
            let elapsed = started.elapsed();
            let messages: usize = fill::peers()
                .iter()
                .map(|peer| restored.history().last_messages(peer, usize::MAX).unwrap().len())
                .sum();
            format!(
                "restore_s={:.1} restored_messages={messages} restore_rss_mb={:.0}",
                elapsed.as_secs_f64(),
                status_kb("VmHWM") as f64 / 1024.0
            )
        }
    };
    println!("{line}");
    std::fs::write(dir.join(format!("{step}.out")), line).unwrap();
}

fn save_keys(dir: &Path, profile: &Profile, keystore: &dyn Keystore) {
    for account in [identity_account(profile.id()), history_account(profile.id())] {
        let secret = keystore.load(&account).unwrap().unwrap();
        std::fs::create_dir_all(dir.join(KEYS)).unwrap();
        std::fs::write(dir.join(KEYS).join(&account), secret.expose()).unwrap();
    }
}

fn load_keys(dir: &Path, keystore: &dyn Keystore) {
    let info = ProfileInfo::read(&dir.join("profile")).unwrap();
    for account in [identity_account(info.profile_id), history_account(info.profile_id)] {
        keystore
            .store(&account, &std::fs::read(dir.join(KEYS).join(&account)).unwrap())
            .unwrap();
    }
}

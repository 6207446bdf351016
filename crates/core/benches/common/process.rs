//! What a benchmark reads of its own process and of the disk.

use std::path::Path;
use std::process::Command;

/// Set in the child that measures: the folder of the history to open.
const REOPEN_ENV: &str = "MAGPIE_BENCH_REOPEN_DIR";

/// Fills a history of `MAGPIE_BENCH_MESSAGES` messages (default 1,000,000) with `fill` into `MAGPIE_BENCH_DIR` (or
/// a temporary folder) unless it holds one already, then runs `measure` on it in a fresh process of this benchmark,
/// so nothing of the filling is in the figures.
#[allow(
    dead_code,
    reason = "each benchmark includes this file; not each measures a history in a child"
)]
pub fn fill_then_measure(fill: impl FnOnce(&Path, usize), measure: impl FnOnce(&Path)) {
    if let Ok(dir) = std::env::var(REOPEN_ENV) {
        return measure(Path::new(&dir));
    }
    let n: usize = std::env::var("MAGPIE_BENCH_MESSAGES").map_or(1_000_000, |v| v.parse().unwrap());
    let temp = tempfile::tempdir().unwrap();
    let dir = std::env::var("MAGPIE_BENCH_DIR").map_or(temp.path().to_owned(), std::path::PathBuf::from);
    if dir.join("conf").exists() {
        println!("reusing the history in {}", dir.display());
    } else {
        fill(&dir, n);
    }
    let status = Command::new(std::env::current_exe().unwrap())
        .env(REOPEN_ENV, &dir)
        .status()
        .unwrap();
    assert!(status.success());
}

/// A field of /proc/self/status in kB (`VmRSS`, `VmHWM`); 0 where there is none.
pub fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The bytes of the files below `dir`.
#[allow(dead_code, reason = "each benchmark includes this file; not each measures a folder")]
pub fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                dir_size(&entry.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

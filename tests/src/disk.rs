//! Looking at what a program left on disk.

use std::path::{Path, PathBuf};

/// Every file below `dir`.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        match path.is_dir() {
            true => out.extend(files_under(&path)),
            false => out.push(path),
        }
    }
    out
}

/// Whether any file below `dir` holds `needle`.
pub fn dir_contains(dir: &Path, needle: &[u8]) -> bool {
    files_under(dir).iter().any(|path| {
        let bytes = std::fs::read(path).unwrap_or_default();
        bytes.windows(needle.len()).any(|window| window == needle)
    })
}

//! Marks for `scripts/perf-app.sh`: when `MAGPIE_PERF_REPORT` names a file, the UI's milestones (chat list drawn,
//! chat opened) are appended to it with the wall clock, so the script can measure from the moment it exec'd us.
//! Without the variable both commands do nothing, and builds without the `perf` feature (every build people
//! install) have neither command nor the capability that allows them: only the startup moments are noted.

use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::IpcError;

/// The file the marks go to.
pub const REPORT_ENV: &str = "MAGPIE_PERF_REPORT";
/// A chat the UI opens by itself once the list is drawn (to time opening it).
#[cfg(feature = "perf")]
pub const OPEN_CHAT_ENV: &str = "MAGPIE_PERF_OPEN_CHAT";

/// The chat to open for the measurement, when the script asked for one.
#[cfg(feature = "perf")]
#[tauri::command]
pub fn perf_open_chat() -> Option<String> {
    std::env::var(REPORT_ENV).ok()?;
    std::env::var(OPEN_CHAT_ENV).ok().filter(|peer| !peer.is_empty())
}

/// Notes that startup reached `name` on the Rust side (the script prints where the time went).
pub fn moment(name: &str) {
    if let Err(error) = perf_mark(format!("at_{name}"), None) {
        tracing::debug!(%error, "perf mark not written");
    }
}

/// Appends `name wall_ms=… value_ms=…` to the report.
#[tauri::command]
pub fn perf_mark(name: String, value_ms: Option<f64>) -> Result<(), IpcError> {
    let Ok(path) = std::env::var(REPORT_ENV) else {
        return Ok(());
    };
    let wall_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis());
    let line = match value_ms {
        Some(value) => format!("{name} wall_ms={wall_ms} value_ms={value:.1}\n"),
        None => format!("{name} wall_ms={wall_ms}\n"),
    };
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(line.as_bytes()))
        .map_err(|e| IpcError::new(crate::error::IpcErrorCode::Internal, format!("perf report {path}: {e}")))
}

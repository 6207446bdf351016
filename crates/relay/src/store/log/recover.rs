//! Opening: rebuilding the index from the segments, and taking over mail an older relay kept in sled.

use std::path::Path;
use std::sync::Arc;

use super::{file, io_err, Inner, Synced};
use crate::store::StoreResult;

/// Rebuilds the index from the live segments and opens the last for appending. Segments marked `retired` whose
/// deletion a crash or an error cut short are deleted now, never replayed; returns those it deleted.
pub(super) fn recover(dir: &Path, retired: &[u64]) -> StoreResult<(Inner, Synced, Vec<u64>)> {
    let mut inner = Inner::default();
    let segments = file::list_segments(dir).map_err(io_err)?;
    let mut deleted = Vec::new();
    for &segment in retired {
        match std::fs::remove_file(file::segment_path(dir, segment)) {
            Ok(()) => deleted.push(segment),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => deleted.push(segment),
            Err(e) => return Err(io_err(e)),
        }
    }
    let live: Vec<u64> = segments.iter().copied().filter(|s| !retired.contains(s)).collect();
    for (i, &segment) in live.iter().enumerate() {
        let bytes = std::fs::read(file::segment_path(dir, segment)).map_err(io_err)?;
        let valid = inner.replay(segment, &bytes)?;
        let f = file::open_segment(dir, segment).map_err(io_err)?;
        let last = i + 1 == live.len();
        if valid < bytes.len() {
            tracing::warn!(
                segment,
                kept = valid,
                dropped = bytes.len() - valid,
                "mailbox log segment ends in a record that is cut short or fails its checksum"
            );
            // Only the last segment is appended to: cut the torn write off so new records follow whole ones.
            if last {
                f.set_len(valid as u64).map_err(io_err)?;
            }
        }
        inner.segments.insert(segment, Arc::new(f));
        if !last {
            inner.sealed_len.insert(segment, valid as u64);
        }
        inner.active = segment;
        inner.buffer_start = valid as u64;
    }
    if inner.segments.is_empty() {
        let newest = segments.iter().chain(retired).copied().max().unwrap_or(0);
        let first = newest.saturating_add(1);
        inner
            .segments
            .insert(first, Arc::new(file::open_segment(dir, first).map_err(io_err)?));
        file::sync_dir(dir).map_err(io_err)?;
        inner.active = first;
    }
    // What the crashed process wrote may still be only in the OS cache.
    if let Some(active) = inner.segments.get(&inner.active) {
        active.sync_data().map_err(io_err)?;
    }
    let synced = Synced {
        segment: inner.active,
        to: inner.buffer_start,
    };
    Ok((inner, synced, deleted))
}

//! Deleting for real. sled is log-structured: a removed value stays in its files until sled happens to reclaim the
//! segment it sits in, so "Delete messages" alone would leave the sealed messages readable to whoever gets the
//! history key later. After a deletion the history is marked, and the next open rewrites it: every tree's live
//! values are copied into a new database beside it, which then takes the old one's place, and the old files are
//! removed. A crash at any point leaves either the old database (the mark still set: rewritten at the next open)
//! or the new one.

use std::fs;
use std::path::{Path, PathBuf};

use super::META;
use crate::error::{Error, Result};

/// sled's default `idgen_persist_interval`, which the history opens with.
const SLED_IDGEN_INTERVAL: u64 = 1_000_000;

/// Set in `meta` by a deletion; cleared in the rewritten copy.
pub(super) const REWRITE_DUE: &[u8] = b"rewrite-due";

/// The new database while it is written, beside `dir`.
fn rewriting(dir: &Path) -> PathBuf {
    dir.with_extension("rewrite")
}

/// The old database while the new one takes its place.
fn replaced(dir: &Path) -> PathBuf {
    dir.with_extension("old")
}

/// Finishes or undoes a rewrite a crash interrupted, before `dir` is opened.
pub(super) fn recover(dir: &Path) -> Result<()> {
    let old = replaced(dir);
    if old.exists() {
        match dir.exists() {
            // The new one was in place: only the old files were left to remove.
            true => fs::remove_dir_all(&old).map_err(|e| io("remove", &old, e))?,
            // Interrupted between the two renames: the old one goes back (its mark is still set).
            false => fs::rename(&old, dir).map_err(|e| io("rename", &old, e))?,
        }
    }
    let new = rewriting(dir);
    if new.exists() {
        fs::remove_dir_all(&new).map_err(|e| io("remove", &new, e))?;
    }
    Ok(())
}

/// Copies every tree of `db` (the open database in `dir`) into a new database without the mark, puts it in
/// `dir`'s place and removes the old files. Returns the new database, open.
pub(super) fn rewrite(dir: &Path, db: sled::Db, cache_capacity: u64) -> Result<sled::Db> {
    let new_dir = rewriting(dir);
    let config = |path: &Path| sled::Config::new().path(path).cache_capacity(cache_capacity);
    // Past every id the old database gave out (message seqs, outbox order): the new one must go on from there.
    let past = db.generate_id()?;
    let copy = super::open_db(&config(&new_dir))?;
    for name in db.tree_names() {
        let (from, to) = (db.open_tree(&name)?, copy.open_tree(&name)?);
        for item in &from {
            let (key, value) = item?;
            to.insert(key, value)?;
        }
    }
    copy.open_tree(META)?.remove(REWRITE_DUE)?;
    copy.flush()?;
    drop(copy);
    // sled starts a reopened database's ids at its last persisted count plus twice the persist interval, and
    // persists the count when an id reaches the next multiple of it: opened once with an interval of at least
    // half of `past`, its first id is past `past` and persisted, and every later open starts beyond it. (The
    // interval is a multiple of sled's usual one, which every later open checks the persisted count against.)
    let interval = (past / 2 / SLED_IDGEN_INTERVAL + 1) * SLED_IDGEN_INTERVAL;
    let bump = super::open_db(&config(&new_dir).idgen_persist_interval(interval))?;
    if bump.generate_id()? <= past {
        return Err(Error::HistoryStorage(sled::Error::ReportableBug(
            "the rewritten history's ids do not go on from the old one's".into(),
        )));
    }
    bump.flush()?;
    drop(bump);
    drop(db);
    let old = replaced(dir);
    fs::rename(dir, &old).map_err(|e| io("rename", dir, e))?;
    fs::rename(&new_dir, dir).map_err(|e| io("rename", &new_dir, e))?;
    fs::remove_dir_all(&old).map_err(|e| io("remove", &old, e))?;
    tracing::info!(dir = %dir.display(), "history rewritten without what was deleted");
    super::open_db(&config(dir))
}

fn io(action: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::ProfileIo {
        action,
        path: path.to_owned(),
        source,
    }
}

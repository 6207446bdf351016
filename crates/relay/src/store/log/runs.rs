//! The acknowledged ids of retired segments, kept until their retention ends so a late retry is still known.
//!
//! Each retirement writes its ids as one **run**: a file of 40-byte entries sorted by id
//! (`id ‖ seq ‖ acked_at ‖ sender-and-recipient hash`, integers little-endian), written aside and renamed into
//! place, so a run is whole or absent. A run's name `ids-LO-HI.run` says which retirements it holds, and the
//! newest HI is how far segments are retired. In memory each run has a Bloom filter (10 bits an id, about 1%
//! false positives) and the first id of every block of 128 entries: a lookup that passes the filter costs one
//! read of 5 KiB. Runs merge when the newer is at least half the older's size, so there are O(log n) of them,
//! and merging drops entries past their retention. Sorted appends and sequential merges are what a B-tree of
//! random UUIDs is not: with those ids in sled, retiring 40,000 of them took 0.24 s growing to 1.1 s per round.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read as _, Write as _};
use std::path::{Path, PathBuf};

use uuid::Uuid;

use super::file::{read_exact_at, sync_dir};
use super::io_err;
use crate::store::{StoreError, StoreResult};

const ENTRY: usize = 40;
const BLOCK: usize = 128;
const BLOOM_BITS_PER_ID: u64 = 10;
const BLOOM_PROBES: u64 = 7;

/// A retired, acknowledged envelope id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RetiredId {
    pub id: Uuid,
    pub seq: u64,
    pub acked_at: u64,
    /// [`pair_hash`] of its sender and recipient: enough to tell a retry from another sender's reuse.
    pub pair: u64,
}

/// FNV-1a over `from ‖ 0 ‖ to`: stable across builds, unlike std's hasher, since it is written to disk.
pub(super) fn pair_hash(from: &str, to: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in from.bytes().chain([0]).chain(to.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl RetiredId {
    fn encode(&self) -> [u8; ENTRY] {
        let mut e = [0u8; ENTRY];
        e[..16].copy_from_slice(self.id.as_bytes());
        e[16..24].copy_from_slice(&self.seq.to_le_bytes());
        e[24..32].copy_from_slice(&self.acked_at.to_le_bytes());
        e[32..].copy_from_slice(&self.pair.to_le_bytes());
        e
    }

    fn decode(e: &[u8]) -> Self {
        let u = |r: std::ops::Range<usize>| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&e[r]);
            u64::from_le_bytes(a)
        };
        let mut id = [0u8; 16];
        id.copy_from_slice(&e[..16]);
        Self {
            id: Uuid::from_bytes(id),
            seq: u(16..24),
            acked_at: u(24..32),
            pair: u(32..40),
        }
    }
}

struct Run {
    lo: u64,
    hi: u64,
    file: File,
    count: u64,
    newest_ack: u64,
    bloom: Vec<u64>,
    /// The first id of each block.
    index: Vec<Uuid>,
}

/// The runs of a mailbox log directory, oldest first.
pub(super) struct Runs {
    dir: PathBuf,
    runs: Vec<Run>,
}

fn run_path(dir: &Path, lo: u64, hi: u64) -> PathBuf {
    dir.join(format!("ids-{lo:020}-{hi:020}.run"))
}

fn parse_name(name: &str) -> Option<(u64, u64)> {
    let (lo, hi) = name.strip_prefix("ids-")?.strip_suffix(".run")?.split_once('-')?;
    Some((lo.parse().ok()?, hi.parse().ok()?))
}

fn probes(id: &Uuid, bits: u64) -> impl Iterator<Item = u64> {
    let b = id.as_bytes();
    let mut h1 = [0u8; 8];
    let mut h2 = [0u8; 8];
    h1.copy_from_slice(&b[..8]);
    h2.copy_from_slice(&b[8..]);
    // Mixed, so ids a client picks by hand spread like random ones.
    let (h1, h2) = (mix(u64::from_le_bytes(h1)), mix(u64::from_le_bytes(h2)) | 1);
    (0..BLOOM_PROBES).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % bits)
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Builds a run's in-memory parts while its entries stream past in order.
struct RunBuilder {
    count: u64,
    newest_ack: u64,
    bloom: Vec<u64>,
    index: Vec<Uuid>,
}

impl RunBuilder {
    fn new(expected: u64) -> Self {
        let bits = expected.saturating_mul(BLOOM_BITS_PER_ID).max(64);
        Self {
            count: 0,
            newest_ack: 0,
            bloom: vec![0; usize::try_from(bits.div_ceil(64)).unwrap_or(1)],
            index: Vec::new(),
        }
    }

    fn add(&mut self, e: &RetiredId) {
        if self.count.is_multiple_of(BLOCK as u64) {
            self.index.push(e.id);
        }
        let bits = self.bloom.len() as u64 * 64;
        for bit in probes(&e.id, bits) {
            self.bloom[(bit / 64) as usize] |= 1 << (bit % 64);
        }
        self.count += 1;
        self.newest_ack = self.newest_ack.max(e.acked_at);
    }

    fn finish(self, lo: u64, hi: u64, file: File) -> Run {
        Run {
            lo,
            hi,
            file,
            count: self.count,
            newest_ack: self.newest_ack,
            bloom: self.bloom,
            index: self.index,
        }
    }
}

impl Run {
    fn may_contain(&self, id: &Uuid) -> bool {
        let bits = self.bloom.len() as u64 * 64;
        probes(id, bits).all(|bit| self.bloom[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
    }

    fn find(&self, id: &Uuid) -> StoreResult<Option<RetiredId>> {
        if !self.may_contain(id) {
            return Ok(None);
        }
        let Some(block) = self.index.partition_point(|first| first <= id).checked_sub(1) else {
            return Ok(None);
        };
        let start = block as u64 * BLOCK as u64;
        let entries = (self.count - start).min(BLOCK as u64) as usize;
        let mut bytes = vec![0u8; entries * ENTRY];
        read_exact_at(&self.file, &mut bytes, start * ENTRY as u64).map_err(io_err)?;
        let block: Vec<&[u8]> = bytes.chunks_exact(ENTRY).collect();
        // Uuid orders as its bytes do.
        let found = block.binary_search_by(|e| e[..16].cmp(id.as_bytes())).ok();
        Ok(found.map(|i| RetiredId::decode(block[i])))
    }

    fn entries(&self, dir: &Path) -> StoreResult<impl Iterator<Item = std::io::Result<RetiredId>>> {
        // Opened anew: a clone of `self.file` would share its offset.
        let file = File::open(run_path(dir, self.lo, self.hi)).map_err(io_err)?;
        let mut reader = BufReader::with_capacity(1 << 16, file);
        let mut left = self.count;
        Ok(std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            let mut e = [0u8; ENTRY];
            Some(reader.read_exact(&mut e).map(|()| RetiredId::decode(&e)))
        }))
    }
}

impl Runs {
    /// Loads the runs in `dir`, deleting any that a merged run replaced (a crash before their deletion).
    pub(super) fn open(dir: &Path) -> StoreResult<Self> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_err)? {
            let name = entry.map_err(io_err)?.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(range) = parse_name(name) {
                found.push(range);
            } else if name.ends_with(".run.tmp") {
                let _ = std::fs::remove_file(dir.join(name));
            }
        }
        // Widest first, so a run inside a merged one is seen after it.
        found.sort_by_key(|&(lo, hi)| (lo, std::cmp::Reverse(hi)));
        let mut runs: Vec<Run> = Vec::new();
        for (lo, hi) in found {
            let path = run_path(dir, lo, hi);
            if runs.last().is_some_and(|r| r.hi >= hi) {
                std::fs::remove_file(&path).map_err(io_err)?;
                continue;
            }
            runs.push(load(&path, lo, hi)?);
        }
        Ok(Self {
            dir: dir.to_owned(),
            runs,
        })
    }

    /// The newest retirement round the runs hold (0: none).
    pub(super) fn last_round(&self) -> u64 {
        self.runs.last().map_or(0, |r| r.hi)
    }

    /// Ids held, across all runs.
    pub(super) fn ids(&self) -> usize {
        self.runs
            .iter()
            .map(|r| usize::try_from(r.count).unwrap_or(usize::MAX))
            .sum()
    }

    /// How many runs there are.
    pub(super) fn count(&self) -> usize {
        self.runs.len()
    }

    /// Finds an id, newest run first.
    pub(super) fn find(&self, id: &Uuid) -> StoreResult<Option<RetiredId>> {
        for run in self.runs.iter().rev() {
            if let Some(found) = run.find(id)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Writes the ids of retirement `round` as a run file. Call without holding the runs: it is slow.
    pub(super) fn write(&self, round: u64, mut ids: Vec<RetiredId>) -> StoreResult<PendingRun> {
        ids.sort_unstable_by_key(|e| e.id);
        ids.dedup_by_key(|e| e.id);
        let (lo, hi) = (round, round);
        let run = write_run(&self.dir, lo, hi, ids.len() as u64, ids.into_iter().map(Ok))?;
        Ok(PendingRun(run))
    }

    /// Adds a run [`Runs::write`] made; it must be newer than every run held.
    pub(super) fn add(&mut self, run: PendingRun) {
        self.runs.push(run.0);
    }

    /// The two newest runs, when the newer is at least half the older's size: what [`Runs::merge`] takes.
    pub(super) fn merge_due(&self) -> Option<(u64, u64)> {
        let [.., older, newer] = self.runs.as_slice() else {
            return None;
        };
        (newer.count.saturating_mul(2) >= older.count).then_some((older.lo, newer.hi))
    }

    /// Merges the runs spanning `lo..=hi` into one file, dropping entries acked before `cutoff`. Reads the old runs
    /// through their own handles, so call it without holding the runs, then [`Runs::replace`].
    pub(super) fn merge(&self, lo: u64, hi: u64, cutoff: u64) -> StoreResult<PendingRun> {
        let parts: Vec<&Run> = self.runs.iter().filter(|r| r.lo >= lo && r.hi <= hi).collect();
        let expected: u64 = parts.iter().map(|r| r.count).sum();
        let mut streams = parts
            .iter()
            .map(|r| Ok(r.entries(&self.dir)?.peekable()))
            .collect::<StoreResult<Vec<_>>>()?;
        let merged = std::iter::from_fn(move || {
            loop {
                // The smallest id at the head of any stream; a newer run's copy of the same id wins.
                let mut best: Option<(usize, Uuid)> = None;
                for (i, s) in streams.iter_mut().enumerate() {
                    match s.peek() {
                        Some(Ok(e)) if best.is_none_or(|(_, id)| e.id <= id) => best = Some((i, e.id)),
                        Some(Err(_)) => return s.next(),
                        _ => {}
                    }
                }
                let (winner, id) = best?;
                let next = streams[winner].next();
                for s in streams.iter_mut() {
                    while s.next_if(|e| e.as_ref().is_ok_and(|e| e.id == id)).is_some() {}
                }
                match next {
                    Some(Ok(e)) if e.acked_at < cutoff => continue,
                    other => return other,
                }
            }
        });
        write_run(&self.dir, lo, hi, expected, merged).map(PendingRun)
    }

    /// Swaps the runs `merged` spans for it and deletes their files.
    pub(super) fn replace(&mut self, merged: PendingRun) {
        let merged = merged.0;
        let (lo, hi) = (merged.lo, merged.hi);
        let at = self.runs.iter().position(|r| r.lo >= lo).unwrap_or(self.runs.len());
        let old: Vec<Run> = self.runs.drain(at..).filter(|r| r.hi <= hi).collect();
        self.runs.insert(at, merged);
        for r in old {
            if let Err(e) = std::fs::remove_file(run_path(&self.dir, r.lo, r.hi)) {
                tracing::warn!(error = %e, "cannot delete a merged id run");
            }
        }
    }

    /// Deletes the runs whose every id was acked before `cutoff`; returns how many ids went.
    pub(super) fn purge(&mut self, cutoff: u64) -> usize {
        let mut purged = 0;
        let dir = self.dir.clone();
        // The newest run stays, whatever its age: its name numbers the next round.
        let newest = self.runs.pop();
        self.runs.retain(|r| {
            if r.newest_ack >= cutoff {
                return true;
            }
            match std::fs::remove_file(run_path(&dir, r.lo, r.hi)) {
                Ok(()) => {
                    purged += r.count as usize;
                    false
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot delete an expired id run");
                    true
                }
            }
        });
        self.runs.extend(newest);
        purged
    }
}

/// A run written to disk but not yet among the [`Runs`].
pub(super) struct PendingRun(Run);

fn write_run(
    dir: &Path,
    lo: u64,
    hi: u64,
    expected: u64,
    entries: impl Iterator<Item = std::io::Result<RetiredId>>,
) -> StoreResult<Run> {
    let path = run_path(dir, lo, hi);
    let tmp = path.with_extension("run.tmp");
    let mut out = BufWriter::with_capacity(1 << 16, File::create(&tmp).map_err(io_err)?);
    let mut builder = RunBuilder::new(expected);
    for e in entries {
        let e = e.map_err(io_err)?;
        out.write_all(&e.encode()).map_err(io_err)?;
        builder.add(&e);
    }
    let file = out.into_inner().map_err(|e| io_err(e.into_error()))?;
    file.sync_all().map_err(io_err)?;
    drop(file);
    std::fs::rename(&tmp, &path).map_err(io_err)?;
    sync_dir(dir).map_err(io_err)?;
    let file = File::open(&path).map_err(io_err)?;
    Ok(builder.finish(lo, hi, file))
}

fn load(path: &Path, lo: u64, hi: u64) -> StoreResult<Run> {
    let file = File::open(path).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    if !len.is_multiple_of(ENTRY as u64) {
        return Err(StoreError::Corrupt(format!("{} is not whole entries", path.display())));
    }
    let count = len / ENTRY as u64;
    let mut builder = RunBuilder::new(count);
    let mut reader = BufReader::with_capacity(1 << 16, File::open(path).map_err(io_err)?);
    let mut e = [0u8; ENTRY];
    for _ in 0..count {
        reader.read_exact(&mut e).map_err(io_err)?;
        builder.add(&RetiredId::decode(&e));
    }
    Ok(builder.finish(lo, hi, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retired(acked_at: u64) -> RetiredId {
        RetiredId {
            id: Uuid::new_v4(),
            seq: 1,
            acked_at,
            pair: pair_hash("alice", "bob"),
        }
    }

    #[test]
    fn runs_find_what_they_hold_merge_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut runs = Runs::open(dir.path()).unwrap();
        let mut all = Vec::new();
        for through in 1..=6 {
            let ids: Vec<RetiredId> = (0..300).map(|_| retired(through)).collect();
            all.extend(ids.iter().copied());
            let run = runs.write(through, ids).unwrap();
            runs.add(run);
            while let Some((lo, hi)) = runs.merge_due() {
                let merged = runs.merge(lo, hi, 0).unwrap();
                runs.replace(merged);
            }
        }
        assert!(runs.runs.len() <= 3, "{} runs", runs.runs.len());
        assert_eq!(runs.ids(), 1_800);
        assert_eq!(runs.last_round(), 6);
        for e in &all {
            assert_eq!(runs.find(&e.id).unwrap(), Some(*e));
        }
        let strangers = (0..1_000)
            .filter(|_| runs.find(&Uuid::new_v4()).unwrap().is_some())
            .count();
        assert_eq!(strangers, 0);

        let reopened = Runs::open(dir.path()).unwrap();
        assert_eq!((reopened.ids(), reopened.last_round()), (1_800, 6));
        assert_eq!(reopened.find(&all[17].id).unwrap(), Some(all[17]));

        // Merging drops what expired; the purge deletes runs past their time but keeps the newest.
        let merged = reopened.merge(1, 6, 4).unwrap();
        let mut reopened = reopened;
        reopened.replace(merged);
        assert_eq!(reopened.ids(), 900);
        assert_eq!(reopened.find(&all[0].id).unwrap(), None);
        assert_eq!(reopened.purge(100), 0);
        assert_eq!(reopened.last_round(), 6);
    }

    #[test]
    fn a_run_a_merge_left_behind_is_deleted_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut runs = Runs::open(dir.path()).unwrap();
        for through in 1..=2 {
            let run = runs.write(through, vec![retired(through)]).unwrap();
            runs.add(run);
        }
        // A crash after the merged run was renamed into place, before the parts were deleted.
        let merged = runs.merge(1, 2, 0).unwrap();
        drop(merged);
        let reopened = Runs::open(dir.path()).unwrap();
        assert_eq!((reopened.runs.len(), reopened.ids()), (1, 2));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

//! Blobs as files under a directory: `<id>` holds the bytes received, `<id>.json` the record. The bytes a blob
//! holds are its file's length, so an upload interrupted by a crash resumes from what reached the disk; the
//! records are kept in memory too (a few hundred bytes each, bounded by the quotas), with each owner's totals.

use std::collections::HashMap;
use std::io::{ErrorKind, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;
use uuid::Uuid;

use super::{
    blob_gauges, expired, Appended, BlobInfo, BlobQuota, BlobStream, Blobs, Created, NewBlob, Released, BLOB_CHUNK,
};
use crate::store::{StoreError, StoreGauge, StoreResult};

/// Blobs in a directory (see the module docs).
#[derive(Debug)]
pub struct FileBlobs {
    dir: PathBuf,
    index: Mutex<Index>,
}

#[derive(Debug, Default)]
struct Index {
    blobs: HashMap<Uuid, Arc<Entry>>,
    /// Each owner's blobs and their declared bytes: what a quota check reads.
    owners: HashMap<String, (usize, u64)>,
    /// Declared bytes of all blobs.
    bytes: u64,
}

impl Index {
    fn add(&mut self, info: BlobInfo) {
        let held = self.owners.entry(info.owner.clone()).or_default();
        *held = (held.0 + 1, held.1.saturating_add(info.size));
        self.bytes = self.bytes.saturating_add(info.size);
        self.blobs.insert(info.id, Arc::new(Entry::new(info)));
    }

    fn remove(&mut self, id: Uuid) {
        let Some(entry) = self.blobs.remove(&id) else {
            return;
        };
        let (owner, size) = {
            let info = entry.info();
            (info.owner, info.size)
        };
        self.bytes = self.bytes.saturating_sub(size);
        if let Some(held) = self.owners.get_mut(&owner) {
            *held = (held.0.saturating_sub(1), held.1.saturating_sub(size));
            if held.0 == 0 {
                self.owners.remove(&owner);
            }
        }
    }
}

/// One blob: its record, and the lock that orders its writes (appends, and the record's rewrites), held across
/// each write, so it is async.
#[derive(Debug)]
struct Entry {
    info: Mutex<BlobInfo>,
    writing: tokio::sync::Mutex<()>,
}

impl Entry {
    fn new(info: BlobInfo) -> Self {
        Self {
            info: Mutex::new(info),
            writing: tokio::sync::Mutex::new(()),
        }
    }

    fn info(&self) -> BlobInfo {
        self.info.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_received(&self, received: u64) {
        self.info.lock().unwrap_or_else(|p| p.into_inner()).received = received;
    }
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("{what} {}: {e}", path.display()))
}

/// The id a blob's bytes file is named with (its record and temporary files are not).
fn blob_id(path: &Path) -> Option<Uuid> {
    Uuid::parse_str(path.file_name()?.to_str()?).ok()
}

impl FileBlobs {
    /// Opens (creating) `dir` and reads the records of the blobs in it. Files without a readable record (a crash
    /// between the two writes of a creation), records without their bytes and temporary files are deleted.
    pub fn open(dir: &Path) -> StoreResult<Self> {
        std::fs::create_dir_all(dir).map_err(|e| io_err("cannot create", dir, e))?;
        let listing = std::fs::read_dir(dir).map_err(|e| io_err("cannot list", dir, e))?;
        let paths = listing
            .map(|item| item.map(|i| i.path()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| io_err("cannot list", dir, e))?;
        for path in &paths {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let of_blob = name.split_once('.').map(|(id, _)| id);
            let orphan = of_blob.is_some_and(|id| Uuid::parse_str(id).is_ok() && !dir.join(id).exists());
            if orphan || name.ends_with(".tmp") {
                let _ = std::fs::remove_file(path);
            }
        }
        let mut index = Index::default();
        for path in paths {
            let Some(id) = blob_id(&path) else { continue };
            let record = path.with_extension("json");
            let info = std::fs::read(&record)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<BlobInfo>(&bytes).ok());
            match info {
                Some(mut info) if info.id == id => {
                    let held = std::fs::metadata(&path)
                        .map_err(|e| io_err("cannot read", &path, e))?
                        .len();
                    info.received = held.min(info.size);
                    index.add(info);
                }
                _ => {
                    tracing::warn!(blob = %id, "a blob without its record: deleted");
                    let _ = std::fs::remove_file(&path);
                    let _ = std::fs::remove_file(&record);
                }
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
            index: Mutex::new(index),
        })
    }

    fn path(&self, id: Uuid) -> PathBuf {
        self.dir.join(id.to_string())
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn entry(&self, id: Uuid) -> Option<Arc<Entry>> {
        self.index().blobs.get(&id).cloned()
    }

    /// Writes `info`'s record next to its bytes, atomically (a temporary file of its own renamed over it). The
    /// caller holds the blob's writing lock, so records are written in the order of their changes.
    async fn write_record(&self, info: &BlobInfo) -> StoreResult<()> {
        let bytes = serde_json::to_vec(info).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let record = self.path(info.id).with_extension("json");
        let temporary = self
            .dir
            .join(format!("{}.json.{}.tmp", info.id, Uuid::new_v4().simple()));
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || -> StoreResult<()> {
            let write = || -> std::io::Result<()> {
                let mut file = std::fs::File::create(&temporary)?;
                std::io::Write::write_all(&mut file, &bytes)?;
                file.sync_all()?;
                std::fs::rename(&temporary, &record)?;
                std::fs::File::open(&dir)?.sync_all()
            };
            let written = write();
            if written.is_err() {
                let _ = std::fs::remove_file(&temporary);
            }
            written.map_err(|e| io_err("cannot write", &record, e))
        })
        .await
        .map_err(|e| StoreError::Backend(format!("blob task: {e}")))?
    }

    /// Deletes a blob: gone from the index at once, its files and their directory entries synced away.
    async fn delete(&self, id: Uuid) -> StoreResult<()> {
        self.index().remove(id);
        let path = self.path(id);
        for file in [path.with_extension("json"), path] {
            match tokio::fs::remove_file(&file).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("cannot delete", &file, e)),
            }
        }
        // Else a power loss could bring a released blob back.
        let dir = tokio::fs::File::open(&self.dir)
            .await
            .map_err(|e| io_err("cannot open", &self.dir, e))?;
        dir.sync_all().await.map_err(|e| io_err("cannot sync", &self.dir, e))
    }
}

#[async_trait]
impl Blobs for FileBlobs {
    async fn create(&self, blob: NewBlob, quota: BlobQuota) -> StoreResult<Created> {
        let info = BlobInfo::new(blob);
        {
            let mut index = self.index();
            let (count, bytes) = index.owners.get(&info.owner).copied().unwrap_or_default();
            if !quota.has_room(count, bytes, info.size) {
                return Ok(Created::QuotaFull);
            }
            // Taken now, under the index lock, so that two creations cannot both fit the last room.
            index.add(info.clone());
        }
        let path = self.path(info.id);
        let made = async {
            tokio::fs::File::create(&path)
                .await
                .map_err(|e| io_err("cannot create", &path, e))?;
            self.write_record(&info).await
        };
        if let Err(e) = made.await {
            let _ = self.delete(info.id).await;
            return Err(e);
        }
        Ok(Created::Created)
    }

    async fn blob(&self, id: Uuid) -> StoreResult<Option<BlobInfo>> {
        Ok(self.entry(id).map(|e| e.info()))
    }

    async fn append(&self, id: Uuid, offset: u64, data: Bytes) -> StoreResult<Appended> {
        let Some(entry) = self.entry(id) else {
            return Ok(Appended::Missing);
        };
        let _writing = entry.writing.lock().await;
        let end = match entry.info().append_end(offset, data.len()) {
            Ok(end) => end,
            Err(refused) => return Ok(refused),
        };
        let path = self.path(id);
        // Written from the part's own buffer (tokio's file would copy it into one of its own first).
        let written = tokio::task::spawn_blocking(move || -> StoreResult<bool> {
            let mut file = match std::fs::OpenOptions::new().write(true).open(&path) {
                Ok(file) => file,
                // Deleted since it was looked up (cancelled, released, expired).
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(io_err("cannot open", &path, e)),
            };
            file.seek(SeekFrom::Start(offset))
                .and_then(|_| file.write_all(&data))
                .map_err(|e| io_err("cannot write", &path, e))?;
            Ok(true)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("blob task: {e}")))??;
        if !written {
            return Ok(Appended::Missing);
        }
        entry.set_received(end);
        Ok(Appended::At(end))
    }

    async fn sync(&self, id: Uuid) -> StoreResult<()> {
        if self.entry(id).is_none() {
            return Ok(());
        }
        let path = self.path(id);
        match tokio::fs::File::open(&path).await {
            Ok(file) => file.sync_data().await.map_err(|e| io_err("cannot sync", &path, e)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("cannot open", &path, e)),
        }
    }

    async fn read(&self, id: Uuid, start: u64, end: u64) -> StoreResult<Option<BlobStream>> {
        if self.entry(id).is_none() {
            return Ok(None);
        }
        let path = self.path(id);
        // Once open, a deletion does not cut the read short: the file lives on until it is closed. Read on the
        // blocking pool straight into each piece (tokio's file would read into a buffer of its own first).
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("cannot open", &path, e)),
        };
        let pieces = futures_util::stream::try_unfold((file, start), move |(mut file, at)| {
            let path = path.clone();
            async move {
                if at >= end {
                    return Ok(None);
                }
                let want = usize::try_from(end - at).unwrap_or(BLOB_CHUNK).min(BLOB_CHUNK);
                let (file, piece) = tokio::task::spawn_blocking(move || {
                    let mut piece = vec![0u8; want];
                    file.seek(SeekFrom::Start(at))
                        .and_then(|_| file.read_exact(&mut piece))
                        .map_err(|e| io_err("cannot read", &path, e))
                        .map(|()| (file, piece))
                })
                .await
                .map_err(|e| StoreError::Backend(format!("blob task: {e}")))??;
                Ok(Some((Bytes::from(piece), (file, at + want as u64))))
            }
        });
        Ok(Some(Box::pin(pieces)))
    }

    async fn release(&self, id: Uuid, user: &str) -> StoreResult<Released> {
        let Some(entry) = self.entry(id) else {
            return Ok(Released::Missing);
        };
        // Two releases at once write the record one after the other, each from the state it left.
        let _writing = entry.writing.lock().await;
        if self.entry(id).is_none() {
            return Ok(Released::Missing);
        }
        let (released, info) = {
            let mut info = entry.info.lock().unwrap_or_else(|p| p.into_inner());
            (info.release(user), info.clone())
        };
        match released {
            Released::Deleted => self.delete(id).await?,
            Released::Kept => self.write_record(&info).await?,
            Released::NotYours | Released::Missing => {}
        }
        Ok(released)
    }

    async fn expire(&self, complete_before: u64, incomplete_before: u64) -> StoreResult<usize> {
        let old: Vec<Uuid> = self
            .index()
            .blobs
            .values()
            .map(|e| e.info())
            .filter(|i| expired(i, complete_before, incomplete_before))
            .map(|i| i.id)
            .collect();
        for id in &old {
            self.delete(*id).await?;
        }
        Ok(old.len())
    }

    fn gauges(&self) -> Vec<StoreGauge> {
        let index = self.index();
        blob_gauges(index.blobs.len(), index.bytes)
    }
}

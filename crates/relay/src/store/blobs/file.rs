//! Blobs as files under a directory: `<id>` holds the bytes received, `<id>.json` the record. The bytes a blob
//! holds are its file's length, so an upload interrupted by a crash resumes from what reached the disk; the
//! records are kept in memory too (a few hundred bytes each, bounded by the quotas).

use std::collections::HashMap;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use uuid::Uuid;

use super::{
    blob_gauges, expired, Appended, BlobInfo, BlobQuota, BlobStream, Blobs, Created, NewBlob, Released, BLOB_CHUNK,
};
use crate::store::{StoreError, StoreGauge, StoreResult};

/// Blobs in a directory (see the module docs).
#[derive(Debug)]
pub struct FileBlobs {
    dir: PathBuf,
    blobs: Mutex<HashMap<Uuid, Arc<Entry>>>,
}

/// One blob: its record, and the lock its appends take (held across the write, so it is async).
#[derive(Debug)]
struct Entry {
    info: Mutex<BlobInfo>,
    writer: tokio::sync::Mutex<()>,
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("{what} {}: {e}", path.display()))
}

impl FileBlobs {
    /// Opens (creating) `dir` and reads the records of the blobs in it. Files without a readable record (a crash
    /// between the two writes of a creation) are deleted.
    pub fn open(dir: &Path) -> StoreResult<Self> {
        std::fs::create_dir_all(dir).map_err(|e| io_err("cannot create", dir, e))?;
        let mut blobs = HashMap::new();
        let listing = std::fs::read_dir(dir).map_err(|e| io_err("cannot list", dir, e))?;
        let paths = listing
            .map(|item| item.map(|i| i.path()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| io_err("cannot list", dir, e))?;
        for path in &paths {
            // A record whose bytes are gone (a release racing the last one) or a temporary one.
            let stem = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.split_once('.'));
            let orphan = stem.is_some_and(|(id, _)| Uuid::parse_str(id).is_ok() && !dir.join(id).exists());
            if orphan {
                let _ = std::fs::remove_file(path);
            }
        }
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
                    blobs.insert(id, Arc::new(Entry::new(info)));
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
            blobs: Mutex::new(blobs),
        })
    }

    fn path(&self, id: Uuid) -> PathBuf {
        self.dir.join(id.to_string())
    }

    fn index(&self) -> MutexGuard<'_, HashMap<Uuid, Arc<Entry>>> {
        self.blobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn entry(&self, id: Uuid) -> Option<Arc<Entry>> {
        self.index().get(&id).cloned()
    }

    /// Writes `info`'s record next to its bytes, atomically (a temporary file renamed over it).
    async fn write_record(&self, info: &BlobInfo) -> StoreResult<()> {
        let bytes = serde_json::to_vec(info).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let record = self.path(info.id).with_extension("json");
        let temporary = record.with_extension("json.tmp");
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || -> StoreResult<()> {
            let write = || -> std::io::Result<()> {
                let mut file = std::fs::File::create(&temporary)?;
                std::io::Write::write_all(&mut file, &bytes)?;
                file.sync_all()?;
                std::fs::rename(&temporary, &record)?;
                std::fs::File::open(&dir)?.sync_all()
            };
            write().map_err(|e| io_err("cannot write", &record, e))
        })
        .await
        .map_err(|e| StoreError::Backend(format!("blob task: {e}")))?
    }

    async fn delete(&self, id: Uuid) -> StoreResult<()> {
        self.index().remove(&id);
        let path = self.path(id);
        for file in [path.with_extension("json"), path] {
            match tokio::fs::remove_file(&file).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("cannot delete", &file, e)),
            }
        }
        Ok(())
    }
}

impl Entry {
    fn new(info: BlobInfo) -> Self {
        Self {
            info: Mutex::new(info),
            writer: tokio::sync::Mutex::new(()),
        }
    }

    fn info(&self) -> BlobInfo {
        self.info.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_received(&self, received: u64) {
        self.info.lock().unwrap_or_else(|p| p.into_inner()).received = received;
    }
}

/// The id a blob's bytes file is named with (its record and temporary files are not).
fn blob_id(path: &Path) -> Option<Uuid> {
    Uuid::parse_str(path.file_name()?.to_str()?).ok()
}

#[async_trait]
impl Blobs for FileBlobs {
    async fn create(&self, blob: NewBlob, quota: BlobQuota) -> StoreResult<Created> {
        let info = BlobInfo::new(blob);
        {
            let mut index = self.index();
            let (count, bytes) = index
                .values()
                .map(|e| e.info())
                .filter(|i| i.owner == info.owner)
                .fold((0usize, 0u64), |(n, b), i| (n + 1, b.saturating_add(i.size)));
            if !quota.has_room(count, bytes, info.size) {
                return Ok(Created::QuotaFull);
            }
            // Taken now, under the index lock, so that two creations cannot both fit the last room.
            index.insert(info.id, Arc::new(Entry::new(info.clone())));
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
        let _writing = entry.writer.lock().await;
        let info = entry.info();
        if info.received != offset {
            return Ok(Appended::Mismatch {
                received: info.received,
            });
        }
        let end = offset.saturating_add(data.len() as u64);
        if end > info.size {
            return Ok(Appended::TooLong { size: info.size });
        }
        let path = self.path(id);
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .await
            .map_err(|e| io_err("cannot open", &path, e))?;
        file.seek(SeekFrom::Start(offset))
            .await
            .map_err(|e| io_err("cannot seek", &path, e))?;
        file.write_all(&data)
            .await
            .map_err(|e| io_err("cannot write", &path, e))?;
        file.flush().await.map_err(|e| io_err("cannot write", &path, e))?;
        entry.set_received(end);
        Ok(Appended::At(end))
    }

    async fn sync(&self, id: Uuid) -> StoreResult<()> {
        if self.entry(id).is_none() {
            return Ok(());
        }
        let path = self.path(id);
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| io_err("cannot open", &path, e))?;
        file.sync_data().await.map_err(|e| io_err("cannot sync", &path, e))
    }

    async fn read(&self, id: Uuid, start: u64, end: u64) -> StoreResult<Option<BlobStream>> {
        if self.entry(id).is_none() {
            return Ok(None);
        }
        let path = self.path(id);
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| io_err("cannot open", &path, e))?;
        file.seek(SeekFrom::Start(start))
            .await
            .map_err(|e| io_err("cannot seek", &path, e))?;
        let pieces =
            futures_util::stream::try_unfold((file, start, end, path), |(mut file, at, end, path)| async move {
                if at >= end {
                    return Ok(None);
                }
                let want = usize::try_from(end - at).unwrap_or(BLOB_CHUNK).min(BLOB_CHUNK);
                let mut piece = vec![0u8; want];
                file.read_exact(&mut piece)
                    .await
                    .map_err(|e| io_err("cannot read", &path, e))?;
                Ok(Some((Bytes::from(piece), (file, at + want as u64, end, path))))
            });
        Ok(Some(Box::pin(pieces)))
    }

    async fn release(&self, id: Uuid, user: &str) -> StoreResult<Released> {
        let Some(entry) = self.entry(id) else {
            return Ok(Released::Missing);
        };
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
        let bytes = index.values().map(|e| e.info().size).fold(0u64, u64::saturating_add);
        blob_gauges(index.len(), bytes)
    }
}

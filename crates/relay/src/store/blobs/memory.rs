//! Blobs in memory, for tests of the code above them and for relays over a [`crate::store::MemoryStore`].

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;
use uuid::Uuid;

use super::{
    blob_gauges, expired, Appended, BlobInfo, BlobQuota, BlobStream, Blobs, Created, NewBlob, Released, BLOB_CHUNK,
};
use crate::store::{StoreGauge, StoreResult};

/// Blobs in a map.
#[derive(Debug, Default)]
pub struct MemoryBlobs {
    blobs: Mutex<HashMap<Uuid, (BlobInfo, Vec<u8>)>>,
}

impl MemoryBlobs {
    fn map(&self) -> MutexGuard<'_, HashMap<Uuid, (BlobInfo, Vec<u8>)>> {
        self.blobs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Blobs for MemoryBlobs {
    async fn create(&self, blob: NewBlob, quota: BlobQuota) -> StoreResult<Created> {
        let mut map = self.map();
        let (count, bytes) = map
            .values()
            .filter(|(i, _)| i.owner == blob.owner)
            .fold((0usize, 0u64), |(n, b), (i, _)| (n + 1, b.saturating_add(i.size)));
        if !quota.has_room(count, bytes, blob.size) {
            return Ok(Created::QuotaFull);
        }
        map.insert(blob.id, (BlobInfo::new(blob), Vec::new()));
        Ok(Created::Created)
    }

    async fn blob(&self, id: Uuid) -> StoreResult<Option<BlobInfo>> {
        Ok(self.map().get(&id).map(|(i, _)| i.clone()))
    }

    async fn append(&self, id: Uuid, offset: u64, data: Bytes) -> StoreResult<Appended> {
        let mut map = self.map();
        let Some((info, bytes)) = map.get_mut(&id) else {
            return Ok(Appended::Missing);
        };
        let end = match info.append_end(offset, data.len()) {
            Ok(end) => end,
            Err(refused) => return Ok(refused),
        };
        bytes.extend_from_slice(&data);
        info.received = end;
        Ok(Appended::At(end))
    }

    async fn sync(&self, _id: Uuid) -> StoreResult<()> {
        Ok(())
    }

    async fn read(&self, id: Uuid, start: u64, end: u64) -> StoreResult<Option<BlobStream>> {
        let map = self.map();
        let Some((_, bytes)) = map.get(&id) else {
            return Ok(None);
        };
        let clamp = |at: u64| usize::try_from(at).unwrap_or(usize::MAX).min(bytes.len());
        let range = &bytes[clamp(start)..clamp(end).max(clamp(start))];
        let pieces: Vec<StoreResult<Bytes>> = range
            .chunks(BLOB_CHUNK)
            .map(|piece| Ok(Bytes::copy_from_slice(piece)))
            .collect();
        Ok(Some(Box::pin(futures_util::stream::iter(pieces))))
    }

    async fn release(&self, id: Uuid, user: &str) -> StoreResult<Released> {
        let mut map = self.map();
        let Some((info, _)) = map.get_mut(&id) else {
            return Ok(Released::Missing);
        };
        let released = info.release(user);
        if released == Released::Deleted {
            map.remove(&id);
        }
        Ok(released)
    }

    async fn expire(&self, complete_before: u64, incomplete_before: u64) -> StoreResult<usize> {
        let mut map = self.map();
        let before = map.len();
        map.retain(|_, (info, _)| !expired(info, complete_before, incomplete_before));
        Ok(before - map.len())
    }

    fn gauges(&self) -> Vec<StoreGauge> {
        let map = self.map();
        let bytes = map.values().map(|(i, _)| i.size).fold(0u64, u64::saturating_add);
        blob_gauges(map.len(), bytes)
    }
}

//! One story of blobs, run against every backend: what any place the relay keeps files' bytes must do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use futures_util::TryStreamExt as _;
use magpie_relay::store::blobs::{
    Appended, BlobQuota, Blobs, Created, FileBlobs, MemoryBlobs, NewBlob, Released, BLOB_CHUNK,
};
use uuid::Uuid;

#[cfg(feature = "postgres")]
use magpie_tests::pg;

fn blob(owner: &str, size: u64, recipients: &[&str], created_at: u64) -> NewBlob {
    NewBlob {
        id: Uuid::new_v4(),
        owner: owner.into(),
        size,
        recipients: recipients.iter().map(|r| r.to_string()).collect(),
        created_at,
    }
}

/// Bytes that differ at every offset, so a piece read from the wrong place shows.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

async fn read_all(store: &dyn Blobs, id: Uuid, start: u64, end: u64) -> Vec<u8> {
    let pieces: Vec<Bytes> = store
        .read(id, start, end)
        .await
        .unwrap()
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(
        pieces.iter().all(|p| p.len() <= BLOB_CHUNK),
        "pieces of at most a chunk"
    );
    pieces.concat()
}

/// Uploads `bytes` in parts of `part` bytes from where the blob ends.
async fn upload(store: &dyn Blobs, id: Uuid, bytes: &[u8], part: usize) {
    let mut at = store.blob(id).await.unwrap().unwrap().received;
    while (at as usize) < bytes.len() {
        let end = (at as usize + part).min(bytes.len());
        let piece = Bytes::copy_from_slice(&bytes[at as usize..end]);
        assert_eq!(store.append(id, at, piece).await.unwrap(), Appended::At(end as u64));
        at = end as u64;
    }
    store.sync(id).await.unwrap();
}

async fn story(store: &dyn Blobs) {
    // Parts append only where the blob ends, and never past its size.
    let size = 2 * BLOB_CHUNK + 1000;
    let bytes = pattern(size, 7);
    let first = blob("alice", size as u64, &["bob"], 1_000);
    let id = first.id;
    assert_eq!(
        store.create(first, BlobQuota::UNLIMITED).await.unwrap(),
        Created::Created
    );
    let info = store.blob(id).await.unwrap().unwrap();
    assert_eq!((info.received, info.size, info.complete()), (0, size as u64, false));
    assert!(info.readable_by("alice") && info.readable_by("bob") && !info.readable_by("carol"));
    let part = Bytes::copy_from_slice(&bytes[..100_000]);
    assert_eq!(store.append(id, 0, part.clone()).await.unwrap(), Appended::At(100_000));
    assert_eq!(
        store.append(id, 0, part).await.unwrap(),
        Appended::Mismatch { received: 100_000 },
        "a part sent again is refused, not appended twice"
    );
    assert_eq!(
        store.append(id, 100_000, Bytes::from(vec![0; size])).await.unwrap(),
        Appended::TooLong { size: size as u64 }
    );
    assert_eq!(
        store.blob(id).await.unwrap().unwrap().received,
        100_000,
        "refused parts wrote nothing"
    );
    upload(store, id, &bytes, 70_000).await;
    assert!(store.blob(id).await.unwrap().unwrap().complete());

    // Reads: the whole blob, any range, in pieces of at most a chunk.
    assert_eq!(read_all(store, id, 0, size as u64).await, bytes);
    for (start, end) in [
        (0, 1),
        (5, 300_000),
        (BLOB_CHUNK as u64 - 1, BLOB_CHUNK as u64 + 1),
        (size as u64 - 3, size as u64),
    ] {
        assert_eq!(
            read_all(store, id, start, end).await,
            bytes[start as usize..end as usize],
            "range {start}..{end}"
        );
    }
    assert!(store.read(Uuid::new_v4(), 0, 1).await.unwrap().is_none());
    assert_eq!(
        store.append(Uuid::new_v4(), 0, Bytes::from_static(b"x")).await.unwrap(),
        Appended::Missing
    );

    // Release: strangers change nothing; each recipient releases once; the last one's release deletes it.
    let shared = blob("alice", 10, &["bob", "carol"], 1_000);
    let shared_id = shared.id;
    store.create(shared, BlobQuota::UNLIMITED).await.unwrap();
    assert_eq!(store.release(shared_id, "mallory").await.unwrap(), Released::NotYours);
    assert_eq!(store.release(shared_id, "bob").await.unwrap(), Released::Kept);
    assert_eq!(store.release(shared_id, "bob").await.unwrap(), Released::Kept);
    assert_eq!(
        store.blob(shared_id).await.unwrap().unwrap().released,
        vec!["bob".to_owned()]
    );
    assert_eq!(store.release(shared_id, "carol").await.unwrap(), Released::Deleted);
    assert_eq!(store.blob(shared_id).await.unwrap(), None);
    assert_eq!(store.release(shared_id, "carol").await.unwrap(), Released::Missing);
    // The uploader's release is a cancel.
    let cancelled = blob("alice", 10, &["bob"], 1_000);
    let cancelled_id = cancelled.id;
    store.create(cancelled, BlobQuota::UNLIMITED).await.unwrap();
    assert_eq!(store.release(cancelled_id, "alice").await.unwrap(), Released::Deleted);
    assert_eq!(store.blob(cancelled_id).await.unwrap(), None);

    // Quotas count the owner's blobs by declared size, from creation on.
    let quota = BlobQuota {
        blobs: 2,
        bytes: size as u64 + 100,
    };
    assert_eq!(
        store.create(blob("alice", 101, &["bob"], 1_000), quota).await.unwrap(),
        Created::QuotaFull
    );
    assert_eq!(
        store.create(blob("alice", 100, &["bob"], 1_000), quota).await.unwrap(),
        Created::Created
    );
    assert_eq!(
        store.create(blob("alice", 0, &["bob"], 1_000), quota).await.unwrap(),
        Created::QuotaFull,
        "2 blobs"
    );
    assert_eq!(
        store.create(blob("bob", 100, &["alice"], 1_000), quota).await.unwrap(),
        Created::Created,
        "per owner"
    );

    // Expiry: complete blobs by one date, incomplete ones by another.
    let old_incomplete = blob("dave", 10, &["bob"], 500);
    let old_incomplete_id = old_incomplete.id;
    store.create(old_incomplete, BlobQuota::UNLIMITED).await.unwrap();
    let expired = store.expire(900, 600).await.unwrap();
    assert_eq!(expired, 1, "only the incomplete blob older than 600");
    assert_eq!(store.blob(old_incomplete_id).await.unwrap(), None);
    assert!(store.blob(id).await.unwrap().is_some(), "complete and younger than 900");
    assert_eq!(
        store.expire(1_001, 1_001).await.unwrap(),
        3,
        "the complete one and the two incomplete ones"
    );
    assert_eq!(store.blob(id).await.unwrap(), None);
}

#[tokio::test]
async fn story_memory() {
    story(&MemoryBlobs::default()).await;
}

#[tokio::test]
async fn story_files() {
    let dir = tempfile::tempdir().unwrap();
    story(&FileBlobs::open(dir.path()).unwrap()).await;
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "deleted blobs leave no file: {left:?}");
}

#[tokio::test]
async fn files_keep_blobs_and_what_arrived_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = pattern(BLOB_CHUNK + 5, 3);
    let (id, half) = {
        let store = FileBlobs::open(dir.path()).unwrap();
        let new = blob("alice", bytes.len() as u64, &["bob", "carol"], 1_000);
        let id = new.id;
        store.create(new, BlobQuota::UNLIMITED).await.unwrap();
        let half = bytes.len() / 2;
        store
            .append(id, 0, Bytes::copy_from_slice(&bytes[..half]))
            .await
            .unwrap();
        store.sync(id).await.unwrap();
        assert_eq!(store.release(id, "bob").await.unwrap(), Released::Kept);
        (id, half as u64)
    };
    // A record left by a release racing the last one, and a temporary one, without their bytes.
    let stray = Uuid::new_v4();
    std::fs::write(dir.path().join(format!("{stray}.json")), b"{}").unwrap();
    std::fs::write(dir.path().join(format!("{stray}.json.tmp")), b"{").unwrap();
    let store = FileBlobs::open(dir.path()).unwrap();
    let info = store.blob(id).await.unwrap().unwrap();
    assert_eq!((info.received, info.released.clone()), (half, vec!["bob".to_owned()]));
    upload(&store, id, &bytes, 100_000).await;
    assert_eq!(read_all(&store, id, 0, bytes.len() as u64).await, bytes);
    assert!(!dir.path().join(format!("{stray}.json")).exists());
    assert!(!dir.path().join(format!("{stray}.json.tmp")).exists());
    assert_eq!(store.release(id, "carol").await.unwrap(), Released::Deleted);
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn story_postgres() {
    let Some(url) = pg::fresh_database().await else { return };
    story(
        &magpie_relay::store::PgStore::connect(&url, 4, Default::default())
            .await
            .unwrap(),
    )
    .await;
}

/// Two nodes on one database: a blob uploaded half on one and half on the other reads whole from either, and
/// parts racing for one offset are appended once.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_nodes_share_blobs_and_racing_parts_append_once() {
    let Some(url) = pg::fresh_database().await else { return };
    let one = magpie_relay::store::PgStore::connect(&url, 4, Default::default())
        .await
        .unwrap();
    let two = magpie_relay::store::PgStore::connect(&url, 4, Default::default())
        .await
        .unwrap();
    let bytes = pattern(3 * BLOB_CHUNK, 9);
    let new = blob("alice", bytes.len() as u64, &["bob"], 1_000);
    let id = new.id;
    one.create(new, BlobQuota::UNLIMITED).await.unwrap();
    let first = Bytes::copy_from_slice(&bytes[..BLOB_CHUNK]);
    let (a, b) = tokio::join!(one.append(id, 0, first.clone()), two.append(id, 0, first));
    let outcomes = [a.unwrap(), b.unwrap()];
    assert!(outcomes.contains(&Appended::At(BLOB_CHUNK as u64)), "{outcomes:?}");
    assert!(
        outcomes.contains(&Appended::Mismatch {
            received: BLOB_CHUNK as u64
        }),
        "{outcomes:?}"
    );
    upload(&two, id, &bytes, BLOB_CHUNK).await;
    assert_eq!(read_all(&one, id, 0, bytes.len() as u64).await, bytes);
    assert_eq!(
        read_all(&two, id, 100, 2 * BLOB_CHUNK as u64 + 7).await,
        bytes[100..2 * BLOB_CHUNK + 7]
    );
}

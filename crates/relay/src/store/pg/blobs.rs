//! Blobs on PostgreSQL, as chunked rows: `blobs` holds each record, `blob_chunks` its bytes, one row per part
//! appended (at most [`BLOB_CHUNK`]), keyed by the offset it starts at. Rows rather than large objects because rows
//! are what every relay's connection pool, `pg_dump` and replication already carry, they go with their record
//! (`ON DELETE CASCADE`), and an append is one ordinary transaction: the part's row and the record's new length
//! commit together, so a blob's length never counts bytes that are not there.

use async_trait::async_trait;
use bytes::Bytes;
use deadpool_postgres::GenericClient as _;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{db_err, int, uint, PgStore};
use crate::store::blobs::{Appended, BlobInfo, BlobQuota, BlobStream, Blobs, Created, NewBlob, Released};
use crate::store::{StoreGauge, StoreResult};

/// Migration v3: the blobs' tables. Ciphertext does not compress: `EXTERNAL` keeps PostgreSQL from trying.
pub(super) const MIGRATION: &str = "
    CREATE TABLE blobs (
        id uuid PRIMARY KEY,
        owner text NOT NULL,
        size bigint NOT NULL,
        received bigint NOT NULL DEFAULT 0,
        recipients text[] NOT NULL,
        released text[] NOT NULL DEFAULT '{}',
        created_at bigint NOT NULL
    );
    CREATE INDEX blobs_owner ON blobs (owner);
    CREATE INDEX blobs_created ON blobs (created_at);
    CREATE TABLE blob_chunks (
        blob uuid NOT NULL REFERENCES blobs (id) ON DELETE CASCADE,
        at bigint NOT NULL,
        data bytea NOT NULL,
        PRIMARY KEY (blob, at)
    );
    ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
";

/// Any number, the same on every node: with the owner's name, serializes the quota checks of one owner.
const QUOTA_LOCK: i32 = 0x626c_6f62;

fn info_of(row: &Row) -> StoreResult<BlobInfo> {
    Ok(BlobInfo {
        id: row.get("id"),
        owner: row.get("owner"),
        size: uint(row.get("size"))?,
        received: uint(row.get("received"))?,
        recipients: row.get("recipients"),
        released: row.get("released"),
        created_at: uint(row.get("created_at"))?,
    })
}

impl PgStore {
    async fn blob_row(&self, id: Uuid) -> StoreResult<Option<BlobInfo>> {
        let row = self
            .client()
            .await?
            .query_opt("SELECT * FROM blobs WHERE id = $1", &[&id])
            .await
            .map_err(db_err)?;
        row.as_ref().map(info_of).transpose()
    }
}

#[async_trait]
impl Blobs for PgStore {
    async fn create(&self, blob: NewBlob, quota: BlobQuota) -> StoreResult<Created> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_err)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&QUOTA_LOCK, &blob.owner],
        )
        .await
        .map_err(db_err)?;
        let held = tx
            .query_one(
                "SELECT count(*), coalesce(sum(size), 0)::bigint FROM blobs WHERE owner = $1",
                &[&blob.owner],
            )
            .await
            .map_err(db_err)?;
        let count = usize::try_from(held.get::<_, i64>(0)).unwrap_or(usize::MAX);
        if !quota.has_room(count, uint(held.get(1))?, blob.size) {
            return Ok(Created::QuotaFull);
        }
        tx.execute(
            "INSERT INTO blobs (id, owner, size, recipients, created_at) VALUES ($1, $2, $3, $4, $5)",
            &[
                &blob.id,
                &blob.owner,
                &int(blob.size)?,
                &blob.recipients,
                &int(blob.created_at)?,
            ],
        )
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(Created::Created)
    }

    async fn blob(&self, id: Uuid) -> StoreResult<Option<BlobInfo>> {
        self.blob_row(id).await
    }

    async fn append(&self, id: Uuid, offset: u64, data: Bytes) -> StoreResult<Appended> {
        let length = int(data.len() as u64)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_err)?;
        // The row lock of this update orders appends racing on one blob; the loser finds the new length.
        let grown = tx
            .query_opt(
                "UPDATE blobs SET received = received + $3
                 WHERE id = $1 AND received = $2 AND received + $3 <= size RETURNING received",
                &[&id, &int(offset)?, &length],
            )
            .await
            .map_err(db_err)?;
        let Some(grown) = grown else {
            drop(tx);
            return Ok(match self.blob_row(id).await? {
                None => Appended::Missing,
                Some(info) if info.received != offset => Appended::Mismatch {
                    received: info.received,
                },
                Some(info) => Appended::TooLong { size: info.size },
            });
        };
        if !data.is_empty() {
            tx.execute(
                "INSERT INTO blob_chunks (blob, at, data) VALUES ($1, $2, $3)",
                &[&id, &int(offset)?, &data.as_ref()],
            )
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(Appended::At(uint(grown.get(0))?))
    }

    async fn sync(&self, _id: Uuid) -> StoreResult<()> {
        // Each append committed with synchronous_commit.
        Ok(())
    }

    async fn read(&self, id: Uuid, start: u64, end: u64) -> StoreResult<Option<BlobStream>> {
        if self.blob_row(id).await?.is_none() {
            return Ok(None);
        }
        let pool = self.pool.clone();
        // Each step reads the part holding byte `at` (the last starting at or before it: found through the
        // primary key, however many parts the blob has), cut to [at, end).
        let pieces = futures_util::stream::try_unfold(start, move |at| {
            let pool = pool.clone();
            async move {
                if at >= end {
                    return Ok(None);
                }
                let client = pool.get().await.map_err(db_err)?;
                let row = client
                    .query_opt(
                        "SELECT at, data FROM blob_chunks WHERE blob = $1 AND at <= $2 ORDER BY at DESC LIMIT 1",
                        &[&id, &int(at)?],
                    )
                    .await
                    .map_err(db_err)?;
                let Some(row) = row else {
                    // Deleted while it was read (released, cancelled, expired): the download ends short.
                    return Ok(None);
                };
                let part_at = uint(row.get(0))?;
                let data = Bytes::from(row.get::<_, Vec<u8>>(1));
                let part_end = part_at.saturating_add(data.len() as u64);
                if part_end <= at {
                    return Ok(None);
                }
                let cut = |offset: u64| usize::try_from(offset - part_at).unwrap_or(usize::MAX).min(data.len());
                let to = part_end.min(end);
                Ok(Some((data.slice(cut(at)..cut(to)), to)))
            }
        });
        Ok(Some(Box::pin(pieces)))
    }

    async fn release(&self, id: Uuid, user: &str) -> StoreResult<Released> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db_err)?;
        let row = tx
            .query_opt("SELECT * FROM blobs WHERE id = $1 FOR UPDATE", &[&id])
            .await
            .map_err(db_err)?;
        let Some(row) = row else {
            return Ok(Released::Missing);
        };
        let mut info = info_of(&row)?;
        let released = info.release(user);
        match released {
            Released::Deleted => {
                tx.execute("DELETE FROM blobs WHERE id = $1", &[&id])
                    .await
                    .map_err(db_err)?;
            }
            Released::Kept => {
                tx.execute("UPDATE blobs SET released = $2 WHERE id = $1", &[&id, &info.released])
                    .await
                    .map_err(db_err)?;
            }
            Released::NotYours | Released::Missing => return Ok(released),
        }
        tx.commit().await.map_err(db_err)?;
        Ok(released)
    }

    async fn expire(&self, complete_before: u64, incomplete_before: u64) -> StoreResult<usize> {
        let deleted = self
            .client()
            .await?
            .execute(
                "DELETE FROM blobs WHERE (received = size AND created_at < $1) OR (received < size AND created_at < $2)",
                &[&int(complete_before)?, &int(incomplete_before)?],
            )
            .await
            .map_err(db_err)?;
        Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
    }

    fn gauges(&self) -> Vec<StoreGauge> {
        // Counting rows on every scrape would cost the database; the relays' metrics say what they serve.
        Vec::new()
    }
}

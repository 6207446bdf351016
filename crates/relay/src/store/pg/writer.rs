//! Envelope inserts in groups. One writer task per relay takes every insert queued while the last group committed
//! and stores them together: one transaction, so one fsync, and one announcement (a few, past NOTIFY's 8,000-byte
//! payload) instead of one of each per envelope. PostgreSQL serialises every committing NOTIFY on one lock, so
//! per-envelope notifications cap a whole cluster below about 1,000 envelopes a second.
//!
//! What a group must keep, as a single insert did: it locks its recipients (in the order of the lock keys, so
//! that two relays' groups cannot deadlock) before drawing seqs, so each recipient's envelopes commit in seq order;
//! quotas are counted under those locks; an id already stored, or stored twice in one group, is a duplicate of
//! the first copy (same sender and recipient) or taken.

use std::collections::HashMap;

use std::sync::Arc;
use std::time::Instant;

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::held::Held;
use super::{db_err, int, uint, MAIL_CHANNEL};
use crate::metrics::Metrics;
use crate::store::{
    kind_tag, Inserted, MailboxQuota, NewEnvelope, PendingInsert, StoreError, StoreResult, StoredEnvelope,
};

/// Most envelopes in one group.
const MOST_IN_GROUP: usize = 1024;
/// Inserts waiting for the writer at most; more wait to be queued.
const QUEUE: usize = 4096;
/// An announcement's payload at most (NOTIFY's limit is 8,000 bytes).
const PAYLOAD_BYTES: usize = 7_900;

type Reply = oneshot::Sender<StoreResult<Inserted>>;

/// The queue to a relay's writer.
#[derive(Debug, Clone)]
pub(super) struct Writer {
    queue: mpsc::Sender<(NewEnvelope, MailboxQuota, Reply)>,
}

impl Writer {
    /// Starts the writer of the relay `node` on `pool`, counting its groups in `metrics` as the embedded store
    /// counts its flushes; it ends when the last handle is dropped.
    /// What it stores is held in `held` until announced.
    pub(super) fn start(pool: Pool, node: u64, metrics: Arc<Metrics>, held: Arc<Held>) -> Self {
        let (queue, waiting) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool, node, metrics, held, waiting));
        Self { queue }
    }

    /// Queues `envelope` for the next group, behind what was queued before; its answer to come.
    pub(super) async fn queue(&self, envelope: NewEnvelope, quota: MailboxQuota) -> StoreResult<PendingInsert> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Backend("postgresql writer stopped".into());
        self.queue.send((envelope, quota, reply)).await.map_err(|_| stopped())?;
        Ok(Box::pin(async move { answer.await.map_err(|_| stopped())? }))
    }
}

async fn run(
    pool: Pool,
    node: u64,
    metrics: Arc<Metrics>,
    held: Arc<Held>,
    mut waiting: mpsc::Receiver<(NewEnvelope, MailboxQuota, Reply)>,
) {
    let mut group = Vec::new();
    let mut replies: Vec<Reply> = Vec::new();
    while let Some((envelope, quota, reply)) = waiting.recv().await {
        group.push((envelope, quota));
        replies.push(reply);
        while group.len() < MOST_IN_GROUP {
            let Ok((envelope, quota, reply)) = waiting.try_recv() else {
                break;
            };
            group.push((envelope, quota));
            replies.push(reply);
        }
        let size = group.len();
        let started = Instant::now();
        match write(&pool, node, &held, std::mem::take(&mut group)).await {
            Ok(answers) => {
                metrics.record_flush(started.elapsed(), size);
                for (reply, answer) in replies.drain(..).zip(answers) {
                    // A request that went away has nobody to tell.
                    let _ = reply.send(Ok(answer));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, envelopes = size, "a group of envelopes was not stored");
                for reply in replies.drain(..) {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// What became of one envelope of a group before the insert.
enum Fate {
    Decided(Inserted),
    /// Stored by this group, at this index of the inserted rows.
    Stored(usize),
    /// A second copy of the envelope at this index of the inserted rows.
    CopyOf(usize),
}

async fn write(
    pool: &Pool,
    node: u64,
    held: &Held,
    group: Vec<(NewEnvelope, MailboxQuota)>,
) -> StoreResult<Vec<Inserted>> {
    let mut client = pool.get().await.map_err(db_err)?;
    let tx = client.transaction().await.map_err(db_err)?;
    let mut recipients: Vec<&str> = group.iter().map(|(e, _)| e.to.as_str()).collect();
    recipients.sort_unstable();
    recipients.dedup();
    // Locks taken in the order of their keys, whoever takes them: no two groups wait on each other.
    tx.execute(
        "SELECT pg_advisory_xact_lock(key) FROM
            (SELECT DISTINCT hashtextextended(r, 0) AS key FROM unnest($1::text[]) AS r) AS keys
         ORDER BY key",
        &[&recipients],
    )
    .await
    .map_err(db_err)?;

    let ids: Vec<Uuid> = group.iter().map(|(e, _)| e.id).collect();
    let mut known: HashMap<Uuid, (String, String, u64)> = HashMap::new();
    for row in tx
        .query(
            "SELECT id, sender, recipient, seq FROM envelopes WHERE id = ANY($1)",
            &[&ids],
        )
        .await
        .map_err(db_err)?
    {
        known.insert(row.get(0), (row.get(1), row.get(2), uint(row.get(3))?));
    }
    let mut waiting: HashMap<String, (usize, u64)> = HashMap::new();
    if group.iter().any(|(_, quota)| *quota != MailboxQuota::UNLIMITED) {
        let rows = tx
            .query(
                "SELECT recipient, count(*), coalesce(sum(octet_length(body)), 0)::bigint FROM envelopes
                 WHERE recipient = ANY($1) AND acked_at IS NULL GROUP BY recipient",
                &[&recipients],
            )
            .await
            .map_err(db_err)?;
        for row in rows {
            let count = usize::try_from(row.get::<_, i64>(1)).unwrap_or(usize::MAX);
            waiting.insert(row.get(0), (count, uint(row.get(2))?));
        }
    }

    // Decided in queue order, so that a mailbox fills as it would one envelope at a time.
    let mut fates = Vec::with_capacity(group.len());
    let mut new: Vec<&NewEnvelope> = Vec::new();
    let mut in_group: HashMap<Uuid, usize> = HashMap::new();
    for (envelope, quota) in &group {
        let same_pair = |from: &str, to: &str| from == envelope.from && to == envelope.to;
        let fate = if let Some((from, to, seq)) = known.get(&envelope.id) {
            Fate::Decided(if same_pair(from, to) {
                Inserted::Duplicate { seq: *seq }
            } else {
                Inserted::IdTaken
            })
        } else if let Some(&first) = in_group.get(&envelope.id) {
            if same_pair(&new[first].from, &new[first].to) {
                Fate::CopyOf(first)
            } else {
                Fate::Decided(Inserted::IdTaken)
            }
        } else {
            let (count, bytes) = waiting.entry(envelope.to.clone()).or_insert((0, 0));
            let size = envelope.body_b64.len() as u64;
            if quota.has_room(*count, *bytes, size) {
                *count += 1;
                *bytes += size;
                in_group.insert(envelope.id, new.len());
                new.push(envelope);
                Fate::Stored(new.len() - 1)
            } else {
                Fate::Decided(Inserted::MailboxFull)
            }
        };
        fates.push(fate);
    }

    let seqs = draw_seqs(&tx, new.len()).await?;
    let stored = insert(&tx, &new, &seqs).await?;
    announce(&tx, node, &new, &seqs, &stored).await?;
    let stored_envelope = |i: usize| {
        let e = new[i];
        StoredEnvelope {
            seq: seqs[i],
            id: e.id,
            from: e.from.clone(),
            to: e.to.clone(),
            kind: e.kind,
            body_b64: e.body_b64.clone(),
            received_at: e.received_at,
        }
    };
    // Held before the commit, since the announcement may come back before `commit` returns.
    let holding = held.hold((0..new.len()).filter(|&i| stored[i]).map(stored_envelope));
    if let Err(e) = tx.commit().await {
        held.release(&holding);
        return Err(db_err(e));
    }
    Ok(fates
        .into_iter()
        .map(|fate| match fate {
            Fate::Decided(inserted) => inserted,
            Fate::Stored(i) if stored[i] => Inserted::Stored(stored_envelope(i)),
            // Another relay stored this id meanwhile, for another recipient (under another lock).
            Fate::Stored(_) => Inserted::IdTaken,
            Fate::CopyOf(i) => Inserted::Duplicate { seq: seqs[i] },
        })
        .collect())
}

/// `n` new seqs, in increasing order: drawn under the group's locks, so each recipient's are later than any
/// committed before.
async fn draw_seqs(tx: &deadpool_postgres::Transaction<'_>, n: usize) -> StoreResult<Vec<u64>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let rows = tx
        .query(
            "SELECT nextval('envelope_seq') FROM generate_series(1, $1)",
            &[&i32::try_from(n).unwrap_or(i32::MAX)],
        )
        .await
        .map_err(db_err)?;
    let mut seqs = rows
        .iter()
        .map(|row| uint(row.get(0)))
        .collect::<StoreResult<Vec<u64>>>()?;
    seqs.sort_unstable();
    Ok(seqs)
}

/// Inserts `new` with `seqs`; which of them were stored (an id another relay took meanwhile is not).
async fn insert(tx: &deadpool_postgres::Transaction<'_>, new: &[&NewEnvelope], seqs: &[u64]) -> StoreResult<Vec<bool>> {
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = new.iter().map(|e| e.id).collect();
    let senders: Vec<&str> = new.iter().map(|e| e.from.as_str()).collect();
    let recipients: Vec<&str> = new.iter().map(|e| e.to.as_str()).collect();
    let seqs: Vec<i64> = seqs.iter().map(|s| int(*s)).collect::<StoreResult<_>>()?;
    let kinds: Vec<i16> = new.iter().map(|e| i16::from(kind_tag(e.kind))).collect();
    let bodies: Vec<&str> = new.iter().map(|e| e.body_b64.as_str()).collect();
    let received: Vec<i64> = new.iter().map(|e| int(e.received_at)).collect::<StoreResult<_>>()?;
    let rows = tx
        .query(
            "INSERT INTO envelopes (id, sender, recipient, seq, kind, body, received_at)
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::smallint[], $6::text[],
                                  $7::bigint[])
             ON CONFLICT (id) DO NOTHING RETURNING id",
            &[&ids, &senders, &recipients, &seqs, &kinds, &bodies, &received],
        )
        .await
        .map_err(db_err)?;
    let stored: std::collections::HashSet<Uuid> = rows.iter().map(|row| row.get(0)).collect();
    Ok(ids.iter().map(|id| stored.contains(id)).collect())
}

/// Tells every relay (this one too: see held.rs) what the group stored, `"<node> <recipient>:<seq> …"`, in seq order, in as few
/// notifications as the payload limit allows; delivered when the group commits.
async fn announce(
    tx: &deadpool_postgres::Transaction<'_>,
    node: u64,
    new: &[&NewEnvelope],
    seqs: &[u64],
    stored: &[bool],
) -> StoreResult<()> {
    let mut payload = node.to_string();
    let head = payload.len();
    for ((e, seq), _) in new.iter().zip(seqs).zip(stored).filter(|(_, stored)| **stored) {
        let entry = format!(" {}:{seq}", e.to);
        if payload.len() + entry.len() > PAYLOAD_BYTES {
            notify(tx, &payload).await?;
            payload.truncate(head);
        }
        payload.push_str(&entry);
    }
    if payload.len() > head {
        notify(tx, &payload).await?;
    }
    Ok(())
}

async fn notify(tx: &deadpool_postgres::Transaction<'_>, payload: &str) -> StoreResult<()> {
    tx.execute("SELECT pg_notify($1, $2)", &[&MAIL_CHANNEL, &payload])
        .await
        .map_err(db_err)?;
    Ok(())
}

//! What the relay's handlers call: the store, async, so that a networked backend (PostgreSQL) never blocks the
//! runtime. An embedded [`Store`] (memory, sled, the mailbox log) answers from memory or its own files at once and
//! is made durable in groups by a [`GroupCommit`] thread: [`Embedded`] pairs the two.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use super::{
    ChallengeRecord, GroupCommit, Inserted, MailboxQuota, NewEnvelope, Store, StoreError, StoreGauge, StoreResult,
    StoredEnvelope, TokenRecord, UserRecord,
};
use crate::metrics::Metrics;

/// A wait for durability, registered when it was made (see [`Backend::durable_later`]).
pub type Durable = Pin<Box<dyn Future<Output = StoreResult<()>> + Send + 'static>>;

/// An insert's answer to come (see [`Backend::insert_queued`]).
pub type PendingInsert = Pin<Box<dyn Future<Output = StoreResult<Inserted>> + Send + 'static>>;

/// Everything the relay persists, as its handlers see it. The methods are [`Store`]'s, async, plus durability.
#[async_trait]
pub trait Backend: Send + Sync + fmt::Debug + 'static {
    /// [`Store::add_user`].
    async fn add_user(&self, user: &UserRecord) -> StoreResult<bool>;
    /// [`Store::user`].
    async fn user(&self, username: &str) -> StoreResult<Option<UserRecord>>;
    /// [`Store::has_user`].
    async fn has_user(&self, username: &str) -> StoreResult<bool>;
    /// [`Store::put_challenge`].
    async fn put_challenge(&self, nonce: &[u8], challenge: &ChallengeRecord) -> StoreResult<()>;
    /// [`Store::take_challenge`].
    async fn take_challenge(&self, nonce: &[u8]) -> StoreResult<Option<ChallengeRecord>>;
    /// [`Store::put_token`].
    async fn put_token(&self, token_hash: &[u8; 32], token: &TokenRecord) -> StoreResult<()>;
    /// [`Store::token`].
    async fn token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<TokenRecord>>;
    /// [`Store::insert_envelope_within`].
    async fn insert_envelope_within(&self, envelope: NewEnvelope, quota: MailboxQuota) -> StoreResult<Inserted>;
    /// [`Store::fetch_within`].
    async fn fetch_within(&self, to: &str, after: u64, limit: usize, budget: usize)
        -> StoreResult<Vec<StoredEnvelope>>;
    /// [`Store::ack`].
    async fn ack(&self, to: &str, ids: &[Uuid], now: u64) -> StoreResult<usize>;
    /// [`Store::mailboxes`].
    async fn mailboxes(&self) -> StoreResult<Vec<String>>;
    /// [`Store::purge_expired`].
    async fn purge_expired(&self, now: u64) -> StoreResult<usize>;
    /// What the backend reports about itself at `GET /metrics`.
    fn gauges(&self) -> Vec<StoreGauge>;

    /// Joins the wait for durability now: what was written before this call is covered when the returned future
    /// resolves, so a caller can register several writes in order and await them later, in that order.
    fn durable_later(&self) -> Durable;

    /// Whether what it stores reaches push sockets through its announcements, in commit order (`fanout.rs`),
    /// rather than from the request that stored it.
    fn announces(&self) -> bool {
        false
    }

    /// Whether the store answers now (the health check). Embedded stores always do.
    async fn ready(&self) -> StoreResult<()> {
        Ok(())
    }

    /// Resolves once every write made before this call is durable.
    async fn durable(&self) -> StoreResult<()> {
        self.durable_later().await
    }

    /// Queues an insert behind those queued before it and returns its answer to come, so that a caller that queues
    /// several in order (the push socket) has them stored in that order without waiting for each. An embedded
    /// store inserts at once (the answer is ready); PostgreSQL's comes when the insert's group commits.
    async fn insert_queued(&self, envelope: NewEnvelope, quota: MailboxQuota) -> StoreResult<PendingInsert> {
        let inserted = self.insert_envelope_within(envelope, quota).await;
        Ok(Box::pin(std::future::ready(inserted)))
    }

    /// [`Backend::insert_envelope_within`] with no quota.
    async fn insert_envelope(&self, envelope: NewEnvelope) -> StoreResult<Inserted> {
        self.insert_envelope_within(envelope, MailboxQuota::UNLIMITED).await
    }

    /// `to`'s pending envelopes with `seq > after`, oldest first, at most `limit`.
    async fn fetch(&self, to: &str, after: u64, limit: usize) -> StoreResult<Vec<StoredEnvelope>> {
        self.fetch_within(to, after, limit, usize::MAX).await
    }

    /// Acknowledges, at `now` and for their recipients, the waiting envelopes received before `received_before`:
    /// they are deleted and their ids stay known for dedup (a late retry is still a duplicate, not a new
    /// envelope). Returns how many. Costs one read of each non-empty mailbox's oldest envelope, and a page read per
    /// 256 expired ones (or 4 MiB of them): mailboxes are in receive order.
    async fn expire_waiting(&self, received_before: u64, now: u64) -> StoreResult<usize> {
        const PAGE: usize = 256;
        const PAGE_BYTES: usize = 4 << 20;
        let mut expired = 0;
        for to in self.mailboxes().await? {
            loop {
                let page = self.fetch_within(&to, 0, PAGE, PAGE_BYTES).await?;
                let old: Vec<Uuid> = page
                    .iter()
                    .take_while(|e| e.received_at < received_before)
                    .map(|e| e.id)
                    .collect();
                if old.is_empty() {
                    break;
                }
                expired += self.ack(&to, &old, now).await?;
                if old.len() < page.len() {
                    break;
                }
            }
        }
        Ok(expired)
    }
}

/// An embedded [`Store`] and the thread that flushes it in groups. Reads that may touch the disk (fetches, the
/// sweeps) run on the blocking pool; the rest answer from memory or sled's cache and run in place.
pub struct Embedded {
    store: Arc<dyn Store>,
    commit: GroupCommit,
}

impl fmt::Debug for Embedded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Embedded")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Embedded {
    /// `store`, flushed by a group-commit thread that lingers `delay` when the last group had company.
    pub fn new(store: Arc<dyn Store>, metrics: Arc<Metrics>, delay: Duration) -> std::io::Result<Self> {
        let commit = GroupCommit::start(&store, metrics, delay)?;
        Ok(Self { store, commit })
    }

    /// The store underneath (tests, tools).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn Store) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || work(store.as_ref()))
            .await
            .map_err(|e| StoreError::Backend(format!("store task: {e}")))?
    }
}

#[async_trait]
impl Backend for Embedded {
    async fn add_user(&self, user: &UserRecord) -> StoreResult<bool> {
        self.store.add_user(user)
    }

    async fn user(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        self.store.user(username)
    }

    async fn has_user(&self, username: &str) -> StoreResult<bool> {
        self.store.has_user(username)
    }

    async fn put_challenge(&self, nonce: &[u8], challenge: &ChallengeRecord) -> StoreResult<()> {
        self.store.put_challenge(nonce, challenge)
    }

    async fn take_challenge(&self, nonce: &[u8]) -> StoreResult<Option<ChallengeRecord>> {
        self.store.take_challenge(nonce)
    }

    async fn put_token(&self, token_hash: &[u8; 32], token: &TokenRecord) -> StoreResult<()> {
        self.store.put_token(token_hash, token)
    }

    async fn token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<TokenRecord>> {
        self.store.token(token_hash)
    }

    async fn insert_envelope_within(&self, envelope: NewEnvelope, quota: MailboxQuota) -> StoreResult<Inserted> {
        self.store.insert_envelope_within(envelope, quota)
    }

    async fn fetch_within(
        &self,
        to: &str,
        after: u64,
        limit: usize,
        budget: usize,
    ) -> StoreResult<Vec<StoredEnvelope>> {
        let to = to.to_owned();
        self.blocking(move |store| store.fetch_within(&to, after, limit, budget))
            .await
    }

    async fn ack(&self, to: &str, ids: &[Uuid], now: u64) -> StoreResult<usize> {
        self.store.ack(to, ids, now)
    }

    async fn mailboxes(&self) -> StoreResult<Vec<String>> {
        self.store.mailboxes()
    }

    async fn purge_expired(&self, now: u64) -> StoreResult<usize> {
        self.blocking(move |store| store.purge_expired(now)).await
    }

    fn gauges(&self) -> Vec<StoreGauge> {
        self.store.gauges()
    }

    fn durable_later(&self) -> Durable {
        Box::pin(self.commit.durable_later())
    }
}

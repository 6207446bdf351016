//! A store that hands everything to another one except the calls its hooks take over: how tests and tools play a
//! relay that lies (a swapped certificate in the directory) or watches and tampers (the desktop's handshake demo)
//! without repeating the whole [`Store`] trait.

use std::fmt;
use std::sync::Arc;

use uuid::Uuid;

use super::{
    ChallengeRecord, Inserted, MailboxQuota, NewEnvelope, Store, StoreResult, StoredEnvelope, TokenRecord, UserRecord,
};

type UserHook = Box<dyn Fn(&dyn Store, &str) -> StoreResult<Option<UserRecord>> + Send + Sync>;
type InsertHook = Box<dyn Fn(&dyn Store, NewEnvelope) -> StoreResult<Inserted> + Send + Sync>;
type FlushHook = Box<dyn Fn(&dyn Store) -> StoreResult<()> + Send + Sync>;

/// [`Store`] over `inner`, with optional replacements for user lookups, envelope inserts and flushes.
pub struct Intercept {
    inner: Arc<dyn Store>,
    user: Option<UserHook>,
    insert: Option<InsertHook>,
    flush: Option<FlushHook>,
}

impl Intercept {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            user: None,
            insert: None,
            flush: None,
        }
    }

    /// Answers [`Store::user`] (given the inner store to ask).
    #[must_use]
    pub fn on_user(
        mut self,
        hook: impl Fn(&dyn Store, &str) -> StoreResult<Option<UserRecord>> + Send + Sync + 'static,
    ) -> Self {
        self.user = Some(Box::new(hook));
        self
    }

    /// Performs [`Store::insert_envelope`] (given the inner store to insert into).
    #[must_use]
    pub fn on_insert(
        mut self,
        hook: impl Fn(&dyn Store, NewEnvelope) -> StoreResult<Inserted> + Send + Sync + 'static,
    ) -> Self {
        self.insert = Some(Box::new(hook));
        self
    }

    /// Performs [`Store::flush`] (given the inner store to flush): a slow disk, say.
    #[must_use]
    pub fn on_flush(mut self, hook: impl Fn(&dyn Store) -> StoreResult<()> + Send + Sync + 'static) -> Self {
        self.flush = Some(Box::new(hook));
        self
    }
}

impl fmt::Debug for Intercept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Intercept")
            .field("inner", &self.inner)
            .field("user", &self.user.is_some())
            .field("insert", &self.insert.is_some())
            .field("flush", &self.flush.is_some())
            .finish()
    }
}

impl Store for Intercept {
    fn user(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        match &self.user {
            Some(hook) => hook(self.inner.as_ref(), username),
            None => self.inner.user(username),
        }
    }
    /// A hook, when set, decides alone (quota included).
    fn insert_envelope_within(&self, envelope: NewEnvelope, quota: MailboxQuota) -> StoreResult<Inserted> {
        match &self.insert {
            Some(hook) => hook(self.inner.as_ref(), envelope),
            None => self.inner.insert_envelope_within(envelope, quota),
        }
    }
    fn add_user(&self, user: &UserRecord) -> StoreResult<bool> {
        self.inner.add_user(user)
    }
    fn has_user(&self, username: &str) -> StoreResult<bool> {
        self.inner.has_user(username)
    }
    fn put_challenge(&self, nonce: &[u8], challenge: &ChallengeRecord) -> StoreResult<()> {
        self.inner.put_challenge(nonce, challenge)
    }
    fn take_challenge(&self, nonce: &[u8]) -> StoreResult<Option<ChallengeRecord>> {
        self.inner.take_challenge(nonce)
    }
    fn put_token(&self, token_hash: &[u8; 32], token: &TokenRecord) -> StoreResult<()> {
        self.inner.put_token(token_hash, token)
    }
    fn token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<TokenRecord>> {
        self.inner.token(token_hash)
    }
    fn fetch_within(&self, to: &str, after: u64, limit: usize, budget: usize) -> StoreResult<Vec<StoredEnvelope>> {
        self.inner.fetch_within(to, after, limit, budget)
    }
    fn ack(&self, to: &str, ids: &[Uuid], now: u64) -> StoreResult<usize> {
        self.inner.ack(to, ids, now)
    }
    fn mailboxes(&self) -> StoreResult<Vec<String>> {
        self.inner.mailboxes()
    }

    fn purge_expired(&self, now: u64) -> StoreResult<usize> {
        self.inner.purge_expired(now)
    }
    fn flush(&self) -> StoreResult<()> {
        match &self.flush {
            Some(hook) => hook(self.inner.as_ref()),
            None => self.inner.flush(),
        }
    }
    fn gauges(&self) -> Vec<super::StoreGauge> {
        self.inner.gauges()
    }
}

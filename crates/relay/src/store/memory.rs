//! In-memory backend for unit tests and throwaway relays: same semantics as sled, nothing persists.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use uuid::Uuid;

use super::{
    within_budget, ChallengeRecord, IdRecord, Inserted, MailboxQuota, NewEnvelope, Store, StoreError, StoreResult,
    StoredEnvelope, TokenRecord, UserRecord, DEDUP_RETENTION_SECS,
};

/// A [`Store`] in a mutex-guarded map.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    users: HashMap<String, UserRecord>,
    challenges: HashMap<Vec<u8>, ChallengeRecord>,
    tokens: HashMap<[u8; 32], TokenRecord>,
    mail: BTreeMap<(String, u64), StoredEnvelope>,
    ids: HashMap<Uuid, IdRecord>,
    next_seq: u64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> StoreResult<MutexGuard<'_, Inner>> {
        self.inner
            .lock()
            .map_err(|_| StoreError::Backend("memory store lock poisoned".into()))
    }
}

impl Store for MemoryStore {
    fn add_user(&self, user: &UserRecord) -> StoreResult<bool> {
        let mut g = self.lock()?;
        if g.users.contains_key(&user.username) {
            return Ok(false);
        }
        g.users.insert(user.username.clone(), user.clone());
        Ok(true)
    }

    fn user(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        Ok(self.lock()?.users.get(username).cloned())
    }

    fn has_user(&self, username: &str) -> StoreResult<bool> {
        Ok(self.lock()?.users.contains_key(username))
    }

    fn put_challenge(&self, nonce: &[u8], challenge: &ChallengeRecord) -> StoreResult<()> {
        self.lock()?.challenges.insert(nonce.to_vec(), challenge.clone());
        Ok(())
    }

    fn take_challenge(&self, nonce: &[u8]) -> StoreResult<Option<ChallengeRecord>> {
        Ok(self.lock()?.challenges.remove(nonce))
    }

    fn put_token(&self, token_hash: &[u8; 32], token: &TokenRecord) -> StoreResult<()> {
        self.lock()?.tokens.insert(*token_hash, token.clone());
        Ok(())
    }

    fn token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<TokenRecord>> {
        Ok(self.lock()?.tokens.get(token_hash).cloned())
    }

    fn insert_envelope_within(&self, envelope: NewEnvelope, quota: MailboxQuota) -> StoreResult<Inserted> {
        let mut g = self.lock()?;
        if let Some(seen) = g.ids.get(&envelope.id) {
            return Ok(if seen.from == envelope.from {
                Inserted::Duplicate { seq: seen.seq }
            } else {
                Inserted::IdTaken
            });
        }
        let waiting = g.mail.range((envelope.to.clone(), 0)..=(envelope.to.clone(), u64::MAX));
        let (count, bytes) = waiting.fold((0, 0u64), |(n, b), (_, e)| (n + 1, b + e.body_b64.len() as u64));
        if !quota.has_room(count, bytes, envelope.body_b64.len() as u64) {
            return Ok(Inserted::MailboxFull);
        }
        g.next_seq += 1;
        let stored = StoredEnvelope::new(g.next_seq, envelope);
        let record = IdRecord {
            from: stored.from.clone(),
            to: stored.to.clone(),
            seq: stored.seq,
            acked_at: None,
        };
        g.ids.insert(stored.id, record);
        g.mail.insert((stored.to.clone(), stored.seq), stored.clone());
        Ok(Inserted::Stored(stored))
    }

    fn fetch_within(&self, to: &str, after: u64, limit: usize, budget: usize) -> StoreResult<Vec<StoredEnvelope>> {
        let g = self.lock()?;
        let start = (to.to_owned(), after.saturating_add(1));
        let page = g
            .mail
            .range(start..)
            .take_while(|((user, _), _)| user == to)
            .take(limit)
            .map(|(_, e)| Ok(e.clone()));
        within_budget(page, budget)
    }

    fn ack(&self, to: &str, ids: &[Uuid], now: u64) -> StoreResult<usize> {
        let mut g = self.lock()?;
        let mut acked = 0;
        for id in ids {
            let seq = match g.ids.get(id) {
                Some(r) if r.to == to && r.acked_at.is_none() => r.seq,
                _ => continue,
            };
            g.mail.remove(&(to.to_owned(), seq));
            if let Some(r) = g.ids.get_mut(id) {
                r.acked_at = Some(now);
            }
            acked += 1;
        }
        Ok(acked)
    }

    fn mailboxes(&self) -> StoreResult<Vec<String>> {
        let g = self.lock()?;
        let mut names: Vec<String> = g.mail.keys().map(|(to, _)| to.clone()).collect();
        names.dedup();
        Ok(names)
    }

    fn purge_expired(&self, now: u64) -> StoreResult<usize> {
        let mut g = self.lock()?;
        let before = g.challenges.len() + g.tokens.len() + g.ids.len();
        g.challenges.retain(|_, c| c.expires_at > now);
        g.tokens.retain(|_, t| t.expires_at > now);
        g.ids.retain(|_, r| {
            r.acked_at
                .is_none_or(|at| at.saturating_add(DEDUP_RETENTION_SECS) >= now)
        });
        Ok(before - (g.challenges.len() + g.tokens.len() + g.ids.len()))
    }

    fn flush(&self) -> StoreResult<()> {
        Ok(())
    }
}

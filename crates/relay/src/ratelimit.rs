//! Per-key token buckets (key = username), so one client cannot starve the rest.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A set of token buckets sharing one rate and burst.
#[derive(Debug)]
pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `per_sec` sustained, up to `burst` at once.
    pub fn new(per_sec: f64, burst: u32) -> Self {
        Self {
            per_sec: per_sec.max(f64::MIN_POSITIVE),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token from `key`'s bucket, or says how long until one is there.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_cost(key, 1.0)
    }

    /// Takes `cost` tokens (bytes, say) from `key`'s bucket, or says how long until they are there. A cost over
    /// the burst is taken once the bucket is full.
    pub fn check_cost(&self, key: &str, cost: f64) -> Result<(), Duration> {
        let cost = cost.min(self.burst);
        self.with_bucket(key, |bucket| {
            if bucket.tokens >= cost {
                bucket.tokens -= cost;
                Ok(())
            } else {
                Err(Duration::from_secs_f64((cost - bucket.tokens) / self.per_sec))
            }
        })
    }

    /// Runs `f` on `key`'s bucket, refilled up to now.
    fn with_bucket<T>(&self, key: &str, f: impl FnOnce(&mut Bucket) -> T) -> T {
        let now = Instant::now();
        // A poisoned lock only means another request panicked mid-update; the map is still usable.
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * self.per_sec;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.at = now;
        f(bucket)
    }

    /// Takes `cost` tokens from `key`'s bucket even when it holds fewer, leaving it in debt: for a cost known only
    /// after the work (bytes served). [`RateLimiter::check_cost`] with a cost of 0 then refuses until the debt is
    /// paid off.
    pub fn charge(&self, key: &str, cost: f64) {
        self.with_bucket(key, |bucket| bucket.tokens -= cost);
    }

    /// Forgets buckets that have refilled (bounded memory): a forgotten one is full when it comes back. One in
    /// debt is kept until it is paid off and full.
    pub fn forget_idle(&self) {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * self.per_sec < self.burst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_charge_may_leave_debt_that_refuses_until_paid_off() {
        let limiter = RateLimiter::new(1_000.0, 2_000);
        limiter.charge("alice", 5_000.0);
        let wait = limiter.check_cost("alice", 0.0).unwrap_err();
        assert!(
            wait > Duration::from_millis(2_900) && wait <= Duration::from_secs(3),
            "{wait:?}"
        );
        assert!(limiter.check_cost("bob", 0.0).is_ok());
        limiter.forget_idle();
        assert!(limiter.check_cost("alice", 0.0).is_err(), "a debt is not forgotten");
    }

    #[test]
    fn burst_then_refuse_then_other_keys_unaffected() {
        let limiter = RateLimiter::new(1.0, 3);
        for _ in 0..3 {
            assert!(limiter.check("alice").is_ok());
        }
        let wait = limiter.check("alice").unwrap_err();
        assert!(wait > Duration::from_millis(500) && wait <= Duration::from_secs(1));
        assert!(limiter.check("bob").is_ok());
    }

    #[test]
    fn a_cost_takes_that_many_tokens_and_waits_for_them() {
        let limiter = RateLimiter::new(100.0, 1000);
        assert!(limiter.check_cost("alice", 600.0).is_ok());
        let wait = limiter.check_cost("alice", 600.0).unwrap_err();
        assert!(
            wait > Duration::from_millis(1900) && wait <= Duration::from_secs(2),
            "{wait:?}"
        );
        assert!(limiter.check_cost("alice", 300.0).is_ok(), "what is left can be spent");
    }
}

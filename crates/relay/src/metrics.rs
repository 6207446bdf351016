//! Prometheus counters and histograms, hand-rolled on atomics (a handful of series does not need a crate).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the latency buckets, seconds.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A cumulative latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            if let Some(b) = self.buckets.get(i) {
                b.fetch_add(1, Relaxed);
            }
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let sum = self.sum_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {sum}\n{name}_count {count}"
        );
    }
}

/// Every metric the relay exports at `GET /metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Open push (WebSocket) connections.
    pub push_connections: AtomicU64,
    /// HTTP requests answered.
    pub http_requests: AtomicU64,
    /// HTTP latency, request to response head.
    pub http_latency: Histogram,
    /// Envelopes newly stored (acknowledged with 202).
    pub envelopes_stored: AtomicU64,
    /// Retried envelopes recognised by id.
    pub envelopes_duplicate: AtomicU64,
    /// Envelopes sent to a connected client over push.
    pub envelopes_pushed: AtomicU64,
    /// Envelopes returned by `GET /v1/envelopes`.
    pub envelopes_fetched: AtomicU64,
    /// Envelopes deleted by an ack.
    pub envelopes_acked: AtomicU64,
    /// Envelopes deleted unread after `--mailbox-expiry-days`.
    pub envelopes_expired: AtomicU64,
    /// Successful logins (bearer tokens issued).
    pub logins: AtomicU64,
    /// Requests refused with 429.
    pub rate_limited: AtomicU64,
    /// Store flushes (one per commit group).
    pub flushes: AtomicU64,
    /// Requests served by those flushes.
    pub flush_waiters: AtomicU64,
    /// Flush duration.
    pub flush_latency: Histogram,
}

impl Metrics {
    /// Records one group commit.
    pub fn record_flush(&self, took: Duration, waiters: usize) {
        self.flushes.fetch_add(1, Relaxed);
        self.flush_waiters
            .fetch_add(u64::try_from(waiters).unwrap_or(u64::MAX), Relaxed);
        self.flush_latency.observe(took);
    }

    /// The Prometheus text exposition (format 0.0.4), with the store's own gauges.
    pub fn render(&self, store: &[crate::store::StoreGauge]) -> String {
        let mut out = String::with_capacity(4096);
        let gauge = |out: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}",
                v.load(Relaxed)
            );
        };
        let counter = |out: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Relaxed)
            );
        };
        gauge(
            &mut out,
            "magpie_push_connections",
            "Open push connections.",
            &self.push_connections,
        );
        counter(
            &mut out,
            "magpie_http_requests_total",
            "HTTP requests answered.",
            &self.http_requests,
        );
        self.http_latency.render(
            &mut out,
            "magpie_http_request_duration_seconds",
            "HTTP request latency.",
        );
        counter(
            &mut out,
            "magpie_logins_total",
            "Successful logins (bearer tokens issued).",
            &self.logins,
        );
        counter(
            &mut out,
            "magpie_envelopes_stored_total",
            "Envelopes durably stored.",
            &self.envelopes_stored,
        );
        counter(
            &mut out,
            "magpie_envelopes_duplicate_total",
            "Retried envelopes recognised by id.",
            &self.envelopes_duplicate,
        );
        counter(
            &mut out,
            "magpie_envelopes_pushed_total",
            "Envelopes delivered by push.",
            &self.envelopes_pushed,
        );
        counter(
            &mut out,
            "magpie_envelopes_fetched_total",
            "Envelopes delivered by fetch.",
            &self.envelopes_fetched,
        );
        counter(
            &mut out,
            "magpie_envelopes_acked_total",
            "Envelopes acknowledged and deleted.",
            &self.envelopes_acked,
        );
        counter(
            &mut out,
            "magpie_envelopes_expired_total",
            "Envelopes deleted unread after --mailbox-expiry-days.",
            &self.envelopes_expired,
        );
        counter(
            &mut out,
            "magpie_rate_limited_total",
            "Requests refused with 429.",
            &self.rate_limited,
        );
        counter(
            &mut out,
            "magpie_store_flushes_total",
            "Store flushes (commit groups).",
            &self.flushes,
        );
        counter(
            &mut out,
            "magpie_store_flush_waiters_total",
            "Requests made durable by those flushes.",
            &self.flush_waiters,
        );
        self.flush_latency
            .render(&mut out, "magpie_store_flush_duration_seconds", "Store flush latency.");
        for g in store {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}",
                name = g.name,
                help = g.help,
                value = g.value
            );
        }
        out
    }
}

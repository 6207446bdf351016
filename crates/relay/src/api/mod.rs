//! The HTTP API: `router(state)` with the store and everything else behind [`AppState`].

mod auth;
mod blobs;
mod client;
mod directory;
mod envelopes;
pub(crate) mod push;

use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use magpie_api::{paths, ApiError};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use crate::ca::CaInfo;
use crate::config::Config;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::store::blobs::{BlobQuota, Blobs, MemoryBlobs};
use crate::store::{Backend, Embedded, Store};

pub use auth::{hash_token, AuthUser};
pub use client::PeerAddr;
pub use push::{Hub, PushEvent, READ_BUFFER_BYTES, WRITE_BUFFER_BYTES};

/// Body limit of every JSON route but `POST /v1/envelopes`.
pub const SMALL_BODY_LIMIT: usize = 64 * 1024;

/// Shared state of every handler; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] holds.
#[derive(Debug)]
pub struct Shared {
    /// Users, tokens, mailboxes, and their durability.
    pub store: Arc<dyn Backend>,
    /// Files' sealed bytes.
    pub blobs: Arc<dyn Blobs>,
    /// The CA and its served forms.
    pub ca: CaInfo,
    /// Connected push clients.
    pub hub: Hub,
    /// Exported at `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Login attempts (challenges and logins) per client address.
    pub login_limit: RateLimiter,
    /// Registrations per client address.
    pub register_limit: RateLimiter,
    /// Per-user envelope sends.
    pub send_limit: RateLimiter,
    /// Per-user directory lookups.
    pub lookup_limit: RateLimiter,
    /// Per-user mailbox fetches.
    pub fetch_limit: RateLimiter,
    /// Per-user bytes sent (envelope bodies as stored).
    pub send_bytes: RateLimiter,
    /// Per-user bytes fetched (envelope bodies as stored).
    pub fetch_bytes: RateLimiter,
    /// Per-user file bytes uploaded, KiB.
    pub file_kib_up: RateLimiter,
    /// Per-user file bytes downloaded, KiB.
    pub file_kib_down: RateLimiter,
    /// Blobs with an upload under way: one at a time each.
    pub uploading: std::sync::Mutex<std::collections::HashSet<uuid::Uuid>>,
    /// Settings.
    pub config: Config,
    /// Flips to true at shutdown so long-lived push connections close.
    pub shutdown: watch::Sender<bool>,
}

/// `--send-kb-per-hour`, sustained, with the whole hour's bytes as the burst.
fn send_bytes_limit(config: &Config) -> RateLimiter {
    let per_hour = config.send_kb_per_hour.saturating_mul(1024);
    RateLimiter::new(per_hour as f64 / 3600.0, u32::try_from(per_hour).unwrap_or(u32::MAX))
}

/// `--file-mb-per-hour` in KiB, sustained, with the whole hour's as the burst.
fn file_kib_limit(config: &Config) -> RateLimiter {
    let per_hour = config.file_mb_per_hour.saturating_mul(1024);
    RateLimiter::new(per_hour as f64 / 3600.0, u32::try_from(per_hour).unwrap_or(u32::MAX))
}

/// `--fetch-mb-per-hour`, sustained, with a sixteenth of it as the burst.
fn fetch_bytes_limit(config: &Config) -> RateLimiter {
    let per_hour = config.fetch_mb_per_hour.saturating_mul(1 << 20);
    RateLimiter::new(
        per_hour as f64 / 3600.0,
        u32::try_from(per_hour / 16).unwrap_or(u32::MAX),
    )
}

impl AppState {
    /// The state over an embedded store, and its group-commit thread, with blobs in memory (tests, tools).
    pub fn new(store: Arc<dyn Store>, ca: CaInfo, config: Config) -> std::io::Result<Self> {
        Self::embedded(store, Arc::new(MemoryBlobs::default()), ca, config)
    }

    /// The state over an embedded store, and its group-commit thread, and `blobs`.
    pub fn embedded(store: Arc<dyn Store>, blobs: Arc<dyn Blobs>, ca: CaInfo, config: Config) -> std::io::Result<Self> {
        let metrics = Arc::new(Metrics::default());
        let delay = Duration::from_micros(config.commit_delay_us);
        let backend = Embedded::new(store, Arc::clone(&metrics), delay)?;
        Ok(Self::with_backend(Arc::new(backend), blobs, metrics, ca, config))
    }

    /// The state over any backend.
    pub fn with_backend(
        store: Arc<dyn Backend>,
        blobs: Arc<dyn Blobs>,
        metrics: Arc<Metrics>,
        ca: CaInfo,
        config: Config,
    ) -> Self {
        Self(Arc::new(Shared {
            store,
            blobs,
            ca,
            hub: Hub::default(),
            metrics,
            login_limit: RateLimiter::new(f64::from(config.login_per_minute) / 60.0, config.login_per_minute),
            register_limit: RateLimiter::new(f64::from(config.register_per_hour) / 3600.0, config.register_per_hour),
            send_limit: RateLimiter::new(f64::from(config.send_per_second), config.send_burst),
            lookup_limit: RateLimiter::new(f64::from(config.lookups_per_minute) / 60.0, config.lookups_per_minute),
            fetch_limit: RateLimiter::new(f64::from(config.fetches_per_minute) / 60.0, config.fetches_per_minute),
            send_bytes: send_bytes_limit(&config),
            fetch_bytes: fetch_bytes_limit(&config),
            file_kib_up: file_kib_limit(&config),
            file_kib_down: file_kib_limit(&config),
            uploading: std::sync::Mutex::default(),
            config,
            shutdown: watch::channel(false).0,
        }))
    }

    /// Tells push connections to close (graceful shutdown).
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// Unix seconds now.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Every route the relay serves, each with its OpenAPI operation: the single source of the router and of the
/// document at `GET /v1/openapi.json`. Envelope bodies may reach `envelope_body_limit` bytes; every other JSON
/// body [`SMALL_BODY_LIMIT`].
pub fn api(envelope_body_limit: usize) -> OpenApiRouter<AppState> {
    let small = |r| limited(r, SMALL_BODY_LIMIT);
    OpenApiRouter::with_openapi(crate::openapi::base())
        .routes(small(routes!(directory::health)))
        .routes(small(routes!(directory::ca)))
        .routes(small(routes!(openapi)))
        .routes(small(routes!(metrics)))
        .routes(small(routes!(auth::register)))
        .routes(small(routes!(auth::challenge)))
        .routes(small(routes!(auth::login)))
        .routes(small(routes!(directory::lookup)))
        // One registration per path: GET has no body, so the send limit covers both.
        .routes(limited(routes!(envelopes::send, envelopes::fetch), envelope_body_limit))
        .routes(small(routes!(envelopes::ack)))
        .routes(small(routes!(push::connect)))
        .routes(small(routes!(blobs::create)))
        // Parts stream into the store whatever their size; the blob's declared size bounds them.
        .routes(unlimited(routes!(
            blobs::upload,
            blobs::status,
            blobs::download,
            blobs::release
        )))
}

fn unlimited((schemas, paths, handler): UtoipaMethodRouter<AppState>) -> UtoipaMethodRouter<AppState> {
    (schemas, paths, handler.layer(DefaultBodyLimit::disable()))
}

fn limited((schemas, paths, handler): UtoipaMethodRouter<AppState>, body_limit: usize) -> UtoipaMethodRouter<AppState> {
    (schemas, paths, handler.layer(DefaultBodyLimit::max(body_limit)))
}

/// The body limit of `POST /v1/envelopes` for `config`: base64 grows the body by 4/3; the JSON around it is small.
pub fn envelope_body_limit(config: &Config) -> usize {
    config.max_envelope_bytes.saturating_mul(4) / 3 + 4096
}

/// The OpenAPI document of the relay's API.
pub fn document() -> utoipa::openapi::OpenApi {
    api(SMALL_BODY_LIMIT).into_openapi()
}

/// The relay's router over `state`.
pub fn router(state: AppState) -> Router {
    let (router, _) = api(envelope_body_limit(&state.config)).split_for_parts();
    router
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

async fn not_found() -> Error {
    Error::NotFound("no such route".into())
}

async fn method_not_allowed() -> Error {
    Error::MethodNotAllowed
}

/// Longest a 429 is held back (see [`track`]).
const MOST_HELD_429: Duration = Duration::from_secs(2);

/// Counts and times every request. A 429 is answered only once its `Retry-After` has passed (up to
/// [`MOST_HELD_429`]): a client would have to wait that long anyway, and one that ignores it and asks again at
/// once is held to one request per wait on each connection, rather than costing the relay's CPU for each.
async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let response = next.run(request).await;
    if response.status() == StatusCode::TOO_MANY_REQUESTS {
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(MOST_HELD_429, Duration::from_secs);
        tokio::time::sleep(retry_after.min(MOST_HELD_429)).await;
    }
    state
        .metrics
        .http_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    state.metrics.http_latency.observe(started.elapsed());
    response
}

/// Prometheus metrics.
#[utoipa::path(get, path = paths::METRICS, tag = "relay",
    description = "Served to the relay's own machine when no proxy is configured, else only with the bearer token of \
        --metrics-token.",
    responses(
        (status = 200, description = "text exposition format 0.0.4", content_type = "text/plain", body = String),
        (status = 403, description = "not this machine, and no (or a wrong) metrics token", body = ApiError),
    ))]
async fn metrics(State(state): State<AppState>, request: Request) -> Result<Response, Error> {
    let peer = request.extensions().get::<axum::extract::ConnectInfo<PeerAddr>>();
    if !client::may_see_metrics(peer.map(|p| p.0 .0.ip()), request.headers(), &state.config) {
        return Err(Error::Forbidden(
            "metrics are served to this machine, or with the token of --metrics-token",
        ));
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state
            .metrics
            .render(&[state.store.gauges(), state.blobs.gauges()].concat()),
    )
        .into_response())
}

/// This document.
#[utoipa::path(get, path = paths::OPENAPI, tag = "relay",
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json", body = Object)))]
async fn openapi() -> Response {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let json = DOCUMENT.get_or_init(|| document().to_pretty_json().unwrap_or_default());
    ([(header::CONTENT_TYPE, "application/json")], json.as_str()).into_response()
}

/// `Json<T>` whose rejections are our JSON errors: 400 for bad JSON or unknown fields, 413, 415.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> Error {
    match rejection {
        JsonRejection::MissingJsonContentType(r) => Error::UnsupportedMediaType(r.body_text()),
        r if r.status() == StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge(r.body_text()),
        r => Error::BadRequest(r.body_text()),
    }
}

/// `Query<T>` with a JSON 400 on rejection.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|r: QueryRejection| Error::BadRequest(r.body_text()))
    }
}

impl AppState {
    /// Takes a token from `key`'s bucket of `limit`, or answers 429 with `Retry-After` (at least 1 s) and counts it.
    /// Takes a token from `key`'s bucket, waiting for one while it is empty: what the push socket does with sends,
    /// so a sender over its rate is slowed, never refused, and its envelopes stay in order.
    pub(crate) async fn pace(&self, limit: &RateLimiter, key: &str) {
        self.pace_cost(limit, key, 1.0).await;
    }

    /// What a recipient's mailbox may hold waiting (`--mailbox-max-envelopes`, `--mailbox-max-mb`).
    pub(crate) fn mailbox_quota(&self) -> crate::store::MailboxQuota {
        crate::store::MailboxQuota {
            envelopes: self.config.mailbox_max_envelopes,
            bytes: self.config.mailbox_max_mb.saturating_mul(1 << 20),
        }
    }

    /// What one user's blobs may take (`--file-quota-mb`, `--file-quota-files`).
    pub(crate) fn blob_quota(&self) -> BlobQuota {
        BlobQuota {
            blobs: self.config.file_quota_files,
            bytes: self.config.file_quota_mb.saturating_mul(1 << 20),
        }
    }

    /// [`AppState::pace`] for a cost of `cost` tokens.
    pub(crate) async fn pace_cost(&self, limit: &RateLimiter, key: &str, cost: f64) {
        while let Err(wait) = limit.check_cost(key, cost) {
            self.metrics
                .rate_limited
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::time::sleep(wait).await;
        }
    }

    pub(crate) fn rate_limit(&self, limit: &RateLimiter, key: &str) -> Result<(), Error> {
        self.rate_limit_cost(limit, key, 1.0)
    }

    /// [`AppState::rate_limit`] for a cost of `cost` tokens.
    pub(crate) fn rate_limit_cost(&self, limit: &RateLimiter, key: &str, cost: f64) -> Result<(), Error> {
        limit.check_cost(key, cost).map_err(|wait| {
            self.metrics
                .rate_limited
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Error::RateLimited {
                retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
            }
        })
    }
}

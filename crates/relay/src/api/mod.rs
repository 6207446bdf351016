//! The HTTP API: `router(state)` with the store and everything else behind [`AppState`].

mod auth;
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
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::ca::CaInfo;
use crate::config::Config;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::store::{GroupCommit, Store};

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
    /// Users, tokens, mailboxes.
    pub store: Arc<dyn Store>,
    /// Makes writes durable in groups.
    pub commit: GroupCommit,
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

impl AppState {
    /// Builds the state and starts the group-commit thread.
    pub fn new(store: Arc<dyn Store>, ca: CaInfo, config: Config) -> std::io::Result<Self> {
        let metrics = Arc::new(Metrics::default());
        let commit = GroupCommit::start(
            &store,
            Arc::clone(&metrics),
            Duration::from_micros(config.commit_delay_us),
        )?;
        Ok(Self(Arc::new(Shared {
            store,
            commit,
            ca,
            hub: Hub::default(),
            metrics,
            login_limit: RateLimiter::new(f64::from(config.login_per_minute) / 60.0, config.login_per_minute),
            register_limit: RateLimiter::new(f64::from(config.register_per_hour) / 3600.0, config.register_per_hour),
            send_limit: RateLimiter::new(f64::from(config.send_per_second), config.send_burst),
            lookup_limit: RateLimiter::new(f64::from(config.lookups_per_minute) / 60.0, config.lookups_per_minute),
            fetch_limit: RateLimiter::new(f64::from(config.fetches_per_minute) / 60.0, config.fetches_per_minute),
            send_bytes: send_bytes_limit(&config),
            config,
            shutdown: watch::channel(false).0,
        })))
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

/// An HTTP method a route answers; the router and the OpenAPI test both read [`routes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// GET
    Get,
    /// POST
    Post,
}

impl Verb {
    /// Lower-case, as OpenAPI spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Post => "post",
        }
    }
}

/// One route of the router.
#[derive(Debug)]
pub struct Route {
    /// The method.
    pub verb: Verb,
    /// The path, in axum's (and OpenAPI's) `{param}` syntax.
    pub path: &'static str,
    handler: MethodRouter<AppState>,
}

fn route<H, T>(verb: Verb, path: &'static str, handler: H, body_limit: usize) -> Route
where
    H: axum::handler::Handler<T, AppState>,
    T: 'static,
{
    let filter = match verb {
        Verb::Get => MethodFilter::GET,
        Verb::Post => MethodFilter::POST,
    };
    Route {
        verb,
        path,
        handler: on(filter, handler).layer(DefaultBodyLimit::max(body_limit)),
    }
}

/// Every route the relay serves; the single source of the router.
pub fn routes(config: &Config) -> Vec<Route> {
    use Verb::{Get, Post};
    // base64 grows the body by 4/3; the JSON around it is small.
    let envelope_limit = config.max_envelope_bytes.saturating_mul(4) / 3 + 4096;
    let small = SMALL_BODY_LIMIT;
    vec![
        route(Get, "/v1/health", directory::health, small),
        route(Get, "/v1/ca", directory::ca, small),
        route(Get, "/v1/openapi.json", openapi, small),
        route(Get, "/metrics", metrics, small),
        route(Post, "/v1/register", auth::register, small),
        route(Post, "/v1/login/challenge", auth::challenge, small),
        route(Post, "/v1/login", auth::login, small),
        route(Get, "/v1/directory/{username}", directory::lookup, small),
        route(Post, "/v1/envelopes", envelopes::send, envelope_limit),
        route(Get, "/v1/envelopes", envelopes::fetch, small),
        route(Post, "/v1/envelopes/ack", envelopes::ack, small),
        route(Get, "/v1/push", push::connect, small),
    ]
}

/// The relay's router over `state`.
pub fn router(state: AppState) -> Router {
    let mut router: Router<AppState> = Router::new();
    let mut merged: Vec<(&'static str, MethodRouter<AppState>)> = Vec::new();
    for r in routes(&state.config) {
        match merged.iter_mut().find(|(p, _)| *p == r.path) {
            Some((_, existing)) => *existing = std::mem::take(existing).merge(r.handler),
            None => merged.push((r.path, r.handler)),
        }
    }
    for (path, handler) in merged {
        router = router.route(path, handler.fallback(method_not_allowed));
    }
    router
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

/// Counts and times every request.
async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .http_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    state.metrics.http_latency.observe(started.elapsed());
    response
}

async fn metrics(State(state): State<AppState>, request: Request) -> Result<Response, Error> {
    let peer = request.extensions().get::<axum::extract::ConnectInfo<PeerAddr>>();
    if !client::may_see_metrics(peer.map(|p| p.0 .0.ip()), request.headers(), &state.config) {
        return Err(Error::Forbidden(
            "metrics are served to this machine, or with the token of --metrics-token",
        ));
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(&state.store.gauges()),
    )
        .into_response())
}

async fn openapi() -> Json<serde_json::Value> {
    Json(crate::openapi::document())
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

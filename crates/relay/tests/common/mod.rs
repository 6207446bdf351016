//! Shared fixtures: one CA and a few RSA-3072 identities per test binary (key generation is slow), and
//! small helpers to drive the router.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http_body_util::BodyExt as _;
use magpie_api::{ChallengeResponse, LoginResponse};
use magpie_proto::Identity;
use magpie_relay::ca::CaInfo;
use magpie_relay::store::{MemoryStore, Store};
use magpie_relay::{AppState, Config};
use magpie_tests::relay_api::{challenge_request, login_request, RelayApi};
use serde_json::{json, Value};
use tower::ServiceExt as _;

pub const NAMES: [&str; 3] = ["alice", "bob", "carol"];

struct Fixture {
    ca: CaInfo,
    identities: HashMap<&'static str, Identity>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| Fixture {
        ca: CaInfo::new(magpie_tests::ca(SystemTime::now())).unwrap(),
        identities: NAMES.iter().map(|n| (*n, magpie_tests::identity(n))).collect(),
    })
}

pub fn ca() -> CaInfo {
    fixture().ca.clone()
}

pub fn identity(name: &str) -> &'static Identity {
    &fixture().identities[name]
}

pub fn config() -> Config {
    Config::with_data_dir("/nonexistent-unused")
}

pub fn memory_state(config: Config) -> AppState {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    AppState::new(store, ca(), config).unwrap()
}

/// Sends one request through the router; returns status, headers and the body (JSON if it parses).
pub async fn call_raw(app: &Router, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, headers, body)
}

pub async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = match body {
        Some(v) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(&v).unwrap()))
            .unwrap(),
        None => builder.body(Body::empty()).unwrap(),
    };
    let (status, _, body) = call_raw(app, request).await;
    (status, body)
}

pub fn csr_pem(name: &str) -> String {
    String::from_utf8(identity(name).csr().unwrap().to_pem().unwrap()).unwrap()
}

pub async fn register(app: &Router, name: &str) -> Value {
    let (status, body) = call(
        app,
        Method::POST,
        "/v1/register",
        None,
        Some(json!({"csr": csr_pem(name)})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

/// Signs a challenge nonce (base64) the way a client does.
pub fn sign_login(name: &str, ca_fingerprint: &[u8; 32], nonce_b64: &str) -> String {
    let challenge = ChallengeResponse {
        nonce: nonce_b64.to_owned(),
        expires_at: 0,
    };
    login_request(identity(name), ca_fingerprint, &challenge).signature
}

/// Logs `name` in through the router, as a client does (see `magpie_tests::relay_api`); the bearer token.
pub async fn login(app: &Router, name: &str) -> String {
    let request = serde_json::to_value(challenge_request(identity(name))).unwrap();
    let (status, challenge) = call(app, Method::POST, "/v1/login/challenge", None, Some(request)).await;
    assert_eq!(status, StatusCode::OK, "{challenge}");
    let challenge: ChallengeResponse = serde_json::from_value(challenge).unwrap();
    let request = serde_json::to_value(login_request(identity(name), &ca().fingerprint, &challenge)).unwrap();
    let (status, body) = call(app, Method::POST, "/v1/login", None, Some(request)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_value::<LoginResponse>(body).unwrap().token
}

/// Registers and logs in each of `names`; returns their tokens in order.
pub async fn users(app: &Router, names: &[&str]) -> Vec<String> {
    let mut tokens = Vec::new();
    for name in names {
        register(app, name).await;
        tokens.push(login(app, name).await);
    }
    tokens
}

pub fn envelope(to: &str, body: &[u8]) -> Value {
    json!({"id": uuid::Uuid::new_v4(), "to": to, "kind": "message", "body": STANDARD.encode(body)})
}

/// Registers `name` over real HTTP with its fixture key. `base` is the relay's URL without a path.
pub async fn http_register(http: &reqwest::Client, base: &str, name: &str) {
    RelayApi::new(http, base).register(identity(name)).await.unwrap();
}

/// Registers Alice and Bob over real HTTP and logs both in: their bearer tokens.
pub async fn alice_and_bob(http: &reqwest::Client, relay: &magpie_relay::server::RunningRelay) -> (String, String) {
    let base = relay.url("");
    http_register(http, &base, "alice").await;
    http_register(http, &base, "bob").await;
    let alice = http_login(http, &base, "alice", &ca().fingerprint).await;
    let bob = http_login(http, &base, "bob", &ca().fingerprint).await;
    (alice, bob)
}

/// The first page of `token`'s mailbox, over real HTTP.
pub async fn mailbox(http: &reqwest::Client, relay: &magpie_relay::server::RunningRelay, token: &str) -> Value {
    http.get(relay.url("/v1/envelopes"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Logs in over real HTTP as a client would: challenge, sign, login. `base` is the relay's URL without a path.
pub async fn http_login(http: &reqwest::Client, base: &str, name: &str, ca_fingerprint: &[u8; 32]) -> String {
    magpie_tests::relay_api::http_login(http, base, identity(name), ca_fingerprint).await
}

pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a push connection with `token`.
pub async fn push_connect(relay: &magpie_relay::server::RunningRelay, token: &str) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut request = format!("ws://{}/v1/push", relay.addr).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.status(), 101);
    ws
}

/// The next text frame on `ws`, as JSON; fails after 5 s.
pub async fn next_text(ws: &mut Ws) -> Value {
    use futures_util::StreamExt as _;
    loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next())
            .await
            .expect("push within 5 s")
            .expect("stream open")
            .unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

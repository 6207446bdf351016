//! The HTTP API through `tower::ServiceExt::oneshot`: happy paths, then every abuse the issue lists.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::SystemTime;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use common::*;
use magpie_proto::{Certificate, TrustAnchor, Username};
use magpie_relay::router;
use magpie_relay::store::MailboxQuota;
use serde_json::{json, Value};

fn assert_error(status: StatusCode, body: &Value, want_status: StatusCode, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["code"], want_code, "{body}");
    assert!(body["message"].is_string(), "{body}");
}

#[tokio::test]
async fn register_issues_a_certificate_that_chains_to_the_ca_and_is_in_the_directory() {
    let app = router(memory_state(config()));
    let issued = register(&app, "alice").await;
    assert_eq!(issued["username"], "alice");
    assert_eq!(issued["ca"].as_str().unwrap(), ca().pem);

    // The directory answers logged-in users only: nobody can list the relay's users by guessing names.
    let (status, body) = call(&app, Method::GET, "/v1/directory/alice", None, None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let token = login(&app, "alice").await;
    let (status, entry) = call(&app, Method::GET, "/v1/directory/alice", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    let chain: Vec<Certificate> = entry["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Certificate::from_pem(p.as_str().unwrap().as_bytes()).unwrap())
        .collect();
    let anchor = TrustAnchor::new(Certificate::from_pem(ca().pem.as_bytes()).unwrap()).unwrap();
    let peer = anchor
        .verify(&chain[..1], &Username::canonical("alice").unwrap(), SystemTime::now())
        .unwrap();
    assert_eq!(peer.fingerprint(), identity("alice").fingerprint().unwrap());

    let (status, body) = call(&app, Method::GET, "/v1/directory/nobody", Some(&token), None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = call(&app, Method::GET, "/v1/directory/NOT%20valid", Some(&token), None).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
}

#[tokio::test]
async fn squatting_a_taken_name_is_409_and_a_bad_csr_is_400() {
    let app = router(memory_state(config()));
    register(&app, "alice").await;
    let (status, body) = call(
        &app,
        Method::POST,
        "/v1/register",
        None,
        Some(json!({"csr": csr_pem("alice")})),
    )
    .await;
    assert_error(status, &body, StatusCode::CONFLICT, "name_taken");

    // Flip a byte inside the signature: the self-signature no longer verifies.
    let der = identity("bob").csr().unwrap().to_der().unwrap();
    let mut tampered = der.clone();
    let last = tampered.len() - 10;
    tampered[last] ^= 0x01;
    let pem = pem_wrap("CERTIFICATE REQUEST", &tampered);
    let (status, body) = call(&app, Method::POST, "/v1/register", None, Some(json!({"csr": pem}))).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_csr");

    let (status, body) = call(
        &app,
        Method::POST,
        "/v1/register",
        None,
        Some(json!({"csr": "not a csr"})),
    )
    .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_csr");
    // bob was not registered by the failed attempt.
    let token = login(&app, "alice").await;
    let (status, _) = call(&app, Method::GET, "/v1/directory/bob", Some(&token), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

fn pem_wrap(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

#[tokio::test]
async fn login_needs_a_fresh_nonce_signed_by_the_certified_key() {
    let app = router(memory_state(config()));
    register(&app, "alice").await;
    register(&app, "bob").await;
    let challenge = |name: &'static str| {
        let app = app.clone();
        async move {
            let (s, b) = call(
                &app,
                Method::POST,
                "/v1/login/challenge",
                None,
                Some(json!({"username": name})),
            )
            .await;
            assert_eq!(s, StatusCode::OK, "{b}");
            b["nonce"].as_str().unwrap().to_owned()
        }
    };
    let attempt = |name: &'static str, nonce: String, signature: String| {
        let app = app.clone();
        async move {
            call(
                &app,
                Method::POST,
                "/v1/login",
                None,
                Some(json!({"username": name, "nonce": nonce, "signature": signature})),
            )
            .await
        }
    };
    let fp = ca().fingerprint;

    // Bob signs alice's nonce with his own key: refused.
    let nonce = challenge("alice").await;
    let (s, b) = attempt("alice", nonce.clone(), sign_login("bob", &fp, &nonce)).await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED, "unauthorized");
    // The nonce was consumed by the failed attempt: even a good signature is refused now.
    let (s, b) = attempt("alice", nonce.clone(), sign_login("alice", &fp, &nonce)).await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED, "unauthorized");

    // A signature bound to another relay's CA is refused.
    let nonce = challenge("alice").await;
    let (s, _) = attempt("alice", nonce.clone(), sign_login("alice", &[0; 32], &nonce)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Bob cannot use a nonce issued to alice, even signing correctly as bob.
    let nonce = challenge("alice").await;
    let (s, _) = attempt("bob", nonce.clone(), sign_login("bob", &fp, &nonce)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // The right key on a fresh nonce works, once.
    let nonce = challenge("alice").await;
    let (s, b) = attempt("alice", nonce.clone(), sign_login("alice", &fp, &nonce)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b["token"].as_str().unwrap().len() >= 43);
    let (s, _) = attempt("alice", nonce.clone(), sign_login("alice", &fp, &nonce)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let (s, b) = call(
        &app,
        Method::POST,
        "/v1/login/challenge",
        None,
        Some(json!({"username": "nobody"})),
    )
    .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = attempt("alice", "%%%".into(), "AAAA".into()).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "bad_request");
}

#[tokio::test]
async fn an_expired_challenge_or_token_is_refused() {
    let mut cfg = config();
    cfg.challenge_ttl_secs = 0;
    let app = router(memory_state(cfg));
    register(&app, "alice").await;
    let (_, c) = call(
        &app,
        Method::POST,
        "/v1/login/challenge",
        None,
        Some(json!({"username": "alice"})),
    )
    .await;
    let nonce = c["nonce"].as_str().unwrap();
    let body = json!({"username": "alice", "nonce": nonce, "signature": sign_login("alice", &ca().fingerprint, nonce)});
    let (s, _) = call(&app, Method::POST, "/v1/login", None, Some(body)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let mut cfg = config();
    cfg.token_ttl_secs = 0;
    let app = router(memory_state(cfg));
    let tokens = users(&app, &["alice"]).await;
    let (s, b) = call(&app, Method::GET, "/v1/envelopes", Some(&tokens[0]), None).await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn envelopes_are_stored_once_fetched_oldest_first_and_acked_only_by_their_recipient() {
    let app = router(memory_state(config()));
    let t = users(&app, &["alice", "bob"]).await;
    let (alice, bob) = (&t[0], &t[1]);

    let first = envelope("bob", b"sealed one");
    let (s, b) = send(&app, alice, first.clone()).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(b["created"], true);
    // A retry with the same id is accepted and not duplicated.
    let (s, b) = send(&app, alice, first.clone()).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_eq!(b["created"], false);
    let mut later = Vec::new();
    for i in 0..3u8 {
        let e = envelope("bob", &[i; 5]);
        let (s, _) = send(&app, alice, e.clone()).await;
        assert_eq!(s, StatusCode::ACCEPTED);
        later.push(e);
    }

    let (s, page) = call(&app, Method::GET, "/v1/envelopes?limit=2", Some(bob), None).await;
    assert_eq!(s, StatusCode::OK);
    let got = page["envelopes"].as_array().unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0]["id"], first["id"]);
    assert_eq!(got[1]["id"], later[0]["id"]);
    // Each item is exactly a magpie-proto Envelope.
    let parsed = magpie_proto::Envelope::from_json(&serde_json::to_vec(&got[0]).unwrap()).unwrap();
    assert_eq!(
        (parsed.from.as_str(), parsed.to.as_str(), parsed.body.as_slice()),
        ("alice", "bob", &b"sealed one"[..])
    );
    let cursor = page["cursor"].as_u64().unwrap();
    let (_, rest) = call(
        &app,
        Method::GET,
        &format!("/v1/envelopes?after={cursor}"),
        Some(bob),
        None,
    )
    .await;
    let rest_ids: Vec<&Value> = rest["envelopes"].as_array().unwrap().iter().map(|e| &e["id"]).collect();
    assert_eq!(rest_ids, vec![&later[1]["id"], &later[2]["id"]]);

    // Alice sees none of bob's mail and cannot ack it.
    let (_, mine) = call(&app, Method::GET, "/v1/envelopes", Some(alice), None).await;
    assert!(mine["envelopes"].as_array().unwrap().is_empty());
    let ids = json!({"ids": [first["id"], later[0]["id"]]});
    let (s, b) = call(&app, Method::POST, "/v1/envelopes/ack", Some(alice), Some(ids.clone())).await;
    assert_eq!((s, b["acked"].as_u64()), (StatusCode::OK, Some(0)));
    let (s, b) = call(&app, Method::POST, "/v1/envelopes/ack", Some(bob), Some(ids)).await;
    assert_eq!((s, b["acked"].as_u64()), (StatusCode::OK, Some(2)));
    let (_, left) = call(&app, Method::GET, "/v1/envelopes", Some(bob), None).await;
    assert_eq!(left["envelopes"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn missing_bad_or_foreign_credentials_are_401_or_403() {
    let app = router(memory_state(config()));
    let t = users(&app, &["alice", "bob"]).await;
    let e = envelope("bob", b"x");
    let (s, b) = call(&app, Method::POST, "/v1/envelopes", None, Some(e.clone())).await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED, "unauthorized");
    let (s, _) = call(&app, Method::GET, "/v1/envelopes", Some("made-up-token"), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = call(&app, Method::GET, "/v1/push", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // A valid token but no upgrade: a JSON 400, not a plain-text rejection.
    let (s, b) = call(&app, Method::GET, "/v1/push", Some(&t[1]), None).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "bad_request");
    let request = Request::get("/v1/envelopes")
        .header(header::AUTHORIZATION, "Basic YWxpY2U6cHc=")
        .body(Body::empty())
        .unwrap();
    let (s, h, _) = call_raw(&app, request).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(h[header::WWW_AUTHENTICATE], "Bearer");

    // Alice's token claiming to send as bob.
    let mut forged = e.clone();
    forged["from"] = json!("bob");
    let (s, b) = send(&app, &t[0], forged).await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "forbidden");
    // Bob reusing the id alice used: refused, alice's envelope untouched.
    let (s, _) = send(&app, &t[0], e.clone()).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let mut reuse = e.clone();
    reuse["to"] = json!("alice");
    let (s, b) = send(&app, &t[1], reuse).await;
    assert_error(s, &b, StatusCode::CONFLICT, "id_taken");
    let (s, b) = send(&app, &t[0], envelope("nobody", b"x")).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn bad_input_is_a_json_4xx_never_a_500() {
    let mut cfg = config();
    cfg.max_envelope_bytes = 1024;
    let app = router(memory_state(cfg));
    let t = users(&app, &["alice", "bob"]).await;
    let raw = |body: &'static str, content_type: Option<&'static str>| {
        let mut b = Request::post("/v1/envelopes").header(header::AUTHORIZATION, format!("Bearer {}", t[0]));
        if let Some(ct) = content_type {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        b.body(Body::from(body)).unwrap()
    };
    let (s, _, b) = call_raw(&app, raw("{not json", Some("application/json"))).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "bad_request");
    let (s, _, b) = call_raw(&app, raw(r#"{"id": 5}"#, Some("application/json"))).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "bad_request");
    let (s, _, b) = call_raw(&app, raw("{}", None)).await;
    assert_error(s, &b, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");

    let mut unknown = envelope("bob", b"x");
    unknown["extra"] = json!(1);
    let (s, b) = send(&app, &t[0], unknown).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "bad_request");
    let mut kind = envelope("bob", b"x");
    kind["kind"] = json!("telegram");
    let (s, b) = send(&app, &t[0], kind).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "bad_request");
    let mut not_b64 = envelope("bob", b"x");
    not_b64["body"] = json!("***");
    let (s, b) = send(&app, &t[0], not_b64).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "bad_request");
    let mut bad_to = envelope("bob", b"x");
    bad_to["to"] = json!("Bob Smith");
    let (s, b) = send(&app, &t[0], bad_to).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "bad_request");

    // Just over the envelope limit (passes the HTTP limit, caught after decoding), and far over it.
    let (s, b) = send(&app, &t[0], envelope("bob", &[0; 1025])).await;
    assert_error(s, &b, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let (s, b) = send(&app, &t[0], envelope("bob", &[0; 100_000])).await;
    assert_error(s, &b, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let (s, _) = send(&app, &t[0], envelope("bob", &[0; 1024])).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let big_csr = json!({"csr": "A".repeat(100_000)});
    let (s, b) = call(&app, Method::POST, "/v1/register", None, Some(big_csr)).await;
    assert_error(s, &b, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    let (s, b) = call(&app, Method::GET, "/v1/envelopes?after=minus-one", Some(&t[1]), None).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "bad_request");
    let too_many: Vec<String> = (0..1001).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let (s, b) = call(
        &app,
        Method::POST,
        "/v1/envelopes/ack",
        Some(&t[1]),
        Some(json!({"ids": too_many})),
    )
    .await;
    assert_error(s, &b, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let (s, b) = call(&app, Method::GET, "/v1/nothing-here", None, None).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = call(&app, Method::DELETE, "/v1/envelopes", Some(&t[1]), None).await;
    assert_error(s, &b, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[tokio::test]
async fn send_limits_stop_one_user_without_touching_the_others() {
    let mut cfg = config();
    cfg.send_per_second = 1;
    cfg.send_burst = 2;
    let app = router(memory_state(cfg));
    let t = users(&app, &["alice", "bob"]).await;
    for _ in 0..2 {
        let (s, _) = send(&app, &t[0], envelope("bob", b"x")).await;
        assert_eq!(s, StatusCode::ACCEPTED);
    }
    let request = Request::post("/v1/envelopes")
        .header(header::AUTHORIZATION, format!("Bearer {}", t[0]))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(envelope("bob", b"x").to_string()))
        .unwrap();
    let (s, h, b) = call_raw(&app, request).await;
    assert_error(s, &b, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(h[header::RETRY_AFTER].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    let (s, _) = send(&app, &t[1], envelope("alice", b"x")).await;
    assert_eq!(s, StatusCode::ACCEPTED);
}

/// A JSON POST as if from `peer` (the address the server's connect info gives handlers).
async fn post_from(app: &axum::Router, peer: &str, uri: &str, body: Value) -> (StatusCode, Value) {
    let mut request = Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let addr: std::net::SocketAddr = peer.parse().unwrap();
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(magpie_relay::api::PeerAddr(addr)));
    let (status, _, body) = call_raw(app, request).await;
    (status, body)
}

#[tokio::test]
async fn login_limits_are_per_client_address_so_nobody_can_lock_a_user_out() {
    let mut cfg = config();
    cfg.login_per_minute = 3;
    let app = router(memory_state(cfg));
    users(&app, &["alice"]).await;
    let challenge = || json!({"username": "alice"});
    let attacker = "192.0.2.66:40000";
    for _ in 0..3 {
        let (s, b) = post_from(&app, attacker, "/v1/login/challenge", challenge()).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let (s, b) = post_from(&app, attacker, "/v1/login/challenge", challenge()).await;
    assert_error(s, &b, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    // Another port of the same host is the same client.
    let (s, b) = post_from(&app, "192.0.2.66:40001", "/v1/login/challenge", challenge()).await;
    assert_error(s, &b, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    // Alice, elsewhere, still gets in.
    let (s, b) = post_from(&app, "192.0.2.7:5000", "/v1/login/challenge", challenge()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // IPv6 clients are limited per /64.
    for _ in 0..3 {
        let (s, _) = post_from(&app, "[2001:db8:1:2::10]:1", "/v1/login/challenge", challenge()).await;
        assert_eq!(s, StatusCode::OK);
    }
    let (s, b) = post_from(&app, "[2001:db8:1:2::99]:1", "/v1/login/challenge", challenge()).await;
    assert_error(s, &b, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    // Clients on the relay's own machine are not limited.
    for _ in 0..5 {
        let (s, _) = post_from(&app, "127.0.0.1:9", "/v1/login/challenge", challenge()).await;
        assert_eq!(s, StatusCode::OK);
    }
}

#[tokio::test]
async fn registrations_are_limited_per_client_address() {
    let mut cfg = config();
    cfg.register_per_hour = 2;
    let app = router(memory_state(cfg));
    let register = |name: &str| json!({"csr": csr_pem(name)});
    let spammer = "198.51.100.1:1234";
    for name in ["alice", "bob"] {
        let (s, b) = post_from(&app, spammer, "/v1/register", register(name)).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let (s, b) = post_from(&app, spammer, "/v1/register", register("carol")).await;
    assert_error(s, &b, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let (s, b) = post_from(&app, "198.51.100.2:1234", "/v1/register", register("carol")).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
}

#[tokio::test]
async fn health_ca_and_metrics() {
    let app = router(memory_state(config()));
    let (s, h) = call(&app, Method::GET, "/v1/health", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["status"], "ok");
    assert_eq!(h["ca_fingerprint"].as_str().unwrap(), ca().fingerprint_hex());
    let (s, headers, pem) = call_raw(&app, Request::get("/v1/ca").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/x-pem-file");
    let root = Certificate::from_pem(pem.as_str().unwrap().as_bytes()).unwrap();
    assert_eq!(root.sha256_fingerprint().unwrap().to_hex(), ca().fingerprint_hex());

    let t = users(&app, &["alice", "bob"]).await;
    send(&app, &t[0], envelope("bob", b"x")).await;
    let (s, _, text) = call_raw(&app, from("127.0.0.1:9", Request::get("/metrics"))).await;
    assert_eq!(s, StatusCode::OK);
    let text = text.as_str().unwrap();
    for needle in [
        "magpie_envelopes_stored_total 1",
        "magpie_push_connections 0",
        "magpie_store_flushes_total",
        "magpie_http_request_duration_seconds_bucket{le=\"+Inf\"}",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
}

/// `request` as if it came from `peer` (what the connection loop records on every request).
fn from(peer: &str, request: axum::http::request::Builder) -> Request<Body> {
    let mut request = request.body(Body::empty()).unwrap();
    let addr: std::net::SocketAddr = peer.parse().unwrap();
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(magpie_relay::api::PeerAddr(addr)));
    request
}

#[tokio::test]
async fn metrics_are_for_this_machine_or_the_token_holder() {
    let mut cfg = config();
    cfg.metrics_token = Some("metrics-secret".into());
    let app = router(memory_state(cfg));
    let (s, _, body) = call_raw(&app, from("203.0.113.7:1", Request::get("/metrics"))).await;
    assert_error(s, &body, StatusCode::FORBIDDEN, "forbidden");
    let with_token = Request::get("/metrics").header(header::AUTHORIZATION, "Bearer metrics-secret");
    let (s, _, _) = call_raw(&app, from("203.0.113.7:1", with_token)).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = call_raw(&app, from("127.0.0.1:9", Request::get("/metrics"))).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn directory_lookups_are_rate_limited_per_user() {
    limited_per_user(|c| c.lookups_per_minute = 3, "/v1/directory/bob").await;
}

/// With `configure` setting a per-user limit of 3 a minute on `path`, a user's fourth call is 429 while another user
/// still gets through.
async fn limited_per_user(configure: impl FnOnce(&mut magpie_relay::Config), path: &str) {
    let mut cfg = config();
    configure(&mut cfg);
    let app = router(memory_state(cfg));
    let tokens = users(&app, &["alice", "bob"]).await;
    for _ in 0..3 {
        let (s, b) = call(&app, Method::GET, path, Some(&tokens[0]), None).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let (s, b) = call(&app, Method::GET, path, Some(&tokens[0]), None).await;
    assert_error(s, &b, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let (s, _) = call(&app, Method::GET, path, Some(&tokens[1]), None).await;
    assert_eq!(s, StatusCode::OK, "bob has his own allowance");
}

#[tokio::test]
async fn behind_a_proxy_only_its_header_names_the_client_and_nobody_is_exempt() {
    let mut cfg = config();
    cfg.login_per_minute = 2;
    cfg.client_ip_header = Some("x-forwarded-for".into());
    let app = router(memory_state(cfg));
    users(&app, &["alice"]).await;
    let challenge = |peer: &str, forwarded: &str| {
        let mut request = Request::post("/v1/login/challenge")
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-forwarded-for", forwarded)
            .body(Body::from(json!({"username": "alice"}).to_string()))
            .unwrap();
        let addr: std::net::SocketAddr = peer.parse().unwrap();
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(magpie_relay::api::PeerAddr(addr)));
        request
    };
    // An untrusted peer cannot pick a fresh address per request: its own is the key.
    for forged in ["198.51.100.1", "198.51.100.2"] {
        let (s, _, _) = call_raw(&app, challenge("192.0.2.50:1", forged)).await;
        assert_eq!(s, StatusCode::OK);
    }
    let (s, _, b) = call_raw(&app, challenge("192.0.2.50:1", "198.51.100.3")).await;
    assert_error(s, &b, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    // Through the proxy (on this machine), each client has its own allowance and none is exempt.
    for _ in 0..2 {
        let (s, _, _) = call_raw(&app, challenge("127.0.0.1:9", "203.0.113.20")).await;
        assert_eq!(s, StatusCode::OK);
    }
    let (s, _, b) = call_raw(&app, challenge("127.0.0.1:9", "203.0.113.20")).await;
    assert_error(s, &b, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let (s, _, _) = call_raw(&app, challenge("127.0.0.1:9", "203.0.113.21")).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn a_page_carries_at_most_the_fetch_budget_and_paging_on_gets_the_rest() {
    let mut cfg = config();
    cfg.fetch_budget_kb = 2;
    let app = router(memory_state(cfg));
    let t = users(&app, &["alice", "bob"]).await;
    // Bodies of 900 bytes are 1,200 in base64: one fits the 2 KiB budget, two do not. The last is over it alone.
    let mut sent = Vec::new();
    for size in [900, 900, 900, 3000] {
        let e = envelope("bob", &vec![7u8; size]);
        sent.push(e["id"].clone());
        let (s, b) = send(&app, &t[0], e).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    }
    let mut after = 0;
    let mut pages = Vec::new();
    loop {
        let uri = format!("/v1/envelopes?after={after}&limit=1000");
        let (s, page) = call(&app, Method::GET, &uri, Some(&t[1]), None).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        let ids: Vec<Value> = page["envelopes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].clone())
            .collect();
        if ids.is_empty() {
            break;
        }
        pages.push(ids.len());
        after = page["cursor"].as_u64().unwrap();
    }
    assert_eq!(pages, [1, 1, 1, 1], "one envelope a page, the oversized one too");
}

#[tokio::test]
async fn fetches_are_rate_limited_per_user() {
    limited_per_user(|c| c.fetches_per_minute = 3, "/v1/envelopes").await;
}

#[tokio::test]
async fn a_sender_over_its_bytes_per_hour_gets_429_and_others_go_on() {
    let mut cfg = config();
    cfg.send_kb_per_hour = 1;
    let app = router(memory_state(cfg));
    let t = users(&app, &["alice", "bob", "carol"]).await;
    // 600 bytes are 800 in base64: one fits the 1 KiB hour, two do not.
    let body = || envelope("bob", &[7u8; 600]);
    let (s, b) = send(&app, &t[0], body()).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let (s, b) = send(&app, &t[0], body()).await;
    assert_error(s, &b, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let (s, b) = send(&app, &t[2], body()).await;
    assert_eq!(s, StatusCode::ACCEPTED, "carol has her own hour: {b}");
}

#[tokio::test]
async fn a_full_mailbox_answers_507_until_its_owner_reads() {
    let mut cfg = config();
    cfg.mailbox_max_envelopes = 2;
    let app = router(memory_state(cfg));
    let t = users(&app, &["alice", "bob", "carol"]).await;
    let first = envelope("bob", b"one");
    for e in [first.clone(), envelope("bob", b"two")] {
        let (s, b) = send(&app, &t[0], e).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    }
    let (s, b) = send(&app, &t[2], envelope("bob", b"three")).await;
    assert_error(s, &b, StatusCode::INSUFFICIENT_STORAGE, "mailbox_full");
    assert_eq!(b["message"], "bob's mailbox is full");
    // A retry of what the mailbox holds is still accepted (idempotent), and others' mailboxes are not affected.
    let (s, b) = send(&app, &t[0], first.clone()).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let (s, _) = send(&app, &t[0], envelope("carol", b"x")).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    // Bob reads one: there is room again.
    let ack = json!({"ids": [first["id"]]});
    let (s, _) = call(&app, Method::POST, "/v1/envelopes/ack", Some(&t[1]), Some(ack)).await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = send(&app, &t[2], envelope("bob", b"three")).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
}

#[tokio::test]
async fn the_sweep_deletes_envelopes_unread_past_the_expiry_and_counts_them() {
    for days in [30, 0] {
        let mut cfg = config();
        cfg.mailbox_expiry_days = days;
        let state = memory_state(cfg);
        let app = router(state.clone());
        let t = users(&app, &["alice", "bob"]).await;
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let old = magpie_relay::store::NewEnvelope {
            id: uuid::Uuid::new_v4(),
            from: "alice".into(),
            to: "bob".into(),
            kind: magpie_proto::EnvelopeKind::Message,
            body_b64: "b2xk".into(),
            received_at: now - 31 * 86_400,
        };
        state
            .store
            .insert_envelope_within(old.clone(), MailboxQuota::UNLIMITED)
            .await
            .unwrap();
        let fresh = envelope("bob", b"new");
        let (s, _) = send(&app, &t[0], fresh.clone()).await;
        assert_eq!(s, StatusCode::ACCEPTED);

        magpie_relay::server::sweep(&state).await;
        let (_, page) = call(&app, Method::GET, "/v1/envelopes", Some(&t[1]), None).await;
        let ids: Vec<&str> = page["envelopes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap())
            .collect();
        let old_id = old.id.to_string();
        let want = if days == 0 {
            vec![old_id.as_str(), fresh["id"].as_str().unwrap()]
        } else {
            vec![fresh["id"].as_str().unwrap()]
        };
        assert_eq!(ids, want, "expiry {days} days");
        let expired = state
            .metrics
            .envelopes_expired
            .load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(expired, u64::from(days != 0));
    }
}

#[tokio::test]
async fn fetching_past_the_hours_bytes_is_refused_until_paid_off_and_a_429_is_held_back() {
    let mut cfg = config();
    // A sixteenth of 16 MiB at once: 1 MiB.
    cfg.fetch_mb_per_hour = 16;
    let app = router(memory_state(cfg));
    let t = users(&app, &["alice", "bob", "carol"]).await;
    for _ in 0..6 {
        let (s, _) = send(&app, &t[0], envelope("bob", &[5u8; 200 * 1024])).await;
        assert_eq!(s, StatusCode::ACCEPTED);
    }
    // One page may overdraw the budget (1.6 MB of base64 against 1 MiB): the next waits until it is paid off.
    let (s, page) = call(&app, Method::GET, "/v1/envelopes", Some(&t[1]), None).await;
    assert_eq!((s, page["envelopes"].as_array().unwrap().len()), (StatusCode::OK, 6));
    let asked = std::time::Instant::now();
    let (s, b) = call(&app, Method::GET, "/v1/envelopes", Some(&t[1]), None).await;
    assert_error(s, &b, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    // Answered only once its Retry-After (at least 1 s) has passed: asking again at once gains nothing.
    assert!(
        asked.elapsed() >= std::time::Duration::from_millis(990),
        "{:?}",
        asked.elapsed()
    );
    let (s, _) = call(&app, Method::GET, "/v1/envelopes", Some(&t[2]), None).await;
    assert_eq!(s, StatusCode::OK, "carol has her own budget");
}

/// Posts `envelope` as the holder of `token`: the status and the answer.
async fn send(app: &axum::Router, token: &str, envelope: Value) -> (StatusCode, Value) {
    call(app, Method::POST, "/v1/envelopes", Some(token), Some(envelope)).await
}

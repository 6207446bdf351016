//! Over a real socket on 127.0.0.1:0 with reqwest and a WebSocket client, on the sled backend.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures_util::StreamExt as _;
use magpie_relay::server::RunningRelay;
use magpie_relay::store::{SledStore, Store, SyncMode};
use magpie_relay::AppState;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

fn sled_state(dir: &std::path::Path) -> AppState {
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir, SyncMode::Flush).unwrap());
    AppState::new(store, ca(), config()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_delivers_a_sent_envelope_and_fetch_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RunningRelay::start(sled_state(dir.path())).await.unwrap();
    let http = reqwest::Client::new();
    let (alice, bob) = alice_and_bob(&http, &relay).await;

    let mut ws = push_connect(&relay, &bob).await;
    // The subscription is registered right after the upgrade; wait until the hub sees it.
    for _ in 0..100 {
        if relay.state.hub.connections_of("bob") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let e = envelope("bob", b"over the wire");
    let r = http
        .post(relay.url("/v1/envelopes"))
        .bearer_auth(&alice)
        .json(&e)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let event = next_text(&mut ws).await;
    assert_eq!(event["type"], "envelope");
    assert_eq!(event["envelope"]["id"], e["id"]);
    assert_eq!(event["envelope"]["from"], "alice");

    let page: Value = mailbox(&http, &relay, &bob).await;
    assert_eq!(page["envelopes"][0]["id"], e["id"]);
    assert_eq!(page["cursor"], event["cursor"]);

    // An error over the socket is JSON too.
    let r = http.get(relay.url("/v1/envelopes")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "unauthorized");

    // Graceful shutdown closes the push connection and returns.
    let stopped = tokio::spawn(relay.stop());
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(msg)) = ws.next().await {
            if matches!(msg, Message::Close(_)) {
                return true;
            }
        }
        true
    })
    .await
    .unwrap();
    assert!(closed);
    tokio::time::timeout(Duration::from_secs(5), stopped)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_and_acking_over_the_push_socket_are_answered_in_order() {
    use futures_util::SinkExt as _;
    let dir = tempfile::tempdir().unwrap();
    let relay = RunningRelay::start(sled_state(dir.path())).await.unwrap();
    let http = reqwest::Client::new();
    let (alice, bob) = alice_and_bob(&http, &relay).await;
    let mut bob_ws = push_connect(&relay, &bob).await;
    let mut alice_ws = push_connect(&relay, &alice).await;
    while relay.state.hub.connections_of("bob") == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let mut frame = envelope("bob", b"by socket");
    frame["type"] = json!("send");
    alice_ws.send(Message::text(frame.to_string())).await.unwrap();
    let reply = next_text(&mut alice_ws).await;
    assert_eq!(
        (reply["type"].as_str(), &reply["id"], &reply["created"]),
        (Some("accepted"), &frame["id"], &json!(true))
    );
    let pushed = next_text(&mut bob_ws).await;
    assert_eq!(pushed["envelope"]["id"], frame["id"]);
    assert_eq!(pushed["envelope"]["from"], "alice");

    // A retry is accepted without a second copy; bad frames get a typed error, and the socket stays up.
    alice_ws.send(Message::text(frame.to_string())).await.unwrap();
    let reply = next_text(&mut alice_ws).await;
    assert_eq!(
        (reply["type"].as_str(), &reply["created"]),
        (Some("accepted"), &json!(false))
    );
    let mut stranger = envelope("nobody", b"x");
    stranger["type"] = json!("send");
    alice_ws.send(Message::text(stranger.to_string())).await.unwrap();
    let reply = next_text(&mut alice_ws).await;
    assert_eq!(
        (reply["type"].as_str(), reply["code"].as_str()),
        (Some("error"), Some("not_found"))
    );
    assert_eq!(reply["id"], stranger["id"]);
    alice_ws.send(Message::text("{\"type\":\"dance\"}")).await.unwrap();
    let reply = next_text(&mut alice_ws).await;
    assert_eq!(reply["code"], "bad_request");

    let page: Value = mailbox(&http, &relay, &bob).await;
    assert_eq!(page["envelopes"].as_array().unwrap().len(), 1);

    // Bob acknowledges on his socket: answered in order, and the mailbox is empty after.
    let ack = json!({"type": "ack", "ids": [frame["id"]]});
    bob_ws.send(Message::text(ack.to_string())).await.unwrap();
    assert_eq!(next_text(&mut bob_ws).await, json!({"type": "acked", "acked": 1}));
    bob_ws.send(Message::text(ack.to_string())).await.unwrap();
    assert_eq!(next_text(&mut bob_ws).await, json!({"type": "acked", "acked": 0}));
    let too_many: Vec<String> = (0..1001).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let ack = json!({"type": "ack", "ids": too_many});
    bob_ws.send(Message::text(ack.to_string())).await.unwrap();
    let reply = next_text(&mut bob_ws).await;
    assert_eq!(
        (reply["type"].as_str(), reply["code"].as_str()),
        (Some("error"), Some("payload_too_large"))
    );
    // Alice cannot delete what waits in Bob's mailbox.
    let mut again = envelope("bob", b"second");
    again["type"] = json!("send");
    alice_ws.send(Message::text(again.to_string())).await.unwrap();
    assert_eq!(next_text(&mut alice_ws).await["type"], "accepted");
    let ack = json!({"type": "ack", "ids": [again["id"]]});
    alice_ws.send(Message::text(ack.to_string())).await.unwrap();
    assert_eq!(next_text(&mut alice_ws).await, json!({"type": "acked", "acked": 0}));
    let page: Value = mailbox(&http, &relay, &bob).await;
    let ids: Vec<&Value> = page["envelopes"].as_array().unwrap().iter().map(|e| &e["id"]).collect();
    assert_eq!(ids, [&again["id"]]);
    relay.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_envelopes_users_and_tokens_survive_a_restart_on_the_same_directory() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let (bob, ids) = {
        let relay = RunningRelay::start(sled_state(dir.path())).await.unwrap();
        let (alice, bob) = alice_and_bob(&http, &relay).await;
        let mut ids = Vec::new();
        for i in 0..20u8 {
            let e = envelope("bob", &[i; 16]);
            let r = http
                .post(relay.url("/v1/envelopes"))
                .bearer_auth(&alice)
                .json(&e)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
            ids.push(e["id"].clone());
        }
        relay.stop().await.unwrap();
        (bob, ids)
    };
    let relay = RunningRelay::start(sled_state(dir.path())).await.unwrap();
    let page: Value = http
        .get(relay.url("/v1/envelopes?limit=1000"))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let got: Vec<Value> = page["envelopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(got, ids);
    relay.stop().await.unwrap();
}

/// A throwaway self-signed P-256 certificate for 127.0.0.1, written as PEM files.
fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::x509::extension::SubjectAlternativeName;
    use openssl::x509::{X509Name, X509};
    let key =
        PKey::from_ec_key(EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap()).unwrap();
    let mut name = X509Name::builder().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, "127.0.0.1").unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    let san = SubjectAlternativeName::new()
        .ip("127.0.0.1")
        .build(&b.x509v3_context(None, None))
        .unwrap();
    b.append_extension(san).unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    let (cert_path, key_path) = (dir.join("tls.pem"), dir.join("tls.key"));
    std::fs::write(&cert_path, b.build().to_pem().unwrap()).unwrap();
    std::fs::write(&key_path, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    (cert_path, key_path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_is_served_when_given_a_certificate_and_a_stalled_handshake_blocks_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let acceptor = magpie_relay::tls::acceptor(&cert, &key).unwrap();
    let relay = RunningRelay::start_with(memory_state(config()), Some(acceptor))
        .await
        .unwrap();
    // A client that connects and never says hello must not hold up the others.
    let _stalled = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    let root = reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap();
    let https = reqwest::Client::builder().add_root_certificate(root).build().unwrap();
    let health: Value = tokio::time::timeout(
        Duration::from_secs(5),
        https.get(format!("https://{}/v1/health", relay.addr)).send(),
    )
    .await
    .unwrap()
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(health["status"], "ok");
    // Plain HTTP to the TLS port fails rather than being answered in the clear.
    assert!(reqwest::get(relay.url("/v1/health")).await.is_err());
    relay.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_proxy_the_named_header_is_the_client_and_otherwise_it_is_ignored() {
    let challenge = |http: reqwest::Client, url: String, from: &'static str| async move {
        http.post(url)
            .header("x-forwarded-for", format!("192.0.2.1, {from}"))
            .json(&json!({"username": "alice"}))
            .send()
            .await
            .unwrap()
            .status()
    };
    let http = reqwest::Client::new();
    for proxied in [true, false] {
        let mut cfg = config();
        cfg.login_per_minute = 2;
        cfg.client_ip_header = proxied.then(|| "X-Forwarded-For".to_owned());
        let store: Arc<dyn Store> = Arc::new(magpie_relay::store::MemoryStore::new());
        let relay = RunningRelay::start(AppState::new(store, ca(), cfg).unwrap())
            .await
            .unwrap();
        http_register(&http, &relay.url(""), "alice").await;
        let url = relay.url("/v1/login/challenge");
        let statuses = [
            challenge(http.clone(), url.clone(), "203.0.113.5").await,
            challenge(http.clone(), url.clone(), "203.0.113.5").await,
            challenge(http.clone(), url.clone(), "203.0.113.5").await,
            challenge(http.clone(), url.clone(), "203.0.113.6").await,
        ];
        let ok = reqwest::StatusCode::OK;
        if proxied {
            // The last address (the proxy's own entry) is the client; the spoofable first one is not.
            assert_eq!(statuses, [ok, ok, reqwest::StatusCode::TOO_MANY_REQUESTS, ok]);
        } else {
            // A header the operator did not name is the client's to write: ignored. The peer is loopback: unlimited.
            assert_eq!(statuses, [ok; 4]);
        }
        relay.stop().await.unwrap();
    }
}

/// Over its send rate, a sender on the socket is slowed, not refused: every frame is accepted and the mailbox holds
/// them in the order they were sent (a refused frame, resent later, would land behind the rest). HTTP still says 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_its_rate_a_socket_sender_is_slowed_and_kept_in_order() {
    use futures_util::SinkExt as _;
    const SENT: usize = 12;
    let mut cfg = config();
    cfg.send_per_second = 20;
    cfg.send_burst = 4;
    let store: Arc<dyn Store> = Arc::new(magpie_relay::store::MemoryStore::new());
    let relay = RunningRelay::start(AppState::new(store, ca(), cfg).unwrap())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let (alice, bob) = alice_and_bob(&http, &relay).await;
    let mut alice_ws = push_connect(&relay, &alice).await;

    let started = std::time::Instant::now();
    let frames: Vec<Value> = (0..SENT)
        .map(|i| {
            let mut frame = envelope("bob", format!("number {i}").as_bytes());
            frame["type"] = json!("send");
            frame
        })
        .collect();
    for frame in &frames {
        alice_ws.send(Message::text(frame.to_string())).await.unwrap();
    }
    for frame in &frames {
        let reply = next_text(&mut alice_ws).await;
        assert_eq!((reply["type"].as_str(), &reply["id"]), (Some("accepted"), &frame["id"]));
    }
    // 4 at once, then 20 a second: the other 8 took at least 0.35 s.
    assert!(
        started.elapsed() >= Duration::from_millis(350),
        "{:?}",
        started.elapsed()
    );
    let page: Value = mailbox(&http, &relay, &bob).await;
    let stored: Vec<&Value> = page["envelopes"].as_array().unwrap().iter().map(|e| &e["id"]).collect();
    let sent: Vec<&Value> = frames.iter().map(|f| &f["id"]).collect();
    assert_eq!(stored, sent);
    assert!(
        relay
            .state
            .metrics
            .rate_limited
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0
    );

    // Over HTTP, where each request stands alone, the answer to a sender over its rate is still 429.
    let mut statuses = Vec::new();
    for i in 0..8 {
        let response = http
            .post(relay.url("/v1/envelopes"))
            .bearer_auth(&alice)
            .json(&envelope("bob", format!("by http {i}").as_bytes()))
            .send()
            .await
            .unwrap();
        statuses.push(response.status());
    }
    assert!(
        statuses.contains(&reqwest::StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    relay.stop().await.unwrap();
}

//! A push client that floods frames and never reads what the relay answers: the relay stops reading it, then closes
//! it, and honest clients are served meanwhile. Over real sockets on 127.0.0.1:0.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::SinkExt as _;
use magpie_relay::server::RunningRelay;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const STALL: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_client_that_never_reads_is_cut_off_and_others_go_on() {
    let mut config = config();
    config.push_write_timeout_secs = STALL.as_secs();
    // No pacing: the flood reaches the relay as fast as the socket takes it.
    config.send_per_second = 1_000_000;
    config.send_burst = 1_000_000;
    let relay = RunningRelay::start(memory_state(config)).await.unwrap();
    let http = reqwest::Client::new();
    let (alice, bob) = alice_and_bob(&http, &relay).await;

    let flooder = push_connect(&relay, &alice).await;
    let flood_started = Instant::now();
    let flood = tokio::spawn(async move {
        // Split so that nothing ever reads the relay's answers.
        let (mut sink, _never_read) = futures_util::StreamExt::split(flooder);
        // 2 KiB bodies: 100,000 frames are far more than the sockets' buffers hold.
        let body = base64_of(&[7u8; 2048]);
        let mut written = 0usize;
        for i in 0..100_000 {
            let frame = match i % 2 {
                0 => json!({"type": "send", "id": uuid::Uuid::new_v4(), "to": "bob", "kind": "message",
                    "body": body}),
                _ => json!({"type": "ack", "ids": [uuid::Uuid::new_v4()]}),
            };
            // The relay stops reading once its answers back up: the write stalls (or fails once it hangs up).
            match tokio::time::timeout(STALL * 3, sink.send(Message::Text(frame.to_string().into()))).await {
                Ok(Ok(())) => written += 1,
                Ok(Err(_)) | Err(_) => break,
            }
        }
        (written, _never_read)
    });

    // Meanwhile Bob reads his pushes, and a message to him over HTTP arrives.
    let mut bob_push = push_connect(&relay, &bob).await;
    let r = http
        .post(relay.url("/v1/envelopes"))
        .bearer_auth(&alice)
        .json(&envelope("bob", b"honest"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "others are served during the flood");
    let mut honest_seen = false;
    for _ in 0..200_000 {
        let event = next_text(&mut bob_push).await;
        if event["envelope"]["body"] == base64_of(b"honest") {
            honest_seen = true;
            break;
        }
    }
    assert!(honest_seen);

    // The relay closes the flooder's connection once its answers have gone untaken for the stall time.
    while relay.state.hub.connections_of("alice") > 0 {
        assert!(
            flood_started.elapsed() < Duration::from_secs(60),
            "the flooder's push connection is still open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let closed_after = flood_started.elapsed();
    let (written, _keep_open) = flood.await.unwrap();
    assert!(
        written < 100_000,
        "the relay read every frame of a client that reads nothing back"
    );
    println!("flood: the relay took {written} of 100,000 frames, then closed the connection {closed_after:?} in");
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

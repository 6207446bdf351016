//! Envelopes waiting for the disk. A sender that hangs up meanwhile: the envelope is stored either way, so it must
//! still be pushed (the sender's retry is a duplicate, which is never pushed, and the recipient would wait for its
//! next catch-up). And the push does not wait for the disk at all; the sender's acceptance does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures_util::SinkExt as _;
use magpie_relay::server::RunningRelay;
use magpie_relay::store::{Intercept, SledStore, Store, StoreResult, SyncMode};
use magpie_relay::AppState;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt as _;
use tokio_tungstenite::tungstenite::Message;

/// Long enough that the sender is surely gone before its envelope is durable.
const SLOW_FLUSH: Duration = Duration::from_millis(300);

struct Setup {
    relay: RunningRelay,
    alice: String,
    bob_ws: Ws,
    _dir: tempfile::TempDir,
}

async fn slow_disk_relay() -> Setup {
    relay_with_flush(|inner| {
        std::thread::sleep(SLOW_FLUSH);
        inner.flush()
    })
    .await
}

/// A relay on sled whose group commits go through `flush`, with Alice and Bob registered and Bob's push open.
async fn relay_with_flush(flush: impl Fn(&dyn Store) -> StoreResult<()> + Send + Sync + 'static) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let sled: Arc<dyn Store> = Arc::new(SledStore::open(dir.path(), SyncMode::Flush).unwrap());
    let intercepted = Intercept::new(sled).on_flush(flush);
    let relay = RunningRelay::start(AppState::new(Arc::new(intercepted), ca(), config()).unwrap())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let (alice, bob) = alice_and_bob(&http, &relay).await;
    let bob_ws = push_connect(&relay, &bob).await;
    while relay.state.hub.connections_of("bob") == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Setup {
        relay,
        alice,
        bob_ws,
        _dir: dir,
    }
}

/// Waits until the relay has `id` in Bob's mailbox (stored, not necessarily durable yet).
async fn wait_until_stored(relay: &RunningRelay, id: &Value) {
    let id = id.as_str().unwrap();
    for _ in 0..400 {
        let mail = relay.state.store.fetch("bob", 0, 100).await.unwrap();
        if mail.iter().any(|e| e.id.to_string() == id) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the relay never stored {id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_whose_socket_closed_before_the_answer_is_still_pushed() {
    let mut setup = slow_disk_relay().await;
    let mut alice_ws = push_connect(&setup.relay, &setup.alice).await;
    let mut frame = envelope("bob", b"sent, then the socket closed");
    frame["type"] = json!("send");
    alice_ws.send(Message::text(frame.to_string())).await.unwrap();
    wait_until_stored(&setup.relay, &frame["id"]).await;
    alice_ws.close(None).await.unwrap();
    drop(alice_ws);

    let pushed = next_text(&mut setup.bob_ws).await;
    assert_eq!(pushed["envelope"]["id"], frame["id"]);
    setup.relay.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_whose_connection_closed_before_the_answer_is_still_pushed() {
    let mut setup = slow_disk_relay().await;
    let envelope = envelope("bob", b"posted, then the connection closed");
    let body = envelope.to_string();
    let mut tcp = tokio::net::TcpStream::connect(setup.relay.addr).await.unwrap();
    let request = format!(
        "POST /v1/envelopes HTTP/1.1\r\nhost: relay\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        setup.alice,
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    wait_until_stored(&setup.relay, &envelope["id"]).await;
    drop(tcp);

    let pushed = next_text(&mut setup.bob_ws).await;
    assert_eq!(pushed["envelope"]["id"], envelope["id"]);
    setup.relay.stop().await.unwrap();
}

/// A flush that waits until the test opens the gate.
#[derive(Default)]
struct Gate {
    open: std::sync::Mutex<bool>,
    opened: std::sync::Condvar,
}

impl Gate {
    fn set(&self, open: bool) {
        *self.open.lock().unwrap() = open;
        self.opened.notify_all();
    }

    fn wait(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_push_goes_out_before_the_disk_and_the_acceptance_after_it() {
    let gate = Arc::new(Gate::default());
    gate.set(true);
    let mut setup = relay_with_flush({
        let gate = gate.clone();
        move |inner| {
            gate.wait();
            inner.flush()
        }
    })
    .await;
    let mut alice_ws = push_connect(&setup.relay, &setup.alice).await;

    gate.set(false);
    let mut frame = envelope("bob", b"before the disk");
    frame["type"] = json!("send");
    alice_ws.send(Message::text(frame.to_string())).await.unwrap();
    let pushed = next_text(&mut setup.bob_ws).await;
    assert_eq!(pushed["envelope"]["id"], frame["id"], "pushed while the flush is held");
    let early = tokio::time::timeout(Duration::from_millis(200), next_text(&mut alice_ws)).await;
    assert!(early.is_err(), "accepted before durable: {early:?}");

    gate.set(true);
    let answer = next_text(&mut alice_ws).await;
    assert_eq!(
        (answer["type"].as_str(), &answer["id"]),
        (Some("accepted"), &frame["id"])
    );
    setup.relay.stop().await.unwrap();
}

//! Connections a hostile client holds open: slow or half-sent headers, idle keep-alive, more than the cap. Over real
//! sockets on 127.0.0.1:0.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use magpie_relay::server::RunningRelay;
use magpie_relay::Config;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// What the relay may take beyond the timeout to close a connection.
const SLACK: Duration = Duration::from_secs(2);

fn config_with(change: impl FnOnce(&mut Config)) -> Config {
    let mut config = config();
    config.header_read_timeout_secs = HEADER_TIMEOUT.as_secs();
    change(&mut config);
    config
}

/// Reads until the relay closes the connection; how long that took, or `None` if it stayed open until `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        let left = within.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
            Err(_) => return None,
        }
    }
}

/// 500 connections that never finish their headers (half of them dribbling a byte every 300 ms) are all closed
/// within the header timeout, while an honest client registers, logs in and sends meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_in_time_and_an_honest_client_goes_on() {
    let relay = RunningRelay::start(memory_state(config_with(|_| {}))).await.unwrap();
    let started = Instant::now();
    let mut slow = Vec::new();
    for i in 0..500 {
        let mut stream = TcpStream::connect(relay.addr).await.unwrap();
        stream
            .write_all(b"POST /v1/register HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\n")
            .await
            .unwrap();
        slow.push(tokio::spawn(hang_on(stream, i % 2 == 0, started)));
    }

    let http = reqwest::Client::new();
    let (alice, _bob) = alice_and_bob(&http, &relay).await;
    let sent = http
        .post(relay.url("/v1/envelopes"))
        .bearer_auth(&alice)
        .json(&envelope("bob", b"while others hang"))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 202, "an honest client is served meanwhile");

    let mut slowest = Duration::ZERO;
    for (i, hanging) in slow.into_iter().enumerate() {
        let closed = hanging.await.unwrap();
        let closed = closed.unwrap_or_else(|| panic!("slow connection {i} still open"));
        slowest = slowest.max(closed);
    }
    assert!(slowest <= HEADER_TIMEOUT + SLACK, "{slowest:?}");
    println!(
        "slowloris_closed_s={:.1} (500 connections, header timeout {HEADER_TIMEOUT:?})",
        slowest.as_secs_f64()
    );
}

/// Holds `stream` open as a slowloris client does, a header byte every 300 ms when `dribble`s; when the relay
/// closed it, counted from `started`, or `None` if it was still open after the timeout and the slack.
async fn hang_on(mut stream: TcpStream, dribble: bool, started: Instant) -> Option<Duration> {
    let mut buf = [0u8; 256];
    let mut tick = tokio::time::interval(Duration::from_millis(300));
    loop {
        let left = (HEADER_TIMEOUT + SLACK).checked_sub(started.elapsed())?;
        tokio::select! {
            read = tokio::time::timeout(left, stream.read(&mut buf)) => match read {
                Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
                Ok(Ok(_)) => {}
                Err(_) => return None,
            },
            _ = tick.tick(), if dribble => {
                let _ = stream.write_all(b"X").await;
            }
        }
    }
}

/// A kept-alive connection that sends nothing after its request is closed once the header timeout passes.
#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_header_timeout() {
    let relay = RunningRelay::start(memory_state(config_with(|_| {}))).await.unwrap();
    let mut stream = TcpStream::connect(relay.addr).await.unwrap();
    stream
        .write_all(b"GET /v1/health HTTP/1.1\r\nHost: relay\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    let closed = closed_within(&mut stream, HEADER_TIMEOUT + SLACK).await;
    let closed = closed.expect("the idle connection is closed");
    assert!(
        closed >= HEADER_TIMEOUT - Duration::from_millis(200),
        "closed too early: {closed:?}"
    );
}

/// Over the total cap, a new connection is closed at once; when one closes, there is room again.
#[tokio::test]
async fn connections_over_the_cap_are_closed_at_once() {
    let state = memory_state(config_with(|c| {
        c.max_connections = 5;
        c.header_read_timeout_secs = 30;
    }));
    let relay = RunningRelay::start(state).await.unwrap();
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(TcpStream::connect(relay.addr).await.unwrap());
    }
    // Accepted (the kernel does that) and closed by the relay at once.
    let mut extra = TcpStream::connect(relay.addr).await.unwrap();
    assert!(closed_within(&mut extra, Duration::from_secs(2)).await.is_some());

    drop(held.pop());
    let mut again = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut stream = TcpStream::connect(relay.addr).await.unwrap();
        if closed_within(&mut stream, Duration::from_millis(300)).await.is_none() {
            again = Some(stream);
            break;
        }
    }
    let mut stream = again.expect("a place came free");
    stream
        .write_all(b"GET /v1/health HTTP/1.1\r\nHost: relay\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
}

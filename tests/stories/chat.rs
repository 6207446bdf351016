//! The first story: register, request, accept, then a thousand messages each way.

use std::collections::HashMap;
use std::sync::atomic::Ordering::SeqCst;

use magpie_core::engine::{Event, MessageView};
use magpie_core::history::{Delivery, Direction};

use crate::common::{online_pair, wait_for, OnlinePair, Relay};

const EACH_WAY: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alice_and_bob_exchange_a_thousand_messages_each_way() {
    let relay = Relay::start().await;
    let OnlinePair { alice, bob, .. } = online_pair(&relay).await;

    let (a, b) = (alice.client.clone(), bob.client.clone());
    let rekeys = count_rekeys(a.events());
    let relay_state = &relay.running.state;
    let http_before = relay_state.metrics.http_requests.load(SeqCst);
    exchange(&a, &b, EACH_WAY).await;

    let alice_history = a.last_messages(b.username(), 10 * EACH_WAY).unwrap();
    let bob_history = b.last_messages(a.username(), 10 * EACH_WAY).unwrap();
    assert_eq!(alice_history.len(), 2 * EACH_WAY);
    assert_eq!(bob_history.len(), 2 * EACH_WAY);
    // Same messages on both sides: same ids, same texts, directions mirrored.
    let by_id: HashMap<_, _> = bob_history.iter().map(|e| (e.message.id, &e.message)).collect();
    for entry in &alice_history {
        let theirs = by_id[&entry.message.id];
        assert_eq!(theirs.body, entry.message.body);
        assert_ne!(theirs.direction, entry.message.direction);
    }
    // Each sender's messages sit in the order they were written, in both histories.
    for history in [&alice_history, &bob_history] {
        for tag in ["from alice", "from bob"] {
            let numbers: Vec<usize> = history
                .iter()
                .filter_map(|e| e.message.body.strip_prefix(tag))
                .map(|n| n.trim().parse().unwrap())
                .collect();
            assert_eq!(numbers, (0..EACH_WAY).collect::<Vec<_>>(), "{tag}");
        }
    }
    // Receipts come back: every outgoing message ends "delivered".
    for (client, peer) in [(&a, b.username()), (&b, a.username())] {
        wait_until_all_delivered(client, peer).await;
    }
    // Both mailboxes at the relay empty out: everything was acknowledged, and on the sockets, like the sends (a
    // few HTTP requests are the re-keys' directory lookups).
    let deadline = tokio::time::Instant::now() + crate::common::PATIENCE;
    for user in ["alice", "bob"] {
        while !relay_state.store.fetch(user, 0, 1).await.unwrap().is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "{user}'s mailbox never emptied");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    let http_requests = relay_state.metrics.http_requests.load(SeqCst) - http_before;
    println!("HTTP requests during the exchange: {http_requests}");
    assert!(http_requests < 50, "{http_requests} HTTP requests for 4,000 envelopes");
    // 4,000 messages and receipts crossed one session's 1,000-message limit: the keys were renewed on the way,
    // and messages sealed under the old keys while the new handshake ran still opened.
    let rekeyed = rekeys.abort_and_count().await;
    assert!(rekeyed >= 1, "no re-key happened");
    // Each side kept where its re-keys fell among the messages, for the "new session keys" divider.
    for (client, peer, history) in [(&a, b.username(), &alice_history), (&b, a.username(), &bob_history)] {
        let marks = client.contact(peer).unwrap().unwrap().rekeys;
        assert_eq!(marks.len(), rekeyed, "one mark per re-key");
        // After the first message (it took 1,000 to need one), in order, and never on a message's own place.
        let first = history.first().unwrap().cursor.value();
        assert!(marks.windows(2).all(|w| w[0] < w[1]), "{marks:?}");
        assert!(marks[0] > first, "{marks:?} before {first}");
        assert!(history.iter().all(|e| !marks.contains(&e.cursor.value())));
    }
}

pub struct RekeyCounter(
    tokio::task::JoinHandle<()>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
);

pub fn count_rekeys(mut events: tokio::sync::broadcast::Receiver<Event>) -> RekeyCounter {
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = count.clone();
    let task = tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            if matches!(event, Event::SessionEstablished { rekey: true, .. }) {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    RekeyCounter(task, count)
}

impl RekeyCounter {
    pub async fn abort_and_count(self) -> usize {
        self.0.abort();
        let _ = self.0.await;
        self.1.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Alice and Bob send each other `n` messages at once ("from alice 0", …); each receives the other's in order.
pub async fn exchange(a: &magpie_core::Client, b: &magpie_core::Client, n: usize) {
    let (mut alice_events, mut bob_events) = (a.events(), b.events());
    let send = |from: magpie_core::Client, to: magpie_proto::Username, tag: &'static str| {
        tokio::spawn(async move {
            for i in 0..n {
                from.send_text(&to, &format!("{tag} {i}")).unwrap();
                if i % 50 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    let sending = [
        send(a.clone(), b.username().clone(), "from alice"),
        send(b.clone(), a.username().clone(), "from bob"),
    ];
    let (got_by_alice, got_by_bob) = tokio::join!(receive(&mut alice_events, n), receive(&mut bob_events, n));
    for task in sending {
        task.await.unwrap();
    }
    assert_in_order(&got_by_bob, "from alice");
    assert_in_order(&got_by_alice, "from bob");
}

async fn receive(events: &mut tokio::sync::broadcast::Receiver<Event>, n: usize) -> Vec<MessageView> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        got.push(
            wait_for(events, |e| match e {
                Event::MessageReceived { message } => Some(message.clone()),
                _ => None,
            })
            .await,
        );
    }
    got
}

fn assert_in_order(messages: &[MessageView], tag: &str) {
    let bodies: Vec<String> = messages.iter().map(|m| m.body.clone()).collect();
    let expected: Vec<String> = (0..bodies.len()).map(|i| format!("{tag} {i}")).collect();
    assert_eq!(bodies, expected);
}

pub async fn wait_until_all_delivered(client: &magpie_core::Client, peer: &magpie_proto::Username) {
    let deadline = tokio::time::Instant::now() + crate::common::PATIENCE;
    loop {
        let history = client.last_messages(peer, usize::MAX).unwrap();
        let pending: Vec<String> = history
            .iter()
            .filter(|e| e.message.direction == Direction::Outgoing && e.message.delivery != Delivery::Delivered)
            .map(|e| format!("{:?} {} ({:?})", e.message.body, e.message.id, e.message.delivery))
            .collect();
        if pending.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} messages never delivered: {}",
            pending.len(),
            pending.join(", ")
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

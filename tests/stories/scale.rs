//! Several relays on one PostgreSQL database, as one relay to their users: Alice on node 1 and Bob on node 3 make
//! a session through the handshake and exchange a thousand messages each way.

use magpie_relay::server::{self, RunningRelay};
use magpie_relay::Config;

use crate::chat::{assert_in_order, receive, wait_until_all_delivered};
use crate::common::{go_online, handshake, logs, Person};

const EACH_WAY: usize = 1000;

/// A fresh database on the server `scripts/pg-session.sh` starts; `None` outside it (and outside CI).
async fn fresh_database() -> Option<String> {
    let Ok(url) = std::env::var("MAGPIE_TEST_DATABASE_URL") else {
        assert!(
            std::env::var("CI").is_err(),
            "CI runs this story: run it inside scripts/pg-session.sh"
        );
        eprintln!("no MAGPIE_TEST_DATABASE_URL: the scale-out story did not run (scripts/pg-session.sh runs it)");
        return None;
    };
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let name = format!("story_{}", uuid::Uuid::new_v4().simple());
    client.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
    Some(url.replace("dbname=postgres", &format!("dbname={name}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alice_on_node_1_and_bob_on_node_3_chat_a_thousand_messages_each_way() {
    logs();
    let Some(database) = fresh_database().await else { return };
    let mut nodes: Vec<(RunningRelay, tempfile::TempDir)> = Vec::new();
    for _ in 0..3 {
        let data = tempfile::tempdir().unwrap();
        let mut config = Config::with_data_dir(data.path());
        config.database = Some(database.clone());
        config.database_connections = 8;
        let running = RunningRelay::start(server::open(config).await.unwrap()).await.unwrap();
        nodes.push((running, data));
    }
    let alice = Person::register("alice", &nodes[0].0.url("")).await;
    let bob = Person::register("bob", &nodes[2].0.url("")).await;
    drop(go_online(&alice.client));
    drop(go_online(&bob.client));
    // Alice's request is stored through node 1 and pushed to Bob by node 3, and so on both ways.
    handshake(&alice.client, &bob.client).await;

    let (a, b) = (alice.client.clone(), bob.client.clone());
    let (mut alice_events, mut bob_events) = (a.events(), b.events());
    let send = |from: magpie_core::Client, to: magpie_proto::Username, tag: &'static str| {
        tokio::spawn(async move {
            for i in 0..EACH_WAY {
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
    let (got_by_alice, got_by_bob) =
        tokio::join!(receive(&mut alice_events, EACH_WAY), receive(&mut bob_events, EACH_WAY));
    for task in sending {
        task.await.unwrap();
    }
    assert_in_order(&got_by_bob, "from alice");
    assert_in_order(&got_by_alice, "from bob");
    for (client, peer) in [(&a, b.username()), (&b, a.username())] {
        wait_until_all_delivered(client, peer).await;
    }
    // Every envelope is acknowledged in the end, whichever node stored it and whichever the ack went through.
    let deadline = tokio::time::Instant::now() + crate::common::PATIENCE;
    for user in ["alice", "bob"] {
        while !nodes[1].0.state.store.fetch(user, 0, 1).await.unwrap().is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "{user}'s mailbox never emptied");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    println!(
        "three relays, one database: {} messages each way, in order, all delivered",
        EACH_WAY
    );
    for (node, _) in nodes {
        node.stop().await.unwrap();
    }
}

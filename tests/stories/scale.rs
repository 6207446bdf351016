//! Several relays on one PostgreSQL database, as one relay to their users: Alice on node 1 and Bob on node 3 make
//! a session through the handshake and exchange a thousand messages each way.

use magpie_relay::server::{self, RunningRelay};
use magpie_relay::Config;

use crate::chat::{exchange, wait_until_all_delivered};
use crate::common::{go_online, handshake, logs, Person};

const EACH_WAY: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alice_on_node_1_and_bob_on_node_3_chat_a_thousand_messages_each_way() {
    logs();
    let Some(database) = magpie_tests::pg::fresh_database().await else {
        return;
    };
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
    exchange(&a, &b, EACH_WAY).await;
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

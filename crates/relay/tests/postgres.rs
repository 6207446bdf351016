//! Relays sharing one PostgreSQL database (`--database`): what must hold across nodes, over real HTTP.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use magpie_tests::pg;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::identity;
use magpie_api::SendRequest;
use magpie_proto::EnvelopeKind;
use magpie_relay::config::Config;
use magpie_relay::server::{self, RunningRelay, StartError};
use magpie_tests::relay_api::{challenge_request, login_request, RelayApi};

/// A relay on `database` with its own data directory.
async fn node(database: &str, data: &std::path::Path) -> RunningRelay {
    let mut config = Config::with_data_dir(data);
    config.database = Some(database.to_owned());
    config.database_connections = 4;
    RunningRelay::start(server::open(config).await.unwrap()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_relays_on_one_database_are_one_relay_to_their_clients() {
    let Some(db) = pg::fresh_database().await else { return };
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = Vec::new();
    for dir in &dirs {
        nodes.push(node(&db, dir.path()).await);
    }
    let http = reqwest::Client::new();
    let api = |i: usize| RelayApi::new(&http, &nodes[i].url(""));

    // One CA, whichever node answers.
    let fingerprints: Vec<String> = nodes.iter().map(|n| n.state.ca.fingerprint_hex()).collect();
    assert!(fingerprints.iter().all(|f| *f == fingerprints[0]), "{fingerprints:?}");
    let fingerprint = nodes[0].state.ca.fingerprint;

    // A name is registered once, on any node.
    api(0).register(identity("alice")).await.unwrap();
    let again = api(1).register(identity("alice")).await.unwrap_err();
    assert_eq!(again.status, 409);
    api(2).register(identity("bob")).await.unwrap();

    // A challenge from node 1 is good once on node 2, and refused when replayed on node 3.
    let challenge: magpie_api::ChallengeResponse = http
        .post(nodes[0].url(magpie_api::paths::LOGIN_CHALLENGE))
        .json(&challenge_request(identity("alice")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let login = login_request(identity("alice"), &fingerprint, &challenge);
    let answer = http
        .post(nodes[1].url(magpie_api::paths::LOGIN))
        .json(&login)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let token = answer.json::<magpie_api::LoginResponse>().await.unwrap().token;
    let replay = http
        .post(nodes[2].url(magpie_api::paths::LOGIN))
        .json(&login)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 401);

    // The token from node 2 works on every node at once; an envelope sent on node 1 is fetched on node 3 and
    // acknowledged there; its retry on node 2 is recognised.
    let alice = |i: usize| api(i).with_token(&token);
    let bob_token = {
        let mut bob = api(2);
        bob.login(identity("bob"), &fingerprint).await.unwrap();
        bob.token().to_owned()
    };
    let bob = |i: usize| api(i).with_token(&bob_token);
    assert_eq!(alice(2).lookup("bob").await.unwrap().username, "bob");
    let envelope = SendRequest {
        id: uuid::Uuid::new_v4(),
        from: None,
        to: "bob".into(),
        kind: EnvelopeKind::Message,
        body: STANDARD.encode(b"across nodes").into(),
    };
    let sent = alice(0).send(&envelope).await.unwrap();
    assert!(sent.created);
    let page = bob(2).fetch(0, None).await.unwrap();
    assert_eq!(page.envelopes.len(), 1);
    assert_eq!((page.envelopes[0].id, page.cursor), (envelope.id, sent.cursor));
    assert_eq!(bob(2).ack(&[envelope.id]).await.unwrap().acked, 1);
    let retry = alice(1).send(&envelope).await.unwrap();
    assert_eq!((retry.created, retry.cursor), (false, sent.cursor));
    assert!(bob(0).fetch(0, None).await.unwrap().envelopes.is_empty());

    for node in nodes {
        node.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_socket_gets_what_is_sent_through_any_relay_in_order() {
    let Some(db) = pg::fresh_database().await else { return };
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (one, three) = (node(&db, dirs[0].path()).await, node(&db, dirs[1].path()).await);
    let http = reqwest::Client::new();
    let fingerprint = one.state.ca.fingerprint;
    let mut alice = RelayApi::new(&http, &one.url(""));
    alice.register(identity("alice")).await.unwrap();
    alice.login(identity("alice"), &fingerprint).await.unwrap();
    let mut bob = RelayApi::new(&http, &three.url(""));
    bob.register(identity("bob")).await.unwrap();
    bob.login(identity("bob"), &fingerprint).await.unwrap();
    let mut socket = common::push_connect(&three, bob.token()).await;
    // Alice also sends through Bob's relay: what it stores itself must not overtake what node 1 stored before.
    let mut alice_on_three = RelayApi::new(&http, &three.url(""));
    alice_on_three.login(identity("alice"), &fingerprint).await.unwrap();

    let mut sent = Vec::new();
    for i in 0..40 {
        let envelope = SendRequest {
            id: uuid::Uuid::new_v4(),
            from: None,
            to: "bob".into(),
            kind: EnvelopeKind::Message,
            body: STANDARD.encode(format!("message {i}")).into(),
        };
        let through = if i % 2 == 0 { &alice } else { &alice_on_three };
        sent.push((envelope.id, through.send(&envelope).await.unwrap().cursor));
    }
    for (id, cursor) in sent {
        let frame = common::next_text(&mut socket).await;
        assert_eq!(frame["type"], "envelope", "{frame}");
        assert_eq!(frame["envelope"]["id"], id.to_string());
        assert_eq!(frame["cursor"], cursor);
        assert_eq!(frame["envelope"]["from"], "alice");
    }

    // The listening connection dies (a database restart, a network cut): announcements made meanwhile are lost,
    // so node 3 closes Bob's socket for him to catch up, and listens again for the next ones.
    let (admin, connection) = tokio_postgres::connect(&db, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let killed = admin
        .query(
            // This test's database only: other tests run relays on the same server at the same time.
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE query LIKE 'LISTEN%' AND datname = current_database()",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(killed.len(), 2, "each relay listens");
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        use futures_util::StreamExt as _;
        loop {
            match socket.next().await {
                None | Some(Err(_)) | Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))) => break,
                Some(Ok(_)) => {}
            }
        }
    });
    closed
        .await
        .expect("the socket is closed once its relay stops hearing the others");
    let mut socket = common::push_connect(&three, bob.token()).await;
    let mut pushed = false;
    for _ in 0..50 {
        // Until node 3 listens again: what is sent before then is fetched, not pushed.
        let envelope = SendRequest {
            id: uuid::Uuid::new_v4(),
            from: None,
            to: "bob".into(),
            kind: EnvelopeKind::Message,
            body: STANDARD.encode(b"after the cut").into(),
        };
        alice.send(&envelope).await.unwrap();
        let next = tokio::time::timeout(std::time::Duration::from_millis(200), common::next_text(&mut socket));
        if let Ok(frame) = next.await {
            assert_eq!(frame["type"], "envelope");
            pushed = true;
            break;
        }
    }
    assert!(pushed, "node 3 listens again");
    one.stop().await.unwrap();
    three.stop().await.unwrap();
}

/// Sends on the push socket are queued for the database's next group without waiting for each: 300 frames are
/// answered in order, each accepted once stored, and reach the recipient on another relay in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_sent_on_a_socket_are_stored_in_order_without_waiting_for_each() {
    use futures_util::SinkExt as _;
    let Some(db) = pg::fresh_database().await else { return };
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (one, two) = (node(&db, dirs[0].path()).await, node(&db, dirs[1].path()).await);
    let http = reqwest::Client::new();
    let fingerprint = one.state.ca.fingerprint;
    let mut alice = RelayApi::new(&http, &one.url(""));
    alice.register(identity("alice")).await.unwrap();
    alice.login(identity("alice"), &fingerprint).await.unwrap();
    let mut bob = RelayApi::new(&http, &two.url(""));
    bob.register(identity("bob")).await.unwrap();
    bob.login(identity("bob"), &fingerprint).await.unwrap();
    let mut bobs = common::push_connect(&two, bob.token()).await;
    let mut alices = common::push_connect(&one, alice.token()).await;

    let ids: Vec<uuid::Uuid> = (0..300).map(|_| uuid::Uuid::new_v4()).collect();
    for id in &ids {
        let frame = serde_json::json!({"type": "send", "id": id, "to": "bob", "kind": "message",
            "body": STANDARD.encode(b"queued")});
        alices
            .send(tokio_tungstenite::tungstenite::Message::text(frame.to_string()))
            .await
            .unwrap();
    }
    let mut last = 0;
    for id in &ids {
        let answer = common::next_text(&mut alices).await;
        assert_eq!(
            (answer["type"].as_str(), answer["id"].as_str()),
            (Some("accepted"), Some(id.to_string().as_str()))
        );
        let cursor = answer["cursor"].as_u64().unwrap();
        assert!(cursor > last, "seqs rise in frame order");
        last = cursor;
    }
    for id in &ids {
        let pushed = common::next_text(&mut bobs).await;
        assert_eq!(pushed["envelope"]["id"], id.to_string());
    }
    one.stop().await.unwrap();
    two.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_whose_database_is_gone_says_so_and_fails_fast_then_recovers() {
    let Some(db) = pg::fresh_database().await else { return };
    let name = db.split("dbname=").nth(1).unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let relay = node(&db, dir.path()).await;
    let http = reqwest::Client::new();
    RelayApi::new(&http, &relay.url(""))
        .register(identity("alice"))
        .await
        .unwrap();
    let health = || async { http.get(relay.url(magpie_api::paths::HEALTH)).send().await.unwrap() };
    assert_eq!(health().await.status(), 200);

    let admin_url = db.replace(&format!("dbname={name}"), "dbname=postgres");
    let (admin, connection) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let cut = format!(
        "ALTER DATABASE {name} ALLOW_CONNECTIONS false;
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}';"
    );
    admin.batch_execute(&cut).await.unwrap();

    let answer = health().await;
    assert_eq!(answer.status(), 503);
    let body: magpie_api::Health = answer.json().await.unwrap();
    assert_eq!(body.status, "storage_unavailable");
    let asked = std::time::Instant::now();
    let refused = http
        .post(relay.url(magpie_api::paths::LOGIN_CHALLENGE))
        .json(&challenge_request(identity("alice")))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    let error: magpie_api::ApiError = refused.json().await.unwrap();
    assert_eq!(error.code, magpie_api::ErrorCode::StorageUnavailable);
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(6),
        "{:?}",
        asked.elapsed()
    );

    admin
        .batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .await
        .unwrap();
    let mut recovered = false;
    for _ in 0..50 {
        if health().await.status() == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(recovered, "healthy again once the database answers");
    relay.stop().await.unwrap();
}

#[tokio::test]
async fn a_relay_whose_own_ca_differs_from_the_databases_refuses_to_start() {
    let Some(db) = pg::fresh_database().await else { return };
    let first = tempfile::tempdir().unwrap();
    let shared = node(&db, first.path()).await;
    // A relay that has run alone has its own CA, which its users pinned: it must not silently serve another.
    let other = tempfile::tempdir().unwrap();
    magpie_relay::ca::load_or_create(other.path()).unwrap();
    let mut config = Config::with_data_dir(other.path());
    config.database = Some(db.clone());
    let refused = server::open(config).await.unwrap_err();
    assert!(matches!(refused, StartError::Ca(_)), "{refused}");
    assert!(
        refused.to_string().contains(&shared.state.ca.fingerprint_hex()),
        "{refused}"
    );
    shared.stop().await.unwrap();
}

/// Relays on one database answer a client alike: one started with another value of a setting clients see is
/// refused while another relay runs, and once it is alone its values become everyone's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_on_one_database_share_the_settings_clients_see() {
    let Some(db) = pg::fresh_database().await else { return };
    let (first_dir, second_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = node(&db, first_dir.path()).await;
    let smaller = |dir: &std::path::Path| {
        let mut config = Config::with_data_dir(dir);
        config.database = Some(db.clone());
        config.max_envelope_bytes = 1024;
        config
    };
    let refused = server::open(smaller(second_dir.path())).await.unwrap_err();
    assert!(matches!(refused, StartError::Settings(_)), "{refused}");
    let said = refused.to_string();
    assert!(
        said.contains("--max-envelope-bytes is 1024 here and 262144 on the others"),
        "{said}"
    );
    assert_eq!(refused.exit_code(), 78);

    first.stop().await.unwrap();
    // Alone (once the stopped relay's connections are gone), its values become the shared ones...
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let second = loop {
        match server::open(smaller(second_dir.path())).await {
            Ok(state) => break RunningRelay::start(state).await.unwrap(),
            Err(StartError::Settings(_)) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    // ...and a relay with the old ones is refused in turn.
    let refused = server::open(Config {
        database: Some(db.clone()),
        ..Config::with_data_dir(first_dir.path())
    })
    .await
    .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("--max-envelope-bytes is 262144 here and 1024"),
        "{refused}"
    );
    second.stop().await.unwrap();
}

/// Every shared setting is named by its real flag.
#[test]
fn shared_settings_are_named_by_their_flags() {
    use clap::CommandFactory as _;
    let flags: Vec<String> = Config::command()
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_owned))
        .collect();
    for flag in Config::with_data_dir("/x").shared_settings().keys() {
        assert!(flags.iter().any(|f| f == flag), "--{flag} is not a flag");
    }
}

//! One story, run against every backend through the async `Backend` the handlers use: what any backend (memory,
//! sled, the mailbox log, a later PostgreSQL) must do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use magpie_proto::EnvelopeKind;
use magpie_relay::metrics::Metrics;
use magpie_relay::store::{
    Backend, ChallengeRecord, Embedded, Inserted, LogStore, MailboxQuota, MemoryStore, NewEnvelope, SledStore, Store,
    SyncMode, TokenRecord, UserRecord, DEDUP_RETENTION_SECS,
};
use uuid::Uuid;

#[cfg(feature = "postgres")]
use magpie_tests::pg;

fn envelope(id: Uuid, from: &str, to: &str, body: &str) -> NewEnvelope {
    NewEnvelope {
        id,
        from: from.into(),
        to: to.into(),
        kind: EnvelopeKind::Message,
        body_b64: body.into(),
        received_at: 1_000,
    }
}

async fn story(store: &dyn Backend) {
    // Users: first come, first served.
    let alice = UserRecord {
        username: "alice".into(),
        cert_pem: "PEM-A".into(),
        created_at: 1,
    };
    assert!(store.add_user(&alice).await.unwrap());
    let squatter = UserRecord {
        cert_pem: "PEM-X".into(),
        ..alice.clone()
    };
    assert!(!store.add_user(&squatter).await.unwrap());
    assert_eq!(store.user("alice").await.unwrap(), Some(alice));
    assert_eq!(store.user("bob").await.unwrap(), None);
    assert!(store.has_user("alice").await.unwrap());
    assert!(!store.has_user("bob").await.unwrap());

    // Challenges are single use.
    let challenge = ChallengeRecord {
        username: "alice".into(),
        expires_at: 100,
    };
    store.put_challenge(b"nonce-1", &challenge).await.unwrap();
    assert_eq!(store.take_challenge(b"nonce-1").await.unwrap(), Some(challenge));
    assert_eq!(store.take_challenge(b"nonce-1").await.unwrap(), None);

    // Tokens by hash.
    let token = TokenRecord {
        username: "alice".into(),
        expires_at: 100,
    };
    store.put_token(&[7; 32], &token).await.unwrap();
    assert_eq!(store.token(&[7; 32]).await.unwrap(), Some(token));
    assert_eq!(store.token(&[8; 32]).await.unwrap(), None);

    // Mailboxes: idempotent insert, oldest first, per recipient.
    let ids: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    let mut seqs = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        match store
            .insert_envelope(envelope(*id, "alice", "bob", &format!("b{i}")))
            .await
            .unwrap()
        {
            Inserted::Stored(e) => seqs.push(e.seq),
            other => panic!("expected Stored, got {other:?}"),
        }
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "sequence increases: {seqs:?}");
    let retry = store
        .insert_envelope(envelope(ids[0], "alice", "bob", "b0"))
        .await
        .unwrap();
    assert_eq!(retry, Inserted::Duplicate { seq: seqs[0] });
    let hijack = store
        .insert_envelope(envelope(ids[1], "mallory", "bob", "evil"))
        .await
        .unwrap();
    assert_eq!(hijack, Inserted::IdTaken);
    let other = Uuid::new_v4();
    assert!(matches!(
        store
            .insert_envelope(envelope(other, "bob", "alice", "hi"))
            .await
            .unwrap(),
        Inserted::Stored(_)
    ));

    let all = store.fetch("bob", 0, 100).await.unwrap();
    assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), ids);
    assert_eq!(all[2].body_b64, "b2");
    assert_eq!(all[2].from, "alice");
    let page = store.fetch("bob", seqs[1], 2).await.unwrap();
    assert_eq!(page.iter().map(|e| e.id).collect::<Vec<_>>(), ids[2..4]);
    assert_eq!(store.fetch("alice", 0, 100).await.unwrap().len(), 1);
    assert!(store.fetch("carol", 0, 100).await.unwrap().is_empty());
    // A name that is a prefix of another does not see its mail.
    assert!(store.fetch("bo", 0, 100).await.unwrap().is_empty());

    // Ack: only the recipient's own envelopes, once.
    assert_eq!(store.ack("alice", &ids[..2], 2_000).await.unwrap(), 0);
    assert_eq!(store.ack("bob", &ids[..2], 2_000).await.unwrap(), 2);
    assert_eq!(store.ack("bob", &ids[..2], 2_000).await.unwrap(), 0);
    assert_eq!(store.fetch("bob", 0, 100).await.unwrap().len(), 3);
    // An acked id is still known: a late retry is not delivered again.
    assert!(matches!(
        store
            .insert_envelope(envelope(ids[0], "alice", "bob", "b0"))
            .await
            .unwrap(),
        Inserted::Duplicate { .. }
    ));
    assert_eq!(store.fetch("bob", 0, 100).await.unwrap().len(), 3);

    // Purge: expired challenges and tokens, and ids acked long ago.
    store
        .put_challenge(
            b"old",
            &ChallengeRecord {
                username: "alice".into(),
                expires_at: 50,
            },
        )
        .await
        .unwrap();
    store
        .put_token(
            &[9; 32],
            &TokenRecord {
                username: "alice".into(),
                expires_at: 50,
            },
        )
        .await
        .unwrap();
    store.purge_expired(60).await.unwrap();
    assert_eq!(store.take_challenge(b"old").await.unwrap(), None);
    assert_eq!(store.token(&[9; 32]).await.unwrap(), None);
    assert!(store.token(&[7; 32]).await.unwrap().is_some());
    store.purge_expired(2_000 + DEDUP_RETENTION_SECS + 1).await.unwrap();
    assert!(matches!(
        store
            .insert_envelope(envelope(ids[0], "alice", "bob", "again"))
            .await
            .unwrap(),
        Inserted::Stored(_)
    ));
    // Pending envelopes are never purged.
    assert_eq!(store.fetch("bob", 0, 100).await.unwrap().len(), 4);
    quotas(store).await;
    expiry(store).await;
    page_budget(store).await;
    store.durable().await.unwrap();
}

/// A mailbox over its quota takes nothing new, a retry of what it holds is still a duplicate, and a read makes
/// room; the count and the bytes each bound it.
async fn quotas(store: &dyn Backend) {
    let two = MailboxQuota {
        envelopes: 2,
        bytes: u64::MAX,
    };
    let first = envelope(Uuid::new_v4(), "alice", "carol", "one");
    assert!(matches!(
        store.insert_envelope_within(first.clone(), two).await.unwrap(),
        Inserted::Stored(_)
    ));
    let second = envelope(Uuid::new_v4(), "bob", "carol", "two");
    assert!(matches!(
        store.insert_envelope_within(second, two).await.unwrap(),
        Inserted::Stored(_)
    ));
    let third = envelope(Uuid::new_v4(), "alice", "carol", "three");
    assert_eq!(
        store.insert_envelope_within(third.clone(), two).await.unwrap(),
        Inserted::MailboxFull
    );
    assert!(matches!(
        store.insert_envelope_within(first.clone(), two).await.unwrap(),
        Inserted::Duplicate { .. }
    ));
    assert_eq!(
        store.fetch("carol", 0, 10).await.unwrap().len(),
        2,
        "nothing was written"
    );
    assert_eq!(store.ack("carol", &[first.id], 5).await.unwrap(), 1);
    assert!(matches!(
        store.insert_envelope_within(third, two).await.unwrap(),
        Inserted::Stored(_)
    ));

    // By bytes: a small quota takes one short body, not a long one, and the long one alone fits a larger quota.
    let small = MailboxQuota {
        envelopes: usize::MAX,
        bytes: 1_000,
    };
    let short = envelope(Uuid::new_v4(), "alice", "dave", "short");
    assert!(matches!(
        store.insert_envelope_within(short, small).await.unwrap(),
        Inserted::Stored(_)
    ));
    let long = envelope(Uuid::new_v4(), "alice", "dave", &"x".repeat(2_000));
    assert_eq!(
        store.insert_envelope_within(long.clone(), small).await.unwrap(),
        Inserted::MailboxFull
    );
    let larger = MailboxQuota {
        envelopes: usize::MAX,
        bytes: 10_000,
    };
    assert!(matches!(
        store.insert_envelope_within(long, larger).await.unwrap(),
        Inserted::Stored(_)
    ));
}

fn received(at: u64, from: &str, to: &str) -> NewEnvelope {
    NewEnvelope {
        received_at: at,
        ..envelope(Uuid::new_v4(), from, to, "old")
    }
}

/// Envelopes unread past the expiry are deleted as if acknowledged (over more than one page of them), newer ones
/// and other mailboxes wait on, and an expired id is still known: its retry is a duplicate, not stored again.
async fn expiry(store: &dyn Backend) {
    let old: Vec<NewEnvelope> = (0..300).map(|i| received(100 + i, "alice", "erin")).collect();
    for e in &old {
        assert!(matches!(
            store.insert_envelope(e.clone()).await.unwrap(),
            Inserted::Stored(_)
        ));
    }
    let fresh = received(900, "bob", "erin");
    store.insert_envelope(fresh.clone()).await.unwrap();
    store.insert_envelope(received(200, "bob", "frank")).await.unwrap();
    let waiting_elsewhere = store.fetch("carol", 0, 100).await.unwrap().len();
    assert!(store.mailboxes().await.unwrap().contains(&"frank".to_owned()));

    assert_eq!(store.expire_waiting(500, 2_000).await.unwrap(), 301);
    let erin: Vec<Uuid> = store
        .fetch("erin", 0, 1_000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(erin, [fresh.id]);
    assert!(!store.mailboxes().await.unwrap().contains(&"frank".to_owned()));
    assert_eq!(store.fetch("carol", 0, 100).await.unwrap().len(), waiting_elsewhere);
    assert!(matches!(
        store.insert_envelope(old[7].clone()).await.unwrap(),
        Inserted::Duplicate { .. }
    ));
    assert_eq!(store.expire_waiting(500, 2_000).await.unwrap(), 0, "nothing twice");
    assert_eq!(store.ack("erin", &[old[0].id], 2_001).await.unwrap(), 0, "already gone");
}

/// A page stops before its bodies pass the budget, but holds at least one envelope however large.
async fn page_budget(store: &dyn Backend) {
    for _ in 0..3 {
        let e = envelope(Uuid::new_v4(), "alice", "gina", &"k".repeat(1_000));
        assert!(matches!(store.insert_envelope(e).await.unwrap(), Inserted::Stored(_)));
    }
    assert_eq!(store.fetch_within("gina", 0, 10, 2_500).await.unwrap().len(), 2);
    assert_eq!(store.fetch_within("gina", 0, 10, 10).await.unwrap().len(), 1);
    assert_eq!(store.fetch_within("gina", 0, 10, usize::MAX).await.unwrap().len(), 3);
    assert_eq!(store.fetch_within("gina", 0, 2, usize::MAX).await.unwrap().len(), 2);
}

/// `store` as the relay's handlers see it.
fn embedded(store: impl Store) -> Embedded {
    Embedded::new(Arc::new(store), Arc::new(Metrics::default()), Duration::ZERO).unwrap()
}

#[tokio::test]
async fn story_memory() {
    story(&embedded(MemoryStore::new())).await;
}

#[tokio::test]
async fn story_sled() {
    let dir = tempfile::tempdir().unwrap();
    story(&embedded(SledStore::open(dir.path(), SyncMode::Flush).unwrap())).await;
}

#[tokio::test]
async fn story_sled_fsync() {
    let dir = tempfile::tempdir().unwrap();
    story(&embedded(SledStore::open(dir.path(), SyncMode::Fsync).unwrap())).await;
}

#[tokio::test]
async fn story_log() {
    let dir = tempfile::tempdir().unwrap();
    story(&embedded(LogStore::open(dir.path(), SyncMode::Flush).unwrap())).await;
}

#[tokio::test]
async fn story_log_with_tiny_segments_retired_as_it_goes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LogStore::open_with(dir.path(), SyncMode::Fsync, 1 << 20, 200).unwrap());
    let backend = Embedded::new(store.clone(), Arc::new(Metrics::default()), Duration::ZERO).unwrap();
    story(&backend).await;
    store.retire_now().unwrap();
    assert!(store.segments().unwrap().len() <= 3);
}

#[tokio::test]
async fn sled_keeps_everything_across_reopen_and_sequence_stays_monotonic() {
    keeps_everything_across_reopen(|dir| embedded(SledStore::open(dir, SyncMode::Flush).unwrap())).await;
}

#[tokio::test]
async fn log_keeps_everything_across_reopen_and_sequence_stays_monotonic() {
    keeps_everything_across_reopen(|dir| embedded(LogStore::open(dir, SyncMode::Flush).unwrap())).await;
}

async fn keeps_everything_across_reopen(open: impl Fn(&std::path::Path) -> Embedded) {
    let dir = tempfile::tempdir().unwrap();
    let id = Uuid::new_v4();
    let first_seq = {
        let store = open(dir.path());
        let user = UserRecord {
            username: "bob".into(),
            cert_pem: "PEM".into(),
            created_at: 1,
        };
        assert!(store.add_user(&user).await.unwrap());
        let Inserted::Stored(e) = store.insert_envelope(envelope(id, "alice", "bob", "x")).await.unwrap() else {
            panic!("not stored")
        };
        store.durable().await.unwrap();
        e.seq
    };
    // Expired before the reopen: stays expired after it.
    let expired = received(10, "alice", "dan");
    {
        let store = open(dir.path());
        store.insert_envelope(expired.clone()).await.unwrap();
        assert_eq!(store.expire_waiting(500, 600).await.unwrap(), 1);
        store.durable().await.unwrap();
    }
    let store = open(dir.path());
    assert!(store.fetch("dan", 0, 10).await.unwrap().is_empty());
    assert!(store.user("bob").await.unwrap().is_some());
    assert_eq!(store.fetch("bob", 0, 10).await.unwrap()[0].id, id);
    assert!(matches!(
        store.insert_envelope(envelope(id, "alice", "bob", "x")).await.unwrap(),
        Inserted::Duplicate { .. }
    ));
    let Inserted::Stored(next) = store
        .insert_envelope(envelope(Uuid::new_v4(), "alice", "bob", "y"))
        .await
        .unwrap()
    else {
        panic!("not stored")
    };
    assert!(next.seq > first_seq);
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn story_postgres() {
    let Some(url) = pg::fresh_database().await else { return };
    story(
        &magpie_relay::store::PgStore::connect(&url, 4, Default::default())
            .await
            .unwrap(),
    )
    .await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_keeps_everything_across_reconnects_and_sequence_stays_monotonic() {
    let Some(url) = pg::fresh_database().await else { return };
    let first = magpie_relay::store::PgStore::connect(&url, 2, Default::default())
        .await
        .unwrap();
    let id = Uuid::new_v4();
    let Inserted::Stored(e) = first.insert_envelope(envelope(id, "alice", "bob", "x")).await.unwrap() else {
        panic!("not stored")
    };
    drop(first);
    // A second node (or a restart) finds the schema in place and the envelope, and draws later seqs.
    let second = magpie_relay::store::PgStore::connect(&url, 2, Default::default())
        .await
        .unwrap();
    assert_eq!(second.fetch("bob", 0, 10).await.unwrap()[0].id, id);
    let Inserted::Stored(next) = second
        .insert_envelope(envelope(Uuid::new_v4(), "alice", "bob", "y"))
        .await
        .unwrap()
    else {
        panic!("not stored")
    };
    assert!(next.seq > e.seq);
}

/// Two nodes on one database: of racing registrations of one name exactly one wins, and a reader paging with
/// `after=` while writers on both nodes race sees every envelope, in seq order, none skipped by a late commit.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_nodes_race_for_names_and_readers_never_skip_a_late_commit() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    let Some(url) = pg::fresh_database().await else { return };
    let nodes = [
        Arc::new(
            magpie_relay::store::PgStore::connect(&url, 8, Default::default())
                .await
                .unwrap(),
        ),
        Arc::new(
            magpie_relay::store::PgStore::connect(&url, 8, Default::default())
                .await
                .unwrap(),
        ),
    ];
    let registrations = (0..16).map(|i| {
        let node = Arc::clone(&nodes[i % 2]);
        tokio::spawn(async move {
            let user = UserRecord {
                username: "carol".into(),
                cert_pem: format!("PEM-{i}"),
                created_at: 1,
            };
            node.add_user(&user).await.unwrap()
        })
    });
    let mut won = 0;
    for r in registrations.collect::<Vec<_>>() {
        won += usize::from(r.await.unwrap());
    }
    assert_eq!(won, 1, "exactly one registration of a name wins");

    let done = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let node = Arc::clone(&nodes[w % 2]);
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..100 {
                    let e = envelope(Uuid::new_v4(), &format!("w{w}"), "bob", &format!("{w}-{i}"));
                    ids.push(e.id);
                    assert!(matches!(node.insert_envelope(e).await.unwrap(), Inserted::Stored(_)));
                }
                ids
            })
        })
        .collect();
    let reader = {
        let node = Arc::clone(&nodes[0]);
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let (mut cursor, mut seen) = (0, Vec::new());
            loop {
                let finished = done.load(SeqCst);
                let page = node.fetch("bob", cursor, 1000).await.unwrap();
                for e in &page {
                    assert!(e.seq > cursor);
                    cursor = e.seq;
                    seen.push(e.id);
                }
                if finished && page.is_empty() {
                    return seen;
                }
            }
        })
    };
    let mut written = Vec::new();
    for w in writers {
        written.extend(w.await.unwrap());
    }
    done.store(true, SeqCst);
    let mut seen = reader.await.unwrap();
    assert_eq!(seen.len(), written.len(), "the reader skipped none");
    seen.sort();
    written.sort();
    assert_eq!(seen, written);
}

/// Inserts that arrive together are stored in one group: a quota still holds envelope by envelope, and an id sent
/// twice in the group is stored once, the second copy a duplicate with the first's seq.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_groups_keep_quotas_and_duplicates_within_a_group() {
    let Some(url) = pg::fresh_database().await else { return };
    let store = Arc::new(
        magpie_relay::store::PgStore::connect(&url, 8, Default::default())
            .await
            .unwrap(),
    );
    let three = MailboxQuota {
        envelopes: 3,
        bytes: u64::MAX,
    };
    let twice = envelope(Uuid::new_v4(), "alice", "hank", "same");
    let mut racing = vec![twice.clone(), twice];
    racing.extend((0..5).map(|i| envelope(Uuid::new_v4(), "bob", "hank", &format!("{i}"))));
    let answers = futures_util::future::join_all(racing.into_iter().map(|e| {
        let store = Arc::clone(&store);
        async move { store.insert_envelope_within(e, three).await.unwrap() }
    }))
    .await;
    let stored: Vec<u64> = answers
        .iter()
        .filter_map(|a| match a {
            Inserted::Stored(e) => Some(e.seq),
            _ => None,
        })
        .collect();
    let duplicates: Vec<u64> = answers
        .iter()
        .filter_map(|a| match a {
            Inserted::Duplicate { seq } => Some(*seq),
            _ => None,
        })
        .collect();
    let full = answers.iter().filter(|a| **a == Inserted::MailboxFull).count();
    assert_eq!((stored.len(), full), (3, 3 + 1 - duplicates.len()), "{answers:?}");
    assert_eq!(duplicates.len(), 1, "{answers:?}");
    assert!(stored.contains(&duplicates[0]), "the copy names the first's seq");
    assert_eq!(store.fetch("hank", 0, 10).await.unwrap().len(), 3);
}

/// What a relay pushes for a batch of other relays' announcements: the envelopes in the order announced, across
/// recipients, less one acknowledged meanwhile and one never stored.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_pushes_announced_envelopes_in_announcement_order() {
    let Some(url) = pg::fresh_database().await else { return };
    let store = magpie_relay::store::PgStore::connect(&url, 2, Default::default())
        .await
        .unwrap();
    let mut announced = Vec::new();
    let mut ids = Vec::new();
    for (to, body) in [("bob", "b1"), ("carol", "c1"), ("bob", "b2"), ("carol", "c2")] {
        let Inserted::Stored(e) = store
            .insert_envelope(envelope(Uuid::new_v4(), "alice", to, body))
            .await
            .unwrap()
        else {
            panic!("not stored")
        };
        announced.push((to.to_owned(), e.seq));
        ids.push(e.id);
    }
    store.ack("carol", &[ids[1]], 2_000).await.unwrap();
    // Announced out of recipient order, with a seq nobody stored.
    let order = [
        announced[3].clone(),
        announced[0].clone(),
        ("bob".to_owned(), 999),
        announced[1].clone(),
        announced[2].clone(),
    ];
    let bodies = |envelopes: Vec<magpie_relay::store::StoredEnvelope>| {
        envelopes.into_iter().map(|e| e.body_b64).collect::<Vec<String>>()
    };
    // Another relay holds none of them: it reads them, less the acknowledged one.
    let other = magpie_relay::store::PgStore::connect(&url, 2, Default::default())
        .await
        .unwrap();
    assert_eq!(
        bodies(other.to_push(&order, |_| true).await.unwrap()),
        ["c2", "b1", "b2"]
    );
    // The relay that stored them pushes those it held, only to recipients connected to it, and lets go of all.
    let held = store.to_push(&order, |to| to == "bob").await.unwrap();
    assert_eq!(bodies(held), ["b1", "b2"]);
    assert_eq!(
        bodies(store.to_push(&order, |_| true).await.unwrap()),
        ["c2", "b1", "b2"]
    );
}

//! One story, run against every `Store` backend: what any backend (sled, memory, a later PostgreSQL)
//! must do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use magpie_proto::EnvelopeKind;
use magpie_relay::store::{
    ChallengeRecord, Inserted, LogStore, MailboxQuota, MemoryStore, NewEnvelope, SledStore, Store, SyncMode,
    TokenRecord, UserRecord, DEDUP_RETENTION_SECS,
};
use uuid::Uuid;

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

fn story(store: &dyn Store) {
    // Users: first come, first served.
    let alice = UserRecord {
        username: "alice".into(),
        cert_pem: "PEM-A".into(),
        created_at: 1,
    };
    assert!(store.add_user(&alice).unwrap());
    let squatter = UserRecord {
        cert_pem: "PEM-X".into(),
        ..alice.clone()
    };
    assert!(!store.add_user(&squatter).unwrap());
    assert_eq!(store.user("alice").unwrap(), Some(alice));
    assert_eq!(store.user("bob").unwrap(), None);
    assert!(store.has_user("alice").unwrap());
    assert!(!store.has_user("bob").unwrap());

    // Challenges are single use.
    let challenge = ChallengeRecord {
        username: "alice".into(),
        expires_at: 100,
    };
    store.put_challenge(b"nonce-1", &challenge).unwrap();
    assert_eq!(store.take_challenge(b"nonce-1").unwrap(), Some(challenge));
    assert_eq!(store.take_challenge(b"nonce-1").unwrap(), None);

    // Tokens by hash.
    let token = TokenRecord {
        username: "alice".into(),
        expires_at: 100,
    };
    store.put_token(&[7; 32], &token).unwrap();
    assert_eq!(store.token(&[7; 32]).unwrap(), Some(token));
    assert_eq!(store.token(&[8; 32]).unwrap(), None);

    // Mailboxes: idempotent insert, oldest first, per recipient.
    let ids: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    let mut seqs = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        match store
            .insert_envelope(envelope(*id, "alice", "bob", &format!("b{i}")))
            .unwrap()
        {
            Inserted::Stored(e) => seqs.push(e.seq),
            other => panic!("expected Stored, got {other:?}"),
        }
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "sequence increases: {seqs:?}");
    let retry = store.insert_envelope(envelope(ids[0], "alice", "bob", "b0")).unwrap();
    assert_eq!(retry, Inserted::Duplicate { seq: seqs[0] });
    let hijack = store
        .insert_envelope(envelope(ids[1], "mallory", "bob", "evil"))
        .unwrap();
    assert_eq!(hijack, Inserted::IdTaken);
    let other = Uuid::new_v4();
    assert!(matches!(
        store.insert_envelope(envelope(other, "bob", "alice", "hi")).unwrap(),
        Inserted::Stored(_)
    ));

    let all = store.fetch("bob", 0, 100).unwrap();
    assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), ids);
    assert_eq!(all[2].body_b64, "b2");
    assert_eq!(all[2].from, "alice");
    let page = store.fetch("bob", seqs[1], 2).unwrap();
    assert_eq!(page.iter().map(|e| e.id).collect::<Vec<_>>(), ids[2..4]);
    assert_eq!(store.fetch("alice", 0, 100).unwrap().len(), 1);
    assert!(store.fetch("carol", 0, 100).unwrap().is_empty());
    // A name that is a prefix of another does not see its mail.
    assert!(store.fetch("bo", 0, 100).unwrap().is_empty());

    // Ack: only the recipient's own envelopes, once.
    assert_eq!(store.ack("alice", &ids[..2], 2_000).unwrap(), 0);
    assert_eq!(store.ack("bob", &ids[..2], 2_000).unwrap(), 2);
    assert_eq!(store.ack("bob", &ids[..2], 2_000).unwrap(), 0);
    assert_eq!(store.fetch("bob", 0, 100).unwrap().len(), 3);
    // An acked id is still known: a late retry is not delivered again.
    assert!(matches!(
        store.insert_envelope(envelope(ids[0], "alice", "bob", "b0")).unwrap(),
        Inserted::Duplicate { .. }
    ));
    assert_eq!(store.fetch("bob", 0, 100).unwrap().len(), 3);

    // Purge: expired challenges and tokens, and ids acked long ago.
    store
        .put_challenge(
            b"old",
            &ChallengeRecord {
                username: "alice".into(),
                expires_at: 50,
            },
        )
        .unwrap();
    store
        .put_token(
            &[9; 32],
            &TokenRecord {
                username: "alice".into(),
                expires_at: 50,
            },
        )
        .unwrap();
    store.purge_expired(60).unwrap();
    assert_eq!(store.take_challenge(b"old").unwrap(), None);
    assert_eq!(store.token(&[9; 32]).unwrap(), None);
    assert!(store.token(&[7; 32]).unwrap().is_some());
    store.purge_expired(2_000 + DEDUP_RETENTION_SECS + 1).unwrap();
    assert!(matches!(
        store
            .insert_envelope(envelope(ids[0], "alice", "bob", "again"))
            .unwrap(),
        Inserted::Stored(_)
    ));
    // Pending envelopes are never purged.
    assert_eq!(store.fetch("bob", 0, 100).unwrap().len(), 4);
    quotas(store);
    expiry(store);
    page_budget(store);
    store.flush().unwrap();
}

/// A mailbox over its quota takes nothing new, a retry of what it holds is still a duplicate, and a read makes
/// room; the count and the bytes each bound it.
fn quotas(store: &dyn Store) {
    let two = MailboxQuota {
        envelopes: 2,
        bytes: u64::MAX,
    };
    let first = envelope(Uuid::new_v4(), "alice", "carol", "one");
    assert!(matches!(
        store.insert_envelope_within(first.clone(), two).unwrap(),
        Inserted::Stored(_)
    ));
    let second = envelope(Uuid::new_v4(), "bob", "carol", "two");
    assert!(matches!(
        store.insert_envelope_within(second, two).unwrap(),
        Inserted::Stored(_)
    ));
    let third = envelope(Uuid::new_v4(), "alice", "carol", "three");
    assert_eq!(
        store.insert_envelope_within(third.clone(), two).unwrap(),
        Inserted::MailboxFull
    );
    assert!(matches!(
        store.insert_envelope_within(first.clone(), two).unwrap(),
        Inserted::Duplicate { .. }
    ));
    assert_eq!(store.fetch("carol", 0, 10).unwrap().len(), 2, "nothing was written");
    assert_eq!(store.ack("carol", &[first.id], 5).unwrap(), 1);
    assert!(matches!(
        store.insert_envelope_within(third, two).unwrap(),
        Inserted::Stored(_)
    ));

    // By bytes: a small quota takes one short body, not a long one, and the long one alone fits a larger quota.
    let small = MailboxQuota {
        envelopes: usize::MAX,
        bytes: 1_000,
    };
    let short = envelope(Uuid::new_v4(), "alice", "dave", "short");
    assert!(matches!(
        store.insert_envelope_within(short, small).unwrap(),
        Inserted::Stored(_)
    ));
    let long = envelope(Uuid::new_v4(), "alice", "dave", &"x".repeat(2_000));
    assert_eq!(
        store.insert_envelope_within(long.clone(), small).unwrap(),
        Inserted::MailboxFull
    );
    let larger = MailboxQuota {
        envelopes: usize::MAX,
        bytes: 10_000,
    };
    assert!(matches!(
        store.insert_envelope_within(long, larger).unwrap(),
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
fn expiry(store: &dyn Store) {
    let old: Vec<NewEnvelope> = (0..300).map(|i| received(100 + i, "alice", "erin")).collect();
    for e in &old {
        assert!(matches!(store.insert_envelope(e.clone()).unwrap(), Inserted::Stored(_)));
    }
    let fresh = received(900, "bob", "erin");
    store.insert_envelope(fresh.clone()).unwrap();
    store.insert_envelope(received(200, "bob", "frank")).unwrap();
    let waiting_elsewhere = store.fetch("carol", 0, 100).unwrap().len();
    assert!(store.mailboxes().unwrap().contains(&"frank".to_owned()));

    assert_eq!(store.expire_waiting(500, 2_000).unwrap(), 301);
    let erin: Vec<Uuid> = store.fetch("erin", 0, 1_000).unwrap().iter().map(|e| e.id).collect();
    assert_eq!(erin, [fresh.id]);
    assert!(!store.mailboxes().unwrap().contains(&"frank".to_owned()));
    assert_eq!(store.fetch("carol", 0, 100).unwrap().len(), waiting_elsewhere);
    assert!(matches!(
        store.insert_envelope(old[7].clone()).unwrap(),
        Inserted::Duplicate { .. }
    ));
    assert_eq!(store.expire_waiting(500, 2_000).unwrap(), 0, "nothing twice");
    assert_eq!(store.ack("erin", &[old[0].id], 2_001).unwrap(), 0, "already gone");
}

/// A page stops before its bodies pass the budget, but holds at least one envelope however large.
fn page_budget(store: &dyn Store) {
    for _ in 0..3 {
        let e = envelope(Uuid::new_v4(), "alice", "gina", &"k".repeat(1_000));
        assert!(matches!(store.insert_envelope(e).unwrap(), Inserted::Stored(_)));
    }
    assert_eq!(store.fetch_within("gina", 0, 10, 2_500).unwrap().len(), 2);
    assert_eq!(store.fetch_within("gina", 0, 10, 10).unwrap().len(), 1);
    assert_eq!(store.fetch_within("gina", 0, 10, usize::MAX).unwrap().len(), 3);
    assert_eq!(store.fetch_within("gina", 0, 2, usize::MAX).unwrap().len(), 2);
}

#[test]
fn story_memory() {
    story(&MemoryStore::new());
}

#[test]
fn story_sled() {
    let dir = tempfile::tempdir().unwrap();
    story(&SledStore::open(dir.path(), SyncMode::Flush).unwrap());
}

#[test]
fn story_sled_fsync() {
    let dir = tempfile::tempdir().unwrap();
    story(&SledStore::open(dir.path(), SyncMode::Fsync).unwrap());
}

#[test]
fn story_log() {
    let dir = tempfile::tempdir().unwrap();
    story(&LogStore::open(dir.path(), SyncMode::Flush).unwrap());
}

#[test]
fn story_log_with_tiny_segments_retired_as_it_goes() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open_with(dir.path(), SyncMode::Fsync, 1 << 20, 200).unwrap();
    story(&store);
    store.retire_now().unwrap();
    assert!(store.segments().unwrap().len() <= 3);
}

#[test]
fn sled_keeps_everything_across_reopen_and_sequence_stays_monotonic() {
    keeps_everything_across_reopen(|dir| Box::new(SledStore::open(dir, SyncMode::Flush).unwrap()));
}

#[test]
fn log_keeps_everything_across_reopen_and_sequence_stays_monotonic() {
    keeps_everything_across_reopen(|dir| Box::new(LogStore::open(dir, SyncMode::Flush).unwrap()));
}

fn keeps_everything_across_reopen(open: impl Fn(&std::path::Path) -> Box<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let id = Uuid::new_v4();
    let first_seq = {
        let store = open(dir.path());
        let user = UserRecord {
            username: "bob".into(),
            cert_pem: "PEM".into(),
            created_at: 1,
        };
        assert!(store.add_user(&user).unwrap());
        let Inserted::Stored(e) = store.insert_envelope(envelope(id, "alice", "bob", "x")).unwrap() else {
            panic!("not stored")
        };
        store.flush().unwrap();
        e.seq
    };
    // Expired before the reopen: stays expired after it.
    let expired = received(10, "alice", "dan");
    {
        let store = open(dir.path());
        store.insert_envelope(expired.clone()).unwrap();
        assert_eq!(store.expire_waiting(500, 600).unwrap(), 1);
        store.flush().unwrap();
    }
    let store = open(dir.path());
    assert!(store.fetch("dan", 0, 10).unwrap().is_empty());
    assert!(store.user("bob").unwrap().is_some());
    assert_eq!(store.fetch("bob", 0, 10).unwrap()[0].id, id);
    assert!(matches!(
        store.insert_envelope(envelope(id, "alice", "bob", "x")).unwrap(),
        Inserted::Duplicate { .. }
    ));
    let Inserted::Stored(next) = store
        .insert_envelope(envelope(Uuid::new_v4(), "alice", "bob", "y"))
        .unwrap()
    else {
        panic!("not stored")
    };
    assert!(next.seq > first_seq);
}

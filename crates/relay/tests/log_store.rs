//! The mailbox log beyond the shared story: retiring segments, a torn tail, the store's format.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::path::Path;

use magpie_proto::EnvelopeKind;
use magpie_relay::store::{Inserted, LogStore, NewEnvelope, Store, StoreError, SyncMode, STORE_FORMAT};
use uuid::Uuid;

const SEGMENT: u64 = 4096;

fn envelope(id: Uuid, to: &str) -> NewEnvelope {
    NewEnvelope {
        id,
        from: "alice".into(),
        to: to.into(),
        kind: EnvelopeKind::Message,
        body_b64: "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB".into(),
        received_at: 1,
    }
}

fn open(dir: &Path) -> LogStore {
    LogStore::open_with(dir, SyncMode::Flush, 1 << 20, SEGMENT).unwrap()
}

fn send(store: &dyn Store, to: &str) -> Uuid {
    let id = Uuid::new_v4();
    assert!(matches!(
        store.insert_envelope(envelope(id, to)).unwrap(),
        Inserted::Stored(_)
    ));
    id
}

fn waiting(store: &dyn Store, to: &str) -> Vec<Uuid> {
    store
        .fetch(to, 0, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect()
}

fn files_ending(dir: &Path, suffix: &str) -> usize {
    let names = std::fs::read_dir(dir.join("mailbox")).unwrap();
    names
        .filter(|f| f.as_ref().unwrap().file_name().to_str().unwrap().ends_with(suffix))
        .count()
}

#[test]
fn retiring_segments_keeps_what_waits_and_remembers_what_was_acked_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // Carol is away: her mail waits through every retirement. Bob acks each envelope as it comes.
    let mut carols = Vec::new();
    let mut bobs_acked = Vec::new();
    for round in 0..400 {
        if round % 20 == 0 {
            carols.push(send(&store, "carol"));
        }
        let id = send(&store, "bob");
        assert_eq!(store.ack("bob", &[id], 5).unwrap(), 1);
        bobs_acked.push(id);
        store.flush().unwrap();
        store.retire_now().unwrap();
    }
    // 400 envelopes and acks are about 60 segments' worth: only the active one and the newest sealed one stay.
    assert!(store.segments().unwrap().len() <= 2, "{:?}", store.segments().unwrap());
    assert_eq!(files_ending(dir.path(), ".log"), store.segments().unwrap().len());
    // One id run per retirement, merged as they come: a handful, not one per round.
    let runs = files_ending(dir.path(), ".run");
    assert!((1..=8).contains(&runs), "{runs} id runs");
    assert_eq!(waiting(&store, "carol"), carols);
    assert!(waiting(&store, "bob").is_empty());
    // The first of Bob's ids lives on in sled now; a late retry is still a duplicate.
    let retry = store.insert_envelope(envelope(bobs_acked[0], "bob")).unwrap();
    assert!(matches!(retry, Inserted::Duplicate { .. }), "{retry:?}");

    drop(store);
    let store = open(dir.path());
    assert_eq!(waiting(&store, "carol"), carols);
    assert!(waiting(&store, "bob").is_empty(), "an acked envelope came back");
    for id in [bobs_acked[0], bobs_acked[399]] {
        let retry = store.insert_envelope(envelope(id, "bob")).unwrap();
        assert!(matches!(retry, Inserted::Duplicate { .. }), "{retry:?}");
    }
    assert_eq!(store.ack("carol", &carols, 6).unwrap(), carols.len());
}

#[test]
fn a_torn_tail_is_cut_off_and_appending_goes_on_after_the_last_whole_record() {
    let dir = tempfile::tempdir().unwrap();
    let kept: Vec<Uuid> = {
        let store = LogStore::open(dir.path(), SyncMode::Flush).unwrap();
        let ids = (0..5).map(|_| send(&store, "bob")).collect();
        store.flush().unwrap();
        ids
    };
    // What a crash halfway through a write leaves: the start of a record.
    let segment = dir.path().join("mailbox").join(format!("{:020}.log", 1));
    let whole = std::fs::metadata(&segment).unwrap().len();
    let mut tail = std::fs::OpenOptions::new().append(true).open(&segment).unwrap();
    std::io::Write::write_all(&mut tail, &[200, 0, 0, 0, 1, 2, 3, 4, 1, 9, 9]).unwrap();
    drop(tail);

    let later = {
        let store = LogStore::open(dir.path(), SyncMode::Flush).unwrap();
        assert_eq!(std::fs::metadata(&segment).unwrap().len(), whole);
        assert_eq!(waiting(&store, "bob"), kept);
        let later = send(&store, "bob");
        store.flush().unwrap();
        later
    };
    let store = LogStore::open(dir.path(), SyncMode::Flush).unwrap();
    let mut expected = kept;
    expected.push(later);
    assert_eq!(waiting(&store, "bob"), expected);
}

/// The store's sled database, once the store that had it open has let go of its lock (sled releases it from a
/// background thread).
fn raw_sled(dir: &Path) -> sled::Db {
    for _ in 0..50 {
        if let Ok(db) = sled::open(dir) {
            return db;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    sled::open(dir).unwrap()
}

#[test]
fn a_store_in_another_format_is_refused_and_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert("format", &(STORE_FORMAT + 1).to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    let error = LogStore::open_with(dir.path(), SyncMode::Flush, 1 << 20, SEGMENT).unwrap_err();
    assert!(
        matches!(error, StoreError::Format { found, supported: STORE_FORMAT } if found == STORE_FORMAT + 1),
        "{error}"
    );
    let db = raw_sled(dir.path());
    let kept = db.open_tree("meta").unwrap().get("format").unwrap().unwrap();
    assert_eq!(
        kept.as_ref(),
        (STORE_FORMAT + 1).to_be_bytes(),
        "nothing written over it"
    );
}

#[test]
fn a_new_store_says_its_format() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let db = raw_sled(dir.path());
    let format = db.open_tree("meta").unwrap().get("format").unwrap().unwrap();
    assert_eq!(format.as_ref(), STORE_FORMAT.to_be_bytes());
}

#[test]
fn fetches_read_back_envelopes_from_the_buffer_and_from_disk_alike() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let flushed: Vec<Uuid> = (0..100).map(|_| send(&store, "bob")).collect();
    store.flush().unwrap();
    let buffered: Vec<Uuid> = (0..3).map(|_| send(&store, "bob")).collect();
    let all = store.fetch("bob", 0, usize::MAX).unwrap();
    let ids: Vec<Uuid> = all.iter().map(|e| e.id).collect();
    assert_eq!(ids, [flushed, buffered].concat());
    assert!(all.iter().all(|e| e.body_b64 == envelope(e.id, "bob").body_b64));
    let unique: HashSet<u64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(unique.len(), all.len());
    let gauge = |name: &str| store.gauges().into_iter().find(|g| g.name == name).unwrap().value;
    assert_eq!(gauge("magpie_mailbox_waiting_envelopes"), 103);
    assert_eq!(gauge("magpie_mailbox_log_ids"), 103);
}

/// Senders, a reader that acks as it goes, flushes and retirements all at once: nothing lost, nothing passed
/// over by the reader's cursor, nothing acked comes back, before and after a reopen.
#[test]
fn racing_senders_reader_flushes_and_retirements_lose_nothing() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::sync::Arc;
    const SENDERS: usize = 3;
    const EACH: usize = 1_500;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LogStore::open_with(dir.path(), SyncMode::Flush, 1 << 20, 16 * 1024).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..SENDERS)
        .map(|i| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut sent = (Vec::new(), Vec::new());
                for n in 0..EACH {
                    if (n + i) % 5 == 0 {
                        sent.1.push(send(&*store, "carol"));
                    } else {
                        sent.0.push(send(&*store, "bob"));
                    }
                }
                sent
            })
        })
        .collect();
    let flusher = {
        let (store, done) = (store.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(SeqCst) {
                store.flush().unwrap();
                store.retire_now().unwrap();
            }
        })
    };
    let mut bob_got = Vec::new();
    let mut after = 0;
    let mut senders_done = false;
    loop {
        let page = store.fetch("bob", after, 50).unwrap();
        if page.is_empty() && senders_done {
            break;
        }
        senders_done = senders.iter().all(|s| s.is_finished());
        let ids: Vec<Uuid> = page.iter().map(|e| e.id).collect();
        if let Some(last) = page.last() {
            assert!(last.seq > after);
            after = last.seq;
        }
        assert_eq!(store.ack("bob", &ids, 9).unwrap(), ids.len());
        bob_got.extend(ids);
    }
    let mut bob_sent = HashSet::new();
    let mut carol_sent = HashSet::new();
    for s in senders {
        let (bob, carol) = s.join().unwrap();
        bob_sent.extend(bob);
        carol_sent.extend(carol);
    }
    done.store(true, SeqCst);
    flusher.join().unwrap();
    store.flush().unwrap();
    assert_eq!(
        bob_got.len(),
        bob_sent.len(),
        "each of Bob's envelopes read exactly once"
    );
    assert_eq!(bob_got.iter().copied().collect::<HashSet<_>>(), bob_sent);
    let carols = waiting(&*store, "carol");
    assert_eq!(carols.iter().copied().collect::<HashSet<_>>(), carol_sent);

    drop(store);
    let store = LogStore::open_with(dir.path(), SyncMode::Flush, 1 << 20, 16 * 1024).unwrap();
    assert!(waiting(&store, "bob").is_empty(), "an acked envelope came back");
    assert_eq!(waiting(&store, "carol"), carols);
    for id in bob_got.iter().step_by(97) {
        assert!(matches!(
            store.insert_envelope(envelope(*id, "bob")).unwrap(),
            Inserted::Duplicate { .. }
        ));
    }
    // Once Carol has read hers, everything but the newest sealed segment and the active one can go.
    assert_eq!(store.ack("carol", &carols, 10).unwrap(), carols.len());
    let before = store.segments().unwrap();
    while store.segments().unwrap().last() < Some(&(before.last().unwrap() + 2)) {
        let id = send(&store, "bob");
        store.ack("bob", &[id], 10).unwrap();
        store.flush().unwrap();
    }
    store.retire_now().unwrap();
    assert_eq!(store.segments().unwrap().len(), 2, "{:?}", store.segments().unwrap());
}

/// An envelope whose record stays in a segment kept for the mail waiting beside it, acked in a segment that is
/// retired: the ack is carried forward, or a restart would deliver the envelope again.
#[test]
fn an_ack_outlives_the_segment_it_was_written_in_while_its_envelope_record_stays() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let carols: Vec<Uuid> = (0..25).map(|_| send(&store, "carol")).collect();
    store.flush().unwrap();
    let fill = |store: &LogStore| {
        let first = *store.segments().unwrap().last().unwrap();
        while *store.segments().unwrap().last().unwrap() == first {
            let id = send(store, "bob");
            store.ack("bob", &[id], 5).unwrap();
            store.flush().unwrap();
        }
    };
    fill(&store);
    store.ack("carol", &carols[..1], 6).unwrap();
    fill(&store);
    fill(&store);
    store.retire_now().unwrap();
    let segments = store.segments().unwrap();
    assert_eq!(segments[0], 1, "Carol's segment stays: {segments:?}");
    assert!(!segments.contains(&2), "the segment with the ack went: {segments:?}");

    drop(store);
    let store = open(dir.path());
    assert_eq!(waiting(&store, "carol"), carols[1..], "the acked envelope came back");
}

//! Files end to end through a real relay: 50 MiB each way, transfers that resume after an app restart and a relay
//! restart, and blobs a lying relay changed, cut or swapped, which are refused.

use std::path::{Path, PathBuf};

use magpie_core::engine::Event;
use magpie_core::history::{Direction, FileState};
use magpie_core::relay::{RelayClient, TRANSFER_PART};
use magpie_core::{Client, Error};
use magpie_proto::Fingerprint;
use magpie_relay::server::{open_state, RunningRelay};
use magpie_relay::Config;
use tempfile::TempDir;
use uuid::Uuid;

use crate::common::{go_online, handshake, identity, online_pair_at, wait_for, OnlinePair, Person};

const MIB: usize = 1 << 20;

/// Words no file of the test holds twice in a row by chance, repeated through each file: found in a profile only if
/// a file's plaintext is there.
const MARKER: &[u8] = b"magpie-plaintext-marker-3b9c1e";

fn write_file(dir: &Path, name: &str, len: usize, seed: u8) -> PathBuf {
    let mut bytes: Vec<u8> = (0..len).map(|i| ((i * 7 + usize::from(seed)) % 251) as u8).collect();
    for at in (0..len.saturating_sub(MARKER.len())).step_by(MIB) {
        bytes[at..at + MARKER.len()].copy_from_slice(MARKER);
    }
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn holds_marker(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(holds_marker(&path));
        } else if std::fs::read(&path).unwrap().windows(MARKER.len()).any(|w| w == MARKER) {
            found.push(path);
        }
    }
    found
}

/// A relay on its own data directory, which a story may restart on the same address.
struct OwnRelay {
    running: Option<RunningRelay>,
    data: TempDir,
}

impl OwnRelay {
    async fn start() -> Self {
        crate::common::logs();
        let data = tempfile::tempdir().unwrap();
        let state = open_state(Config::with_data_dir(data.path())).unwrap();
        let running = Some(RunningRelay::start(state).await.unwrap());
        Self { running, data }
    }

    fn url(&self) -> String {
        self.running.as_ref().unwrap().url("")
    }

    fn blob(&self, id: Uuid) -> PathBuf {
        self.data.path().join("blobs").join(id.to_string())
    }

    async fn restart(&mut self) {
        let running = self.running.take().unwrap();
        let addr = running.addr;
        running.stop().await.unwrap();
        let state = open_state(Config::with_data_dir(self.data.path())).unwrap();
        self.running = Some(RunningRelay::start_at(state, addr).await.unwrap());
    }

    fn ca_fingerprint(&self) -> Fingerprint {
        Fingerprint::from_bytes(self.running.as_ref().unwrap().state.ca.fingerprint)
    }
}

fn blob_of(client: &Client, id: Uuid) -> Uuid {
    client.file_state(id).unwrap().expect("a file record").blob
}

async fn kept(events: &mut tokio::sync::broadcast::Receiver<Event>, id: Uuid) {
    wait_for(events, |e| match e {
        Event::FileStateChanged { id: got, state, .. } if *got == id => match state {
            FileState::Kept => Some(()),
            FileState::Failed(reason) => panic!("the transfer failed: {reason}"),
            _ => None,
        },
        _ => None,
    })
    .await;
}

/// Waits until the relay took the message of file `id`.
async fn message_sent(events: &mut tokio::sync::broadcast::Receiver<Event>, id: Uuid) {
    use magpie_core::history::Delivery;
    wait_for(events, |e| match e {
        Event::DeliveryChanged { id: got, delivery, .. } if *got == id => {
            matches!(delivery, Delivery::Sent | Delivery::Delivered).then_some(())
        }
        _ => None,
    })
    .await;
}

/// The first progress of file `id` reported: how far the transfer was after its first part.
async fn first_progress(events: &mut tokio::sync::broadcast::Receiver<Event>, id: Uuid) -> u64 {
    wait_for(events, |e| match e {
        Event::FileProgress { id: got, done, .. } if *got == id => Some(*done),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mib_file_goes_each_way_and_no_profile_holds_it_in_the_clear() {
    let relay = OwnRelay::start().await;
    let OnlinePair { alice, bob, .. } = online_pair_at(&relay.url()).await;
    let work = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    for (from, to, seed) in [(&alice, &bob, 1u8), (&bob, &alice, 2u8)] {
        let original = write_file(work.path(), &format!("from-{seed}.bin"), 50 * MIB, seed);
        let mut to_events = to.client.events();
        let mut from_events = from.client.events();
        let sent = from
            .client
            .send_file(to.client.username(), &original, None)
            .await
            .unwrap();
        assert_eq!(sent.file.as_ref().unwrap().size, 50 * MIB as u64);
        assert!(sent.body.is_empty(), "the message's body (with the key) is not shown");
        kept(&mut from_events, sent.id).await;
        // Over 25 MiB: offered, and fetched when the user asks.
        wait_for(&mut to_events, |e| match e {
            Event::MessageReceived { message } if message.id == sent.id => Some(()),
            _ => None,
        })
        .await;
        assert_eq!(
            to.client.file_state(sent.id).unwrap().unwrap().state,
            FileState::Offered
        );
        to.client.download_file(sent.id).unwrap();
        kept(&mut to_events, sent.id).await;
        let saved = work.path().join(format!("saved-{seed}.bin"));
        to.client.save_file(sent.id, &saved).await.unwrap();
        assert!(
            std::fs::read(&saved).unwrap() == std::fs::read(&original).unwrap(),
            "the same bytes arrived"
        );
        // The relay deletes its copy once the recipient has it.
        assert!(!relay.blob(blob_of(&to.client, sent.id)).exists());
        let received = to.client.last_messages(from.client.username(), 1).unwrap();
        assert_eq!(received[0].message.id, sent.id);
        assert_eq!(received[0].message.direction, Direction::Incoming);
    }
    println!(
        "50 MiB each way, sealed, uploaded, downloaded, checked and saved in {:?}",
        started.elapsed()
    );
    assert_eq!(
        holds_marker(work.path()).len(),
        4,
        "the originals and the saved copies hold the marker"
    );
    for person in [&alice, &bob] {
        let found = holds_marker(&person.profile_dir());
        assert!(found.is_empty(), "plaintext in the profile: {found:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_and_a_download_resume_after_a_restart_of_the_app_and_of_the_relay() {
    let mut relay = OwnRelay::start().await;
    let alice = Person::register("alice", &relay.url()).await;
    let bob = Person::register("bob", &relay.url()).await;
    let (alice_online, bob_online) = (go_online(&alice.client), go_online(&bob.client));
    handshake(&alice.client, &bob.client).await;
    alice_online.abort();
    bob_online.abort();
    let _ = (alice_online.await, bob_online.await);
    let work = tempfile::tempdir().unwrap();
    let original = write_file(work.path(), "report.pdf", 20 * MIB, 3);

    // Alice's app sealed the file and had uploaded 8 MiB of it when it stopped.
    let sent = alice
        .client
        .send_file(bob.client.username(), &original, None)
        .await
        .unwrap();
    let blob = blob_of(&alice.client, sent.id);
    let sealed = std::fs::read(alice.profile_dir().join("files").join(sent.id.to_string())).unwrap();
    let earlier_run = RelayClient::new(&relay.url()).unwrap();
    earlier_run
        .login(&identity("alice"), &relay.ca_fingerprint())
        .await
        .unwrap();
    earlier_run
        .upload_part(blob, 0, sealed[..8 * MIB].to_vec())
        .await
        .unwrap();
    // The relay restarts too.
    relay.restart().await;
    let alice = alice.reopen().await;
    let mut alice_events = alice.client.events();
    let _alice_online = go_online(&alice.client);
    let resumed_at = first_progress(&mut alice_events, sent.id).await;
    assert_eq!(
        resumed_at,
        (8 * MIB + TRANSFER_PART) as u64,
        "the upload went on from the relay's 8 MiB"
    );
    kept(&mut alice_events, sent.id).await;
    message_sent(&mut alice_events, sent.id).await;

    // Bob's app got the message and 8 MiB of the blob, then stopped.
    bob.client.sync().await.unwrap();
    assert_eq!(
        bob.client.file_state(sent.id).unwrap().unwrap().state,
        FileState::Downloading
    );
    let bob_files = bob.profile_dir().join("files");
    std::fs::create_dir_all(&bob_files).unwrap();
    let part = bob_files.join(format!("{}.part", sent.id));
    std::fs::write(&part, &sealed[..8 * MIB]).unwrap();
    relay.restart().await;
    let bob = bob.reopen().await;
    let mut bob_events = bob.client.events();
    let finishing = tokio::spawn({
        let client = bob.client.clone();
        async move { client.finish_transfers().await }
    });
    let resumed_at = first_progress(&mut bob_events, sent.id).await;
    assert_eq!(
        resumed_at,
        (8 * MIB + TRANSFER_PART) as u64,
        "the download went on from the profile's 8 MiB"
    );
    finishing.await.unwrap().unwrap();
    let saved = work.path().join("saved.pdf");
    bob.client.save_file(sent.id, &saved).await.unwrap();
    assert!(std::fs::read(&saved).unwrap() == std::fs::read(&original).unwrap());

    // A kept part that no longer checks (changed on disk) is downloaded again from the start.
    let again = alice
        .client
        .send_file(bob.client.username(), &original, None)
        .await
        .unwrap();
    kept(&mut alice_events, again.id).await;
    message_sent(&mut alice_events, again.id).await;
    bob.client.sync().await.unwrap();
    let mut damaged = std::fs::read(alice.profile_dir().join("files").join(again.id.to_string())).unwrap();
    damaged.truncate(6 * MIB);
    damaged[100] ^= 1;
    std::fs::write(bob_files.join(format!("{}.part", again.id)), &damaged).unwrap();
    let finishing = tokio::spawn({
        let client = bob.client.clone();
        async move { client.finish_transfers().await }
    });
    assert_eq!(first_progress(&mut bob_events, again.id).await, TRANSFER_PART as u64);
    finishing.await.unwrap().unwrap();
    assert_eq!(bob.client.file_state(again.id).unwrap().unwrap().state, FileState::Kept);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_a_lying_relay_changed_cut_or_swapped_are_refused_and_nothing_is_saved() {
    let mut relay = OwnRelay::start().await;
    let alice = Person::register("alice", &relay.url()).await;
    let bob = Person::register("bob", &relay.url()).await;
    let (_alice_online, bob_online) = (go_online(&alice.client), go_online(&bob.client));
    handshake(&alice.client, &bob.client).await;
    bob_online.abort();
    let _ = bob_online.await;
    let work = tempfile::tempdir().unwrap();
    let mut alice_events = alice.client.events();
    let mut sent = Vec::new();
    for n in 0..4u8 {
        let file = write_file(work.path(), &format!("photo-{n}.jpg"), 300_000, n);
        let message = alice
            .client
            .send_file(bob.client.username(), &file, None)
            .await
            .unwrap();
        kept(&mut alice_events, message.id).await;
        message_sent(&mut alice_events, message.id).await;
        sent.push((message.id, blob_of(&alice.client, message.id)));
    }
    let [(flipped, flipped_blob), (swapped, swapped_blob), (other, other_blob), (cut, cut_blob)] = sent[..] else {
        unreachable!()
    };
    let mut bytes = std::fs::read(relay.blob(flipped_blob)).unwrap();
    bytes[200_000] ^= 0x40;
    std::fs::write(relay.blob(flipped_blob), bytes).unwrap();
    // Two blobs of the same size trade places.
    let (a, b) = (
        std::fs::read(relay.blob(swapped_blob)).unwrap(),
        std::fs::read(relay.blob(other_blob)).unwrap(),
    );
    std::fs::write(relay.blob(swapped_blob), b).unwrap();
    std::fs::write(relay.blob(other_blob), a).unwrap();
    // One is cut short, and the relay restarted on it.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(relay.blob(cut_blob))
        .unwrap();
    file.set_len(100_000).unwrap();
    relay.restart().await;

    bob.client.sync().await.unwrap();
    bob.client.finish_transfers().await.unwrap();
    for (id, expected) in [
        (flipped, "integrity"),
        (swapped, "integrity"),
        (other, "integrity"),
        (cut, "no longer has it"),
    ] {
        let state = bob.client.file_state(id).unwrap().unwrap().state;
        let FileState::Failed(reason) = &state else {
            panic!("{id}: {state:?}")
        };
        assert!(reason.contains(expected), "{reason}");
        let saved = work.path().join(format!("{id}.jpg"));
        let refused = bob.client.save_file(id, &saved).await.unwrap_err();
        assert!(matches!(refused, Error::NoFile(_)), "{refused}");
        assert!(!saved.exists());
    }
    let kept_files: Vec<_> = std::fs::read_dir(bob.profile_dir().join("files"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(
        kept_files.is_empty(),
        "nothing of a refused file is kept: {kept_files:?}"
    );
    // The texts around them still flow: the chat is not stuck on a bad file.
    alice
        .client
        .send_text(bob.client.username(), "did the photos come?")
        .unwrap();
    alice.client.flush_outbox().await.unwrap();
    bob.client.sync().await.unwrap();
    let last = bob.client.last_messages(alice.client.username(), 1).unwrap();
    assert_eq!(last[0].message.body, "did the photos come?");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_download_keeps_what_arrived_and_a_cancelled_upload_frees_the_relay() {
    let relay = OwnRelay::start().await;
    let alice = Person::register("alice", &relay.url()).await;
    let bob = Person::register("bob", &relay.url()).await;
    let (alice_online, bob_online) = (go_online(&alice.client), go_online(&bob.client));
    handshake(&alice.client, &bob.client).await;
    bob_online.abort();
    let _ = bob_online.await;
    let work = tempfile::tempdir().unwrap();
    let mut alice_events = alice.client.events();
    let original = write_file(work.path(), "talk.mp4", 12 * MIB, 5);
    let sent = alice
        .client
        .send_file(bob.client.username(), &original, None)
        .await
        .unwrap();
    kept(&mut alice_events, sent.id).await;
    message_sent(&mut alice_events, sent.id).await;

    // Bob had 8 MiB of it when he cancelled: the part stays, and the download goes on from it when he asks.
    bob.client.sync().await.unwrap();
    let sealed = std::fs::read(alice.profile_dir().join("files").join(sent.id.to_string())).unwrap();
    let part = bob.profile_dir().join("files").join(format!("{}.part", sent.id));
    std::fs::create_dir_all(part.parent().unwrap()).unwrap();
    std::fs::write(&part, &sealed[..8 * MIB]).unwrap();
    bob.client.cancel_file(sent.id).unwrap();
    bob.client.finish_transfers().await.unwrap();
    assert_eq!(
        bob.client.file_state(sent.id).unwrap().unwrap().state,
        FileState::Failed(magpie_core::engine::CANCELLED.into())
    );
    assert_eq!(
        std::fs::metadata(&part).unwrap().len(),
        8 * MIB as u64,
        "what arrived is kept"
    );
    let mut bob_events = bob.client.events();
    bob.client.download_file(sent.id).unwrap();
    let finishing = tokio::spawn({
        let client = bob.client.clone();
        async move { client.finish_transfers().await }
    });
    assert_eq!(
        first_progress(&mut bob_events, sent.id).await,
        (8 * MIB + TRANSFER_PART) as u64
    );
    finishing.await.unwrap().unwrap();
    assert_eq!(bob.client.file_state(sent.id).unwrap().unwrap().state, FileState::Kept);

    // Alice cancels an upload before it went: the relay's copy goes, the message fails, and it is not sent as a
    // text either (its body holds the file's key).
    alice_online.abort();
    let _ = alice_online.await;
    let other = alice
        .client
        .send_file(bob.client.username(), &original, None)
        .await
        .unwrap();
    let other_blob = blob_of(&alice.client, other.id);
    assert!(relay.blob(other_blob).exists());
    alice.client.cancel_file(other.id).unwrap();
    alice.client.finish_transfers().await.unwrap();
    assert!(!relay.blob(other_blob).exists(), "the relay's copy is gone");
    let stored = alice.client.last_messages(bob.client.username(), 1).unwrap();
    assert_eq!(stored[0].message.delivery, magpie_core::history::Delivery::Failed);
    let refused = alice.client.retry_message(bob.client.username(), other.id).unwrap_err();
    assert!(matches!(refused, Error::NoMessage(_)), "{refused}");
}

/// "Export chat": the chat as text and JSON, and the files kept on this computer in a folder beside them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_exports_to_text_and_json_with_its_files_beside_them() {
    let relay = OwnRelay::start().await;
    let OnlinePair { alice, bob, .. } = online_pair_at(&relay.url()).await;
    let work = tempfile::tempdir().unwrap();
    let original = write_file(work.path(), "minutes.txt", 3000, 9);
    let mut alice_events = alice.client.events();
    bob.client
        .send_text(alice.client.username(), "the minutes\nare attached")
        .unwrap();
    let sent = bob
        .client
        .send_file(alice.client.username(), &original, None)
        .await
        .unwrap();
    kept(&mut alice_events, sent.id).await;

    let out = work.path().join("export").join("chat with bob.txt");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let summary = alice.client.export_chat(bob.client.username(), &out).await.unwrap();
    assert_eq!((summary.messages, summary.files), (2, 1));
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].ends_with("] bob: the minutes"), "{text}");
    assert_eq!(lines[1], "    are attached");
    assert!(
        lines[2].ends_with("] bob: [file minutes.txt, 3000 bytes: chat with bob files/minutes.txt]"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary.json).unwrap()).unwrap();
    assert_eq!(json[0]["body"], "the minutes\nare attached");
    assert_eq!(json[1]["saved_as"], "chat with bob files/minutes.txt");
    assert_eq!(json[1]["file"]["name"], "minutes.txt");
    assert!(
        json[1].get("key").is_none() && json[1]["body"] == "",
        "the file's key stays in Magpie"
    );
    let copied = out.parent().unwrap().join("chat with bob files").join("minutes.txt");
    assert!(std::fs::read(&copied).unwrap() == std::fs::read(&original).unwrap());

    // Exporting again replaces the text and JSON whole and keeps the earlier copy of the file beside the new one.
    let again = alice.client.export_chat(bob.client.username(), &out).await.unwrap();
    assert_eq!(again.files, 1);
    assert!(out
        .parent()
        .unwrap()
        .join("chat with bob files")
        .join("minutes (2).txt")
        .exists());
}

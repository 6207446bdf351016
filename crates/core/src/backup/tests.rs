//! Backups on real sled and real files, with the in-memory credential store and quick scrypt parameters.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use magpie_proto::backup::{BackupHeader, KdfParams, BACKUP_HEADER_LEN};
use magpie_proto::file::FileDescriptor;
use magpie_proto::{FileKey, MessageKind};
use uuid::Uuid;

use super::*;
use crate::history::{Appended, Cursor, Delivery, Direction, FileState, Message};
use crate::keystore::{Keystore, MemoryKeystore};
use magpie_tests::{identity, username};

const PASSPHRASE: &str = "correct horse battery";

/// Quick scrypt, and segments of 16 KiB so a small history makes many.
const SEGMENT: u32 = 16 << 10;

fn quick() -> (KdfParams, u32) {
    let kdf = KdfParams {
        log2_n: 10,
        r: 8,
        p: 1,
        salt: [3; 16],
    };
    (kdf, SEGMENT)
}

fn message(peer: &str, body: &str, direction: Direction, delivery: Delivery) -> Message {
    Message {
        id: Uuid::new_v4(),
        peer: username(peer),
        direction,
        kind: MessageKind::Text,
        body: body.to_owned(),
        sent_at: 1_790_000_000,
        received_at: None,
        delivery,
    }
}

struct Fixture {
    _root: tempfile::TempDir,
    backup: std::path::PathBuf,
    restored_dir: std::path::PathBuf,
    alice: Profile,
}

/// Alice with two chats (bob's with 1,200 messages, a read mark, a re-key, a file and an unsent text), backed up.
fn backed_up() -> Fixture {
    let root = tempfile::tempdir().unwrap();
    let keystore: Arc<dyn Keystore> = Arc::new(MemoryKeystore::default());
    let mut alice = Profile::create_with_identity(&root.path().join("alice"), identity("alice"), keystore).unwrap();
    alice.set_relay_url(Some("https://relay.example".into())).unwrap();
    let history = alice.history();
    history
        .set_registration(&RegistrationRecord {
            relay_url: "https://relay.example".into(),
            ca_pem: "CA PEM".into(),
            certificate_pem: "CERT PEM".into(),
        })
        .unwrap();
    let mut cursors = Vec::new();
    for i in 0..1200 {
        let (direction, delivery) = match i % 2 {
            0 => (Direction::Outgoing, Delivery::Delivered),
            _ => (Direction::Incoming, Delivery::Received),
        };
        let appended = history
            .append_message(&message("bob", &format!("bob {i}"), direction, delivery))
            .unwrap();
        let Appended::New(cursor) = appended else { panic!() };
        cursors.push(cursor.value());
    }
    let rekey_at = history.mark_position().unwrap();
    history
        .append_message(&message(
            "bob",
            "after the re-key",
            Direction::Incoming,
            Delivery::Received,
        ))
        .unwrap();
    let descriptor = FileDescriptor {
        blob: Uuid::new_v4(),
        key: FileKey::generate().unwrap(),
        sha256: [1; 32],
        size: 10,
        name: "notes.txt".into(),
        media_type: "text/plain".into(),
        thumbnail: None,
    };
    history
        .append_message(&Message {
            kind: MessageKind::File,
            ..message(
                "bob",
                &descriptor.to_body().unwrap(),
                Direction::Incoming,
                Delivery::Received,
            )
        })
        .unwrap();
    history
        .append_message(&message("bob", "never sent", Direction::Outgoing, Delivery::Sending))
        .unwrap();
    history
        .append_message(&message("carol", "hi carol", Direction::Outgoing, Delivery::Sent))
        .unwrap();
    for (peer, read) in [("bob", Some(cursors[999])), ("carol", None)] {
        let mut contact = Contact::new(username(peer), identity(peer).fingerprint().unwrap());
        contact.verified = peer == "bob";
        contact.read_up_to = read;
        contact.rekeys = if peer == "bob" { vec![rekey_at] } else { Vec::new() };
        history.put_contact(&contact).unwrap();
    }
    let backup = root.path().join("alice.magpie-backup");
    let never = AtomicBool::new(false);
    let mut steps = Vec::new();
    let summary = write_backup_with(&alice, &backup, PASSPHRASE, quick(), &never, &mut |p| steps.push(p)).unwrap();
    assert_eq!((summary.contacts, summary.messages), (2, 1204));
    assert_eq!(summary.bytes, std::fs::metadata(&backup).unwrap().len());
    assert_eq!(steps.last().map(|p| p.done == p.total), Some(true));
    let restored_dir = root.path().join("restored");
    Fixture {
        _root: root,
        backup,
        restored_dir,
        alice,
    }
}

fn restore_with(fixture: &Fixture, passphrase: &str, keystore: &Arc<MemoryKeystore>) -> Result<Profile> {
    let never = AtomicBool::new(false);
    let keystore: Arc<dyn Keystore> = keystore.clone();
    restore(
        &fixture.backup,
        passphrase,
        &fixture.restored_dir,
        keystore,
        &never,
        &mut |_| {},
    )
}

#[test]
fn a_backup_restores_identity_contacts_and_every_message() {
    let fixture = backed_up();
    let keystore = Arc::new(MemoryKeystore::default());
    let restored = restore_with(&fixture, PASSPHRASE, &keystore).unwrap();
    let (old, new) = (fixture.alice.history(), restored.history());

    assert_eq!(restored.username().as_str(), "alice");
    assert_eq!(
        restored.identity().fingerprint().unwrap(),
        fixture.alice.identity().fingerprint().unwrap()
    );
    assert_ne!(restored.id(), fixture.alice.id(), "new credential-store entries");
    assert_eq!(restored.info().relay_url.as_deref(), Some("https://relay.example"));
    assert_eq!(new.registration().unwrap(), old.registration().unwrap());

    for peer in ["bob", "carol"] {
        let before = old.last_messages(&username(peer), 2000).unwrap();
        let after = new.last_messages(&username(peer), 2000).unwrap();
        assert_eq!(before.len(), after.len(), "{peer}");
        for (a, b) in before.iter().zip(&after) {
            let expected = match a.message.delivery {
                Delivery::Sending => Delivery::Failed,
                other => other,
            };
            assert_eq!((&a.message.id, &a.message.body), (&b.message.id, &b.message.body));
            assert_eq!(b.message.delivery, expected);
        }
    }

    let bob = new.contact(&username("bob")).unwrap().unwrap();
    assert!(
        bob.verified && bob.rehandshake,
        "verification kept, a new handshake due"
    );
    let read = new
        .messages_before(&username("bob"), Cursor::from_value(bob.read_up_to.unwrap() + 1), 1)
        .unwrap();
    assert_eq!(
        read[0].message.body, "bob 999",
        "the read mark moved onto the same message"
    );
    let after_rekey = new
        .messages_after(&username("bob"), Some(Cursor::from_value(bob.rekeys[0] - 1)), 1)
        .unwrap();
    assert_eq!(after_rekey[0].message.body, "after the re-key");
    assert!(
        new.load_session(&username("bob")).unwrap().is_none(),
        "no session carried"
    );
    let files = new.file_records().unwrap();
    assert_eq!(files.len(), 1);
    assert!(matches!(files[0].state, FileState::Failed(_)));
}

#[test]
fn a_wrong_passphrase_or_a_changed_file_restores_nothing() {
    let fixture = backed_up();
    let keystore = Arc::new(MemoryKeystore::default());
    let wrong = restore_with(&fixture, "not the passphrase", &keystore).unwrap_err();
    assert!(matches!(wrong, Error::BackupWrongPassphrase), "{wrong:?}");

    let original = std::fs::read(&fixture.backup).unwrap();
    let segment = BackupHeader::sealed_len(SEGMENT as usize);
    // A changed salt derives another key: indistinguishable from a wrong passphrase, and as harmless.
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut flipped = original.clone();
    flipped[BACKUP_HEADER_LEN + segment + 100] ^= 1;
    cases.push(("a flipped bit", flipped));
    cases.push(("cut inside", original[..original.len() - 1000].to_vec()));
    cases.push(("cut at a segment", original[..BACKUP_HEADER_LEN + segment].to_vec()));
    let mut salted = original.clone();
    salted[25] ^= 1;
    cases.push(("a changed salt", salted));
    for (what, bytes) in cases {
        std::fs::write(&fixture.backup, &bytes).unwrap();
        let refused = restore_with(&fixture, PASSPHRASE, &keystore).unwrap_err();
        let expected = match what {
            "a changed salt" => matches!(refused, Error::BackupWrongPassphrase),
            _ => matches!(refused, Error::BackupDamaged(_)),
        };
        assert!(expected, "{what}: {refused:?}");
        assert!(!fixture.restored_dir.exists(), "{what}: no profile left");
        let parent = fixture.restored_dir.parent().unwrap();
        let leftovers: Vec<_> = std::fs::read_dir(parent)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("restoring"))
            .collect();
        assert!(leftovers.is_empty(), "{what}: {leftovers:?}");
        assert!(keystore.is_empty(), "{what}: no keys left");
    }

    let mut newer = original.clone();
    newer[9] = 9;
    std::fs::write(&fixture.backup, &newer).unwrap();
    let refused = restore_with(&fixture, PASSPHRASE, &keystore).unwrap_err();
    assert!(matches!(refused, Error::BackupNewerFormat(9)), "{refused:?}");
    std::fs::write(
        &fixture.backup,
        b"just some text, not a backup at all, long enough for a header",
    )
    .unwrap();
    let refused = restore_with(&fixture, PASSPHRASE, &keystore).unwrap_err();
    assert!(matches!(refused, Error::NotABackup), "{refused:?}");
}

#[test]
fn short_passphrases_and_cancels_write_nothing() {
    let fixture = backed_up();
    let out = fixture.restored_dir.with_extension("other");
    let never = AtomicBool::new(false);
    let short = write_backup_with(&fixture.alice, &out, "short", quick(), &never, &mut |_| {}).unwrap_err();
    assert!(matches!(short, Error::PassphraseTooShort(8)), "{short:?}");
    let cancelled = AtomicBool::new(true);
    let stopped = write_backup_with(&fixture.alice, &out, PASSPHRASE, quick(), &cancelled, &mut |_| {}).unwrap_err();
    assert!(matches!(stopped, Error::BackupCancelled), "{stopped:?}");
    assert!(!out.exists());
    let parent = out.parent().unwrap();
    let temps = std::fs::read_dir(parent)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".magpie-backup")
        })
        .count();
    assert_eq!(temps, 0, "the temporary file went with the cancel");
}

/// A backup made of `records` as given (a hostile or broken writer), sealed like any other.
fn crafted(dir: &std::path::Path, records: &[Record]) -> std::path::PathBuf {
    let (kdf, segment) = quick();
    let key = magpie_proto::backup::BackupKey::derive(PASSPHRASE, &kdf).unwrap();
    let mut header = BackupHeader::new(kdf, &key).unwrap();
    header.segment_bytes = segment;
    let path = dir.join("crafted.magpie-backup");
    let file = std::fs::File::create(&path).unwrap();
    let mut writer = stream::SealedWriter::new(file, header, key).unwrap();
    for record in records {
        writer.record(record).unwrap();
    }
    writer.finish().unwrap();
    path
}

fn profile_record() -> Record {
    let der = identity("alice").to_pkcs8_der().unwrap();
    Record::Profile {
        username: username("alice"),
        relay_url: None,
        created_at: 0,
        registration: None,
        identity_key: zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der.expose_secret())),
    }
}

#[test]
fn contacts_twice_or_after_messages_are_refused_and_nothing_stays() {
    let root = tempfile::tempdir().unwrap();
    let bob = || {
        Record::Contact(Box::new(Contact::new(
            username("bob"),
            identity("bob").fingerprint().unwrap(),
        )))
    };
    let text = || Record::Messages {
        messages: vec![message("bob", "hi", Direction::Incoming, Delivery::Received)],
        cursors: vec![1],
    };
    let cases: Vec<(&str, Vec<Record>)> = vec![
        (
            "twice",
            vec![
                profile_record(),
                bob(),
                bob(),
                Record::End {
                    contacts: 2,
                    messages: 0,
                },
            ],
        ),
        (
            "after a message",
            vec![
                profile_record(),
                text(),
                bob(),
                Record::End {
                    contacts: 1,
                    messages: 1,
                },
            ],
        ),
        (
            "no profile first",
            vec![
                bob(),
                Record::End {
                    contacts: 1,
                    messages: 0,
                },
            ],
        ),
    ];
    for (what, records) in cases {
        let path = crafted(root.path(), &records);
        let keystore = Arc::new(MemoryKeystore::default());
        let keys: Arc<dyn Keystore> = keystore.clone();
        let target = root.path().join("restored");
        let never = AtomicBool::new(false);
        let refused = restore(&path, PASSPHRASE, &target, keys, &never, &mut |_| {}).unwrap_err();
        assert!(matches!(refused, Error::BackupDamaged(_)), "{what}: {refused:?}");
        assert!(!target.exists() && keystore.is_empty(), "{what}: nothing stays");
        let leftovers = std::fs::read_dir(root.path()).unwrap().count();
        assert_eq!(leftovers, 1, "{what}: only the backup file is left");
    }
}

#[test]
fn a_restore_never_goes_into_a_folder_with_something_in_it() {
    let fixture = backed_up();
    std::fs::create_dir_all(&fixture.restored_dir).unwrap();
    std::fs::write(fixture.restored_dir.join("notes.txt"), b"mine").unwrap();
    let keystore = Arc::new(MemoryKeystore::default());
    let refused = restore_with(&fixture, PASSPHRASE, &keystore).unwrap_err();
    assert!(matches!(refused, Error::BackupIo { .. }), "{refused:?}");
    assert_eq!(std::fs::read(fixture.restored_dir.join("notes.txt")).unwrap(), b"mine");
    assert!(keystore.is_empty());
    // An empty folder is taken.
    std::fs::remove_file(fixture.restored_dir.join("notes.txt")).unwrap();
    restore_with(&fixture, PASSPHRASE, &keystore).unwrap();
}

#[test]
fn restores_a_crash_left_unfinished_are_swept_with_their_keys() {
    let root = tempfile::tempdir().unwrap();
    let keystore = Arc::new(MemoryKeystore::default());
    let keys: Arc<dyn Keystore> = keystore.clone();
    let staging = root.path().join(".alice.restoring-1234");
    drop(Profile::create_with_identity(&staging, identity("alice"), keys).unwrap());
    std::fs::create_dir(root.path().join("a-real-profile")).unwrap();
    assert!(is_unfinished_restore(".alice.restoring-1234") && !is_unfinished_restore("alice"));
    sweep_unfinished(root.path(), keystore.as_ref());
    assert!(!staging.exists() && keystore.is_empty());
    assert!(root.path().join("a-real-profile").exists());
}

use magpie_proto::MessageKind;
use uuid::Uuid;

use super::*;
use crate::history::{Delivery, Direction, Message};
use crate::keystore::MemoryKeystore;
use magpie_tests::{files_under, identity, username};

fn memory() -> Arc<dyn Keystore> {
    Arc::new(MemoryKeystore::default())
}

#[test]
fn create_open_delete_with_two_profiles_side_by_side() {
    let root = tempfile::tempdir().unwrap();
    let keystore = memory();
    let alice = Profile::create_with_identity(&root.path().join("alice"), identity("alice"), keystore.clone()).unwrap();
    let bob = Profile::create_with_identity(&root.path().join("bob"), identity("bob"), keystore.clone()).unwrap();
    assert_ne!(alice.id(), bob.id());
    let (alice_id, fingerprint) = (alice.id(), alice.identity().fingerprint().unwrap());
    for account in [identity_account(alice_id), history_account(alice_id)] {
        assert!(keystore.load(&account).unwrap().is_some(), "{account}");
    }
    alice.history().append_message(&message("bob", "hello bob")).unwrap();
    drop(alice);

    let alice = Profile::open(&root.path().join("alice"), keystore.clone()).unwrap();
    assert_eq!(alice.username().as_str(), "alice");
    assert_eq!(alice.identity().fingerprint().unwrap(), fingerprint);
    assert_eq!(
        alice.history().last_messages(&username("bob"), 5).unwrap()[0]
            .message
            .body,
        "hello bob"
    );
    assert!(bob.history().last_messages(&username("bob"), 5).unwrap().is_empty());

    alice.delete().unwrap();
    assert!(!root.path().join("alice").exists());
    assert!(keystore.load(&identity_account(alice_id)).unwrap().is_none());
    assert!(keystore.load(&history_account(alice_id)).unwrap().is_none());
    assert!(matches!(
        Profile::open(&root.path().join("alice"), keystore.clone()),
        Err(Error::ProfileNotFound(_))
    ));
    assert!(
        keystore.load(&identity_account(bob.id())).unwrap().is_some(),
        "bob's keys are untouched"
    );
}

#[test]
fn create_refuses_an_existing_profile_and_open_reports_missing_or_wrong_keys() {
    let dir = tempfile::tempdir().unwrap();
    let keystore = memory();
    let profile = Profile::create_with_identity(dir.path(), identity("alice"), keystore.clone()).unwrap();
    let id = profile.id();
    drop(profile);
    assert!(matches!(
        Profile::create_with_identity(dir.path(), identity("alice"), keystore.clone()),
        Err(Error::ProfileExists(_))
    ));

    let history_key = keystore.load(&history_account(id)).unwrap().unwrap();
    keystore.store(&history_account(id), &[0x55; 32]).unwrap();
    assert!(matches!(
        Profile::open(dir.path(), keystore.clone()),
        Err(Error::HistoryWrongKey)
    ));
    keystore.store(&history_account(id), &[0x55; 7]).unwrap();
    assert!(matches!(
        Profile::open(dir.path(), keystore.clone()),
        Err(Error::HistoryKeyMalformed)
    ));
    keystore.store(&history_account(id), history_key.expose()).unwrap();

    keystore.delete(&identity_account(id)).unwrap();
    let error = Profile::open(dir.path(), keystore.clone()).unwrap_err();
    assert!(
        matches!(
            error,
            Error::ProfileKeyMissing {
                what: "identity key",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("missing from the credential store"),
        "{error}"
    );

    // A profile whose key is gone can still be removed.
    Profile::remove(dir.path(), keystore.as_ref()).unwrap();
    assert!(keystore.load(&history_account(id)).unwrap().is_none());
}

#[test]
fn a_damaged_profile_file_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(PROFILE_FILE), b"{not json").unwrap();
    assert!(matches!(
        Profile::open(dir.path(), memory()),
        Err(Error::ProfileCorrupt { .. })
    ));
}

#[test]
fn relay_url_is_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let keystore = memory();
    let mut profile = Profile::create_with_identity(dir.path(), identity("alice"), keystore.clone()).unwrap();
    profile.set_relay_url(Some("https://relay.example".to_owned())).unwrap();
    drop(profile);
    let profile = Profile::open(dir.path(), keystore).unwrap();
    assert_eq!(profile.info().relay_url.as_deref(), Some("https://relay.example"));
}

/// A stolen disk reveals nothing: no plaintext, no peer name in a message, no private key bytes.
#[test]
fn history_at_rest_holds_no_plaintext_and_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let keystore = memory();
    let profile = Profile::create_with_identity(dir.path(), identity("alice"), keystore.clone()).unwrap();
    let marker = "zebra-quartz-7731 rendezvous at the old mill";
    for i in 0..200 {
        profile
            .history()
            .append_message(&message("bartholomew", &format!("{marker} #{i}")))
            .unwrap();
    }
    profile
        .history()
        .save_handshake("req-1", b"handshake-state-plain")
        .unwrap();
    profile.history().flush().unwrap();
    let der = profile.identity().to_pkcs8_der().unwrap();
    let history_key = keystore.load(&history_account(profile.id())).unwrap().unwrap();
    drop(profile);

    let der = der.expose_secret();
    let middle = der.len() / 2;
    let needles: [(&str, &[u8]); 5] = [
        ("message text", b"zebra-quartz-7731"),
        ("peer name", b"bartholomew"),
        ("handshake state", b"handshake-state-plain"),
        // From the middle of the DER: the private exponent and primes, not the fixed header.
        ("private key", &der[middle..middle + 32]),
        ("history key", history_key.expose()),
    ];
    let files = files_under(dir.path());
    assert!(
        files.len() >= 3,
        "expected profile.json and sled files, found {files:?}"
    );
    for file in files {
        let bytes = fs::read(&file).unwrap();
        for (what, needle) in needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{what} found in {}",
                file.display()
            );
        }
    }
}

#[test]
fn profile_debug_leaks_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let profile = Profile::create_with_identity(dir.path(), identity("alice"), memory()).unwrap();
    let printed = format!("{profile:?}");
    assert!(
        printed.contains("alice") && !printed.contains("PRIVATE") && printed.len() < 600,
        "{printed}"
    );
}

pub(super) fn message(peer: &str, body: &str) -> Message {
    Message {
        id: Uuid::new_v4(),
        peer: username(peer),
        direction: Direction::Incoming,
        kind: MessageKind::Text,
        body: body.to_owned(),
        sent_at: 1_700_000_000,
        received_at: Some(1_700_000_001),
        delivery: Delivery::Received,
    }
}

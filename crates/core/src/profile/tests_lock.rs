//! The app lock over a real sled history and the in-memory credential store (the real one: the stories and e2e).

use super::lock::quick_kdf;
use super::tests::message;
use super::*;
use crate::keystore::MemoryKeystore;
use magpie_tests::{identity, username};

fn raw_keys(keystore: &dyn Keystore, id: Uuid) -> (Vec<u8>, Vec<u8>) {
    let load = |account: String| keystore.load(&account).unwrap().unwrap().expose().to_vec();
    (load(identity_account(id)), load(history_account(id)))
}

fn first_body(profile: &Profile) -> String {
    profile.history().last_messages(&username("bob"), 1).unwrap()[0]
        .message
        .body
        .clone()
}

#[test]
fn a_locked_profile_opens_with_its_passphrase_only_and_the_store_holds_no_key_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let keystore: Arc<dyn Keystore> = Arc::new(MemoryKeystore::default());
    let profile = Profile::create_with_identity(dir.path(), identity("alice"), keystore.clone()).unwrap();
    let id = profile.id();
    profile
        .history()
        .append_message(&message("bob", "before the lock"))
        .unwrap();
    let (identity_der, history_key) = raw_keys(keystore.as_ref(), id);
    assert!(!profile.lock_on());
    assert!(matches!(
        profile.set_passphrase_with(None, "short", &quick_kdf()),
        Err(Error::PassphraseTooShort(8))
    ));
    profile
        .set_passphrase_with(None, "correct horse", &quick_kdf())
        .unwrap();
    assert!(profile.lock_on());
    // Changing it asks for the current one; none given is refused without counting as a wrong try.
    assert!(matches!(
        profile.set_passphrase_with(None, "other horse", &quick_kdf()),
        Err(Error::ProfileLocked)
    ));
    assert!(!dir.path().join(lock::ATTEMPTS_FILE).exists());
    drop(profile);

    let (wrapped_identity, wrapped_history) = raw_keys(keystore.as_ref(), id);
    for (wrapped, raw) in [(&wrapped_identity, &identity_der), (&wrapped_history, &history_key)] {
        assert!(lock::is_wrapped(wrapped));
        assert!(
            !wrapped.windows(16).any(|w| raw.windows(16).any(|r| r == w)),
            "no 16 bytes of the key"
        );
    }
    assert!(Profile::is_locked(dir.path(), keystore.as_ref()).unwrap());
    assert!(matches!(
        Profile::open(dir.path(), keystore.clone()),
        Err(Error::ProfileLocked)
    ));
    assert!(matches!(
        Profile::unlock(dir.path(), keystore.clone(), "wrong horse"),
        Err(Error::WrongPassphrase { wait_secs: 0 })
    ));
    let profile = Profile::unlock(dir.path(), keystore.clone(), "correct horse").unwrap();
    assert_eq!(first_body(&profile), "before the lock");
    assert_eq!(
        profile.identity().to_pkcs8_der().unwrap().expose_secret(),
        identity_der.as_slice()
    );

    // Changing rewrites the lock entry alone; the wrapped keys stay as they are.
    assert!(matches!(
        profile.set_passphrase_with(Some("wrong horse"), "battery staple", &quick_kdf()),
        Err(Error::WrongPassphrase { .. })
    ));
    profile
        .set_passphrase_with(Some("correct horse"), "battery staple", &quick_kdf())
        .unwrap();
    assert_eq!(raw_keys(keystore.as_ref(), id), (wrapped_identity, wrapped_history));
    assert!(profile.check_passphrase("correct horse").is_err());
    profile.check_passphrase("battery staple").unwrap();
    drop(profile);
    assert!(Profile::unlock(dir.path(), keystore.clone(), "correct horse").is_err());
    let profile = Profile::unlock(dir.path(), keystore.clone(), "battery staple").unwrap();

    profile.remove_passphrase("battery staple").unwrap();
    assert!(!profile.lock_on());
    assert_eq!(raw_keys(keystore.as_ref(), id), (identity_der, history_key));
    drop(profile);
    assert_eq!(
        first_body(&Profile::open(dir.path(), keystore.clone()).unwrap()),
        "before the lock"
    );
}

#[test]
fn a_lock_interrupted_halfway_is_finished_at_the_next_unlock_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let keystore: Arc<dyn Keystore> = Arc::new(MemoryKeystore::default());
    let profile = Profile::create_with_identity(dir.path(), identity("alice"), keystore.clone()).unwrap();
    let id = profile.id();
    profile.history().append_message(&message("bob", "kept")).unwrap();
    let raw = raw_keys(keystore.as_ref(), id);
    profile
        .set_passphrase_with(None, "correct horse", &quick_kdf())
        .unwrap();
    drop(profile);
    // As if the machine stopped after the lock entry and the history key were written, before the identity key.
    keystore.store(&identity_account(id), &raw.0).unwrap();
    let profile = Profile::unlock(dir.path(), keystore.clone(), "correct horse").unwrap();
    assert_eq!(first_body(&profile), "kept");
    let (identity_now, history_now) = raw_keys(keystore.as_ref(), id);
    assert!(
        lock::is_wrapped(&identity_now) && lock::is_wrapped(&history_now),
        "the unlock finished the lock"
    );
    drop(profile);

    // Turning the lock on again while its entry exists (a turn-on that failed halfway, the flag never set) is a
    // change: it needs the passphrase, and makes no second key.
    let profile = Profile::unlock(dir.path(), keystore.clone(), "correct horse").unwrap();
    profile.lock_on.store(false, std::sync::atomic::Ordering::Relaxed);
    assert!(matches!(
        profile.set_passphrase_with(None, "other horse", &quick_kdf()),
        Err(Error::ProfileLocked)
    ));
    profile
        .set_passphrase_with(Some("correct horse"), "other horse", &quick_kdf())
        .unwrap();
    assert!(profile.lock_on());
    drop(profile);
    assert_eq!(
        first_body(&Profile::unlock(dir.path(), keystore.clone(), "other horse").unwrap()),
        "kept"
    );

    // A wrapped key without its lock entry (deleted behind Magpie's back) is named, not misread.
    keystore.delete(&lock::lock_account(id)).unwrap();
    match Profile::open(dir.path(), keystore.clone()) {
        Err(Error::ProfileKeyMissing { what: "lock", account }) => assert_eq!(account, lock::lock_account(id)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn deleting_a_locked_profile_leaves_no_entry_and_no_file() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("alice");
    let keystore = Arc::new(MemoryKeystore::default());
    let profile = Profile::create_with_identity(&dir, identity("alice"), keystore.clone()).unwrap();
    profile
        .set_passphrase_with(None, "correct horse", &quick_kdf())
        .unwrap();
    assert!(
        profile.check_passphrase("wrong horse").is_err(),
        "leaves an attempts file"
    );
    profile.delete().unwrap();
    assert!(keystore.is_empty());
    assert!(!dir.exists());
}

//! Profiles against the real platform credential store: run inside scripts/keyring-session.sh.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::sync::Arc;

use magpie_core::history::{Delivery, Direction, Message};
use magpie_core::keystore::{Keystore, PlatformKeystore};
use magpie_core::profile::{history_account, identity_account};
use magpie_core::{Error, Profile};
use magpie_proto::{MessageKind, Username};

#[test]
fn a_profile_is_created_reopened_and_deleted_in_the_real_store() {
    // A service of this test's own, so runs never see each other's entries.
    let service = format!("app.magpie.test.profile.{}", std::process::id());
    let keystore: Arc<dyn Keystore> = Arc::new(PlatformKeystore::with_service(&service));
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("alice");

    let profile = Profile::create(&dir, Username::parse("alice").unwrap(), keystore.clone()).unwrap();
    let id = profile.id();
    let fingerprint = profile.identity().fingerprint().unwrap();
    let marker = "platform-store-marker-5521";
    let message = Message {
        id: uuid::Uuid::new_v4(),
        peer: Username::parse("bob").unwrap(),
        direction: Direction::Outgoing,
        kind: MessageKind::Text,
        body: marker.to_owned(),
        sent_at: 1_700_000_000,
        received_at: None,
        delivery: Delivery::Sending,
    };
    profile.history().append_message(&message).unwrap();
    let der = profile.identity().to_pkcs8_der().unwrap();
    drop(profile);

    // A fresh PlatformKeystore: nothing cached in-process, the keys come from the Secret Service.
    let reopened = Profile::open(&dir, Arc::new(PlatformKeystore::with_service(&service))).unwrap();
    assert_eq!(reopened.identity().fingerprint().unwrap(), fingerprint);
    let stored = reopened.history().last_messages(&message.peer, 1).unwrap();
    assert_eq!(stored[0].message.body, marker);
    let raw = keystore.load(&identity_account(id)).unwrap().unwrap();
    assert_eq!(raw.expose(), der.expose_secret());
    assert_eq!(keystore.load(&history_account(id)).unwrap().unwrap().expose().len(), 32);

    reopened.delete().unwrap();
    assert!(!dir.exists());
    assert!(keystore.load(&identity_account(id)).unwrap().is_none());
    assert!(keystore.load(&history_account(id)).unwrap().is_none());
    assert!(matches!(Profile::open(&dir, keystore), Err(Error::ProfileNotFound(_))));
}

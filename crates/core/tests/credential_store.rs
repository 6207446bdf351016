//! Runs against the real platform store: in CI a Secret Service (gnome-keyring) in a private D-Bus session,
//! started by scripts/keyring-session.sh.

use std::process::Command;

use magpie_core::keystore::{self, Keystore, PlatformKeystore};

/// A service name per test, so tests never see each other's entries.
fn store(test: &str) -> PlatformKeystore {
    PlatformKeystore::with_service(format!("app.magpie.test.{test}.{}", std::process::id()))
}

#[test]
fn probe_finds_the_real_credential_store() {
    let status = keystore::probe();
    assert!(status.available, "credential store unavailable: {status:?}");
    assert_eq!(status.problem, None);
    assert_eq!(status.backend, keystore::backend_name());
}

#[test]
fn a_missing_entry_is_none_not_an_error() {
    assert!(store("missing").load("nobody:identity-key").unwrap().is_none());
    assert!(!store("missing").delete("nobody:identity-key").unwrap());
}

#[test]
fn binary_secrets_survive_a_fresh_entry_and_are_deleted() {
    // Bytes of every value, as a DER private key has: the store must not treat them as text.
    let secret: Vec<u8> = (0..=255u8).cycle().take(1_800).collect();
    store("binary").store("alice:identity-key", &secret).unwrap();

    // A second PlatformKeystore means fresh keyring::Entry objects: nothing is cached in-process.
    let reread = store("binary").load("alice:identity-key").unwrap().unwrap();
    assert_eq!(reread.expose(), secret.as_slice());

    store("binary").store("alice:identity-key", b"replaced").unwrap();
    assert_eq!(
        store("binary").load("alice:identity-key").unwrap().unwrap().expose(),
        b"replaced"
    );

    assert!(store("binary").delete("alice:identity-key").unwrap());
    assert!(store("binary").load("alice:identity-key").unwrap().is_none());
}

/// Another process, another client library: what we store is really in the Secret Service, not in a mock.
#[cfg(target_os = "linux")]
#[test]
fn another_process_reads_what_we_stored_and_we_read_what_it_stored() {
    let keystore = store("interop");
    let service = format!("app.magpie.test.interop.{}", std::process::id());
    keystore.store("bob:history-key", b"written-by-magpie").unwrap();

    let lookup = Command::new("secret-tool")
        .args(["lookup", "service", &service, "username", "bob:history-key"])
        .output()
        .expect("secret-tool is installed by scripts/setup-linux.sh --test");
    assert!(lookup.status.success(), "{}", String::from_utf8_lossy(&lookup.stderr));
    assert_eq!(lookup.stdout, b"written-by-magpie");

    let mut child = Command::new("secret-tool")
        .args([
            "store",
            "--label",
            "magpie test",
            "service",
            &service,
            "username",
            "carol:history-key",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"written-by-secret-tool")
        .unwrap();
    assert!(child.wait().unwrap().success());
    let read = keystore.load("carol:history-key").unwrap().unwrap();
    assert_eq!(read.expose(), b"written-by-secret-tool");

    keystore.delete("bob:history-key").unwrap();
    keystore.delete("carol:history-key").unwrap();
}

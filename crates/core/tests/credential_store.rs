//! Runs against the real platform store: in CI a Secret Service (gnome-keyring) in a private D-Bus session.

#[test]
fn probe_finds_the_real_credential_store() {
    let status = magpie_core::keystore::probe();
    assert!(status.available, "credential store unavailable: {status:?}");
    assert_eq!(status.problem, None);
    assert_eq!(status.backend, magpie_core::keystore::backend_name());
}

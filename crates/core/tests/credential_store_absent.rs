//! Its own test binary, so pointing D-Bus at nowhere affects no other test.

#[cfg(target_os = "linux")]
#[test]
fn probe_reports_a_missing_secret_service_as_data() {
    std::env::set_var("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/magpie-test-bus");
    let status = magpie_core::keystore::probe();
    assert!(!status.available);
    let problem = status.problem.expect("a reason is given");
    assert!(problem.contains("No keyring service is running"), "{problem}");
}

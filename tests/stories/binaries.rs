//! The workspace's binaries, built on demand: a story that runs `magpie` or `magpie-relay` as a real process.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// Builds `bin` of package `package` (a no-op when fresh) and returns its path in this build's target dir.
pub fn binary(package: &str, bin: &str) -> PathBuf {
    // One cargo at a time: parallel tests would otherwise wait on cargo's lock anyway.
    static BUILD: Mutex<()> = Mutex::new(());
    let _one = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", package, "--bin", bin])
        .status()
        .unwrap();
    assert!(status.success(), "building {bin} failed");
    // This test runs from target/<profile>/deps/; the binaries live in target/<profile>/.
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join(bin);
    assert!(path.exists(), "{} missing", path.display());
    path
}

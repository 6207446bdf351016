//! The first story again, driven through the `magpie` binary as separate processes, as a script would.

use std::path::Path;
use std::process::{Command, Output};

use crate::binaries::binary;
use crate::common::Relay;

pub fn magpie(profile: &Path, args: &[&str]) -> Output {
    let output = Command::new(binary("magpie", "magpie"))
        .arg("--profile")
        .arg(profile)
        .args(args)
        .output()
        .unwrap();
    output
}

pub fn ok(profile: &Path, args: &[&str]) -> String {
    let output = magpie(profile, args);
    assert!(
        output.status.success(),
        "magpie {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_story_through_the_cli() {
    let relay = Relay::start().await;
    let url = relay.url();
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    // The relay runs on this test's runtime: the subprocess calls go to a blocking thread.
    tokio::task::spawn_blocking(move || {
        assert!(ok(&alice, &["--relay", &url, "register", "alice"]).contains("Registered alice"));
        assert!(ok(&bob, &["--relay", &url, "register", "bob"]).contains("Registered bob"));

        let taken = magpie(&dir.path().join("eve"), &["--relay", &url, "register", "alice"]);
        assert_eq!(taken.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&taken.stderr).contains("already taken"));
        assert!(
            !dir.path().join("eve").exists(),
            "a profile that cannot register is not left behind"
        );

        ok(&alice, &["request", "bob"]);
        let requests = ok(&bob, &["requests", "--json"]);
        let request: serde_json::Value = serde_json::from_str(requests.lines().next().unwrap()).unwrap();
        assert_eq!(request["peer"], "alice");
        let whoami = ok(&alice, &["whoami"]);
        assert!(
            whoami.contains(request["fingerprint"].as_str().unwrap()),
            "bob sees alice's real key"
        );

        let early = magpie(&alice, &["send", "bob", "too early"]);
        assert_eq!(early.status.code(), Some(1), "no session before the handshake");
        assert!(String::from_utf8_lossy(&early.stderr).contains("no encrypted session"));

        let accepted = ok(&bob, &["accept", "alice"]);
        assert!(accepted.contains(request["request_id"].as_str().unwrap()), "{accepted}");
        assert!(
            accepted.contains(request["fingerprint"].as_str().unwrap()),
            "{accepted}"
        );
        ok(&alice, &["sync"]); // accept -> key transfer
        ok(&bob, &["sync"]); // key transfer -> confirm
        for i in 0..5 {
            ok(&alice, &["send", "bob", &format!("alice {i}")]);
            ok(&bob, &["send", "alice", &format!("bob {i}")]);
        }
        ok(&alice, &["sync"]);
        ok(&bob, &["sync"]);
        ok(&alice, &["sync"]); // bob's receipts

        let alice_history = json_lines(&ok(&alice, &["history", "bob", "--json", "--last", "100"]));
        let bob_history = json_lines(&ok(&bob, &["history", "alice", "--json", "--last", "100"]));
        assert_eq!(alice_history.len(), 10);
        assert_eq!(bob_history.len(), 10);
        let bodies = |h: &[serde_json::Value], dir: &str| -> Vec<String> {
            h.iter()
                .filter(|m| m["direction"] == dir)
                .map(|m| m["body"].as_str().unwrap().to_owned())
                .collect()
        };
        let alice_wrote: Vec<String> = (0..5).map(|i| format!("alice {i}")).collect();
        let bob_wrote: Vec<String> = (0..5).map(|i| format!("bob {i}")).collect();
        assert_eq!(bodies(&alice_history, "outgoing"), alice_wrote);
        assert_eq!(bodies(&bob_history, "incoming"), alice_wrote);
        assert_eq!(bodies(&bob_history, "outgoing"), bob_wrote);
        assert_eq!(bodies(&alice_history, "incoming"), bob_wrote);
        assert!(
            alice_history
                .iter()
                .filter(|m| m["direction"] == "outgoing")
                .all(|m| m["delivery"] == "delivered"),
            "bob's receipts reached alice"
        );

        let number = |out: &str| out.lines().skip(1).take(3).collect::<Vec<_>>().join(" ");
        let alice_sn = ok(&alice, &["safety-number", "bob"]);
        assert_eq!(number(&alice_sn), number(&ok(&bob, &["safety-number", "alice"])));
        assert_eq!(number(&alice_sn).split_whitespace().count(), 12);
        // Verifying names the key whose number was compared: asked for when there is a terminal, else a flag.
        let key_line = alice_sn
            .lines()
            .find(|l| l.starts_with("bob's key fingerprint"))
            .unwrap();
        let shown = key_line.rsplit(' ').next().unwrap();
        let unasked = magpie(&alice, &["verify", "bob"]);
        assert_eq!(
            unasked.status.code(),
            Some(2),
            "no terminal to ask on and no --fingerprint"
        );
        assert!(
            String::from_utf8_lossy(&unasked.stdout).contains(shown),
            "the key is printed with the number"
        );
        assert!(String::from_utf8_lossy(&unasked.stderr).contains("--fingerprint"));
        let other = "ab".repeat(32);
        let wrong = magpie(&alice, &["verify", "bob", "--fingerprint", &other]);
        assert_eq!(wrong.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&wrong.stderr).contains("changed while you were comparing"));
        assert!(ok(&alice, &["verify", "bob", "--fingerprint", shown]).contains("bob is marked verified"));

        // The interactive chat: lines typed are sent, and nothing is left behind at end of input.
        let mut chat = Command::new(binary("magpie", "magpie"))
            .arg("--profile")
            .arg(&alice)
            .args(["chat", "bob"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write as _;
            let mut stdin = chat.stdin.take().unwrap();
            writeln!(stdin, "typed in a chat").unwrap();
            writeln!(stdin, "and another line").unwrap();
        }
        let chat = chat.wait_with_output().unwrap();
        assert!(chat.status.success(), "{}", String::from_utf8_lossy(&chat.stderr));
        ok(&bob, &["sync"]);
        let bob_history = json_lines(&ok(&bob, &["history", "alice", "--json", "--last", "2"]));
        assert_eq!(
            bodies(&bob_history, "incoming"),
            ["typed in a chat", "and another line"]
        );

        let alice_now = json_lines(&ok(&alice, &["history", "bob", "--json", "--last", "100"]));
        // Search reads the sealed history: every word, as a word or its beginning, case ignored.
        assert!(
            ok(&bob, &["search", "TYPED lin", "--json"]).is_empty(),
            "no one message has both"
        );
        let found = json_lines(&ok(&bob, &["search", "TYPED", "--json"]));
        assert_eq!(
            (found[0]["peer"].as_str(), found[0]["total"].as_u64()),
            (Some("alice"), Some(1))
        );
        let snippet = &found[0]["found"][0]["snippet"];
        assert_eq!(snippet[0]["text"], "typed");
        assert_eq!(snippet[0]["matched"], true);
        assert_eq!(found[0]["found"][0]["message"]["body"], "typed in a chat");
        let plain = ok(&alice, &["search", "bob 3", "--peer", "bob"]);
        assert!(plain.starts_with("bob (1 match)\n"), "{plain}");
        assert!(plain.contains("bob: bob 3"), "{plain}");
        let none = magpie(&alice, &["search", "nowhere"]);
        assert!(none.status.success() && none.stdout.is_empty());
        assert!(String::from_utf8_lossy(&none.stderr).contains("no message matches"));
        assert_eq!(
            magpie(&alice, &["search", " ?! "]).status.code(),
            Some(2),
            "no word to search for"
        );

        // A backup with the passphrase from a file, restored into a new folder: the same chat comes back.
        let secret = dir.path().join("passphrase");
        std::fs::write(&secret, "a passphrase for the test\n").unwrap();
        let backup = dir.path().join("alice.backup");
        let with_passphrase = |profile: &Path, args: &[&str]| {
            Command::new(binary("magpie", "magpie"))
                .arg("--profile")
                .arg(profile)
                .args(args)
                .env("MAGPIE_PASSPHRASE_FILE", &secret)
                .output()
                .unwrap()
        };
        let made = with_passphrase(&alice, &["backup", "--out", backup.to_str().unwrap()]);
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        assert!(String::from_utf8_lossy(&made.stdout).contains("Backed up 1 contacts and 12 messages"));
        let moved = dir.path().join("alice-on-a-new-computer");
        let restored = with_passphrase(&moved, &["restore", backup.to_str().unwrap()]);
        assert!(
            restored.status.success(),
            "{}",
            String::from_utf8_lossy(&restored.stderr)
        );
        let again = json_lines(&ok(&moved, &["history", "bob", "--json", "--last", "100"]));
        // The same messages; their places are numbered anew.
        let without_cursor = |lines: Vec<serde_json::Value>| -> Vec<serde_json::Value> {
            lines
                .into_iter()
                .map(|mut m| {
                    m.as_object_mut().unwrap().remove("cursor");
                    m
                })
                .collect()
        };
        assert_eq!(again.len(), 12);
        assert_eq!(
            without_cursor(again),
            without_cursor(alice_now),
            "the restored chat is the chat"
        );
        let unasked = magpie(&moved, &["backup", "--out", backup.to_str().unwrap()]);
        assert_eq!(unasked.status.code(), Some(2), "no terminal and no passphrase file");

        a_locked_profile_asks_for_its_passphrase(&moved, dir.path());

        let unknown = magpie(&alice, &["send", "carol", "hi"]);
        assert_eq!(unknown.status.code(), Some(1));
        let unknown_stderr = String::from_utf8_lossy(&unknown.stderr);
        assert!(unknown_stderr.contains("no user \"carol\""), "{unknown_stderr}");
        let usage = magpie(&alice, &["send"]);
        assert_eq!(usage.status.code(), Some(2));
    })
    .await
    .unwrap();
}

/// `magpie lock` wraps the profile's keys in the real credential store; every command then needs the passphrase,
/// and `lock --off` puts the keys back as they were.
fn a_locked_profile_asks_for_its_passphrase(profile: &Path, dir: &Path) {
    use magpie_core::keystore::{Keystore as _, PlatformKeystore};
    use magpie_core::profile::{history_account, identity_account, lock::lock_account, ProfileInfo};
    let id = ProfileInfo::read(profile).unwrap().profile_id;
    let store = PlatformKeystore::new();
    let entry = |account: String| store.load(&account).unwrap().map(|s| s.expose().to_vec());
    let raw_identity = entry(identity_account(id)).unwrap();
    let raw_history = entry(history_account(id)).unwrap();
    let with = |file: &Path, var: &str, args: &[&str]| {
        Command::new(binary("magpie", "magpie"))
            .arg("--profile")
            .arg(profile)
            .args(args)
            .env(var, file)
            .output()
            .unwrap()
    };
    let (right, wrong) = (dir.join("lock-right"), dir.join("lock-wrong"));
    std::fs::write(&right, "the lock's passphrase\n").unwrap();
    std::fs::write(&wrong, "not the lock's passphrase\n").unwrap();

    let locked = with(&right, "MAGPIE_NEW_PASSPHRASE_FILE", &["lock"]);
    assert!(locked.status.success(), "{}", String::from_utf8_lossy(&locked.stderr));
    assert!(String::from_utf8_lossy(&locked.stdout).contains("Locked"));
    assert!(entry(lock_account(id)).is_some());
    for (account, raw) in [
        (identity_account(id), &raw_identity),
        (history_account(id), &raw_history),
    ] {
        let wrapped = entry(account.clone()).unwrap();
        assert!(
            wrapped.starts_with(b"MGWK") && wrapped.len() > raw.len(),
            "{account} is wrapped"
        );
    }

    let unasked = magpie(profile, &["whoami"]);
    assert_eq!(unasked.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unasked.stderr).contains("no terminal"));
    let refused = with(&wrong, "MAGPIE_PASSPHRASE_FILE", &["whoami"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("does not unlock"));
    let read = with(
        &right,
        "MAGPIE_PASSPHRASE_FILE",
        &["history", "bob", "--json", "--last", "100"],
    );
    assert!(read.status.success(), "{}", String::from_utf8_lossy(&read.stderr));
    assert_eq!(json_lines(&String::from_utf8(read.stdout).unwrap()).len(), 12);

    let off = with(&right, "MAGPIE_PASSPHRASE_FILE", &["lock", "--off"]);
    assert!(off.status.success(), "{}", String::from_utf8_lossy(&off.stderr));
    assert!(entry(lock_account(id)).is_none());
    assert_eq!(entry(identity_account(id)).unwrap(), raw_identity);
    assert_eq!(entry(history_account(id)).unwrap(), raw_history);
    assert!(ok(profile, &["whoami"]).contains("alice"));
}

fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

//! Crashes mid-stream: the relay is killed with SIGKILL and restarted on its data directory while Alice sends,
//! and Bob's `magpie listen` process is killed mid-receive and restarted. Every message arrives exactly once.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use magpie_core::engine::Event;

use crate::binaries::binary;
use crate::chat::wait_until_all_delivered;
use crate::common::{go_online, name, wait_for, Person};

const MESSAGES: usize = 300;
const KILL_RELAY_AT: usize = 60;
const KILL_BOB_AT: usize = 150;

struct RelayProcess {
    child: Child,
    data: PathBuf,
    port: u16,
}

impl RelayProcess {
    fn start(data: &Path, port: u16) -> Self {
        let child = Command::new(binary("magpie-relay", "magpie-relay"))
            .args([
                "--data",
                data.to_str().unwrap(),
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let relay = Self {
            child,
            data: data.to_owned(),
            port,
        };
        relay.wait_healthy();
        relay
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn wait_healthy(&self) {
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("relay did not start");
    }

    /// SIGKILL, then a new process on the same data directory and port.
    fn crash_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        *self = Self::start(&self.data.clone(), self.port);
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn magpie(profile: &Path) -> Command {
    let mut command = Command::new(binary("magpie", "magpie"));
    command.arg("--profile").arg(profile);
    command
}

fn run_ok(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// `magpie listen --json` with a thread counting the messages it prints.
fn listen(profile: &Path, received: &Arc<AtomicUsize>) -> Child {
    let mut child = magpie(profile)
        .args(["listen", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let received = received.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            let event: serde_json::Value = serde_json::from_str(&line).unwrap();
            if event["type"] == "message_received" {
                received.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    child
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_lost_nothing_doubled_when_relay_and_client_are_killed() {
    let dir = tempfile::tempdir().unwrap();
    let relay_dir = dir.path().join("relay");
    let bob_dir = dir.path().join("bob");
    let port = free_port();
    let mut relay = tokio::task::block_in_place(|| RelayProcess::start(&relay_dir, port));
    let url = relay.url();

    let alice = Person::register("alice", &url).await;
    let mut alice_events = alice.client.events();
    let _online = go_online(&alice.client);
    let bob_dir2 = bob_dir.clone();
    let url2 = url.clone();
    tokio::task::spawn_blocking(move || run_ok(magpie(&bob_dir2).args(["--relay", &url2, "register", "bob"])))
        .await
        .unwrap();
    let bob = name("bob");
    alice.client.request(&bob).await.unwrap();
    let bob_dir2 = bob_dir.clone();
    tokio::task::spawn_blocking(move || {
        run_ok(magpie(&bob_dir2).args(["accept", "alice"]));
    })
    .await
    .unwrap();
    wait_for(&mut alice_events, |e| {
        matches!(e, Event::Handshake { .. }).then_some(())
    })
    .await;
    let bob_dir2 = bob_dir.clone();
    // Bob's listener handles Alice's KeyTransfer and confirms.
    let received = Arc::new(AtomicUsize::new(0));
    let mut listener = listen(&bob_dir2, &received);
    wait_for(&mut alice_events, |e| {
        matches!(e, Event::SessionEstablished { .. }).then_some(())
    })
    .await;

    let sender = {
        let client = alice.client.clone();
        let bob = bob.clone();
        tokio::spawn(async move {
            for i in 0..MESSAGES {
                client.send_text(&bob, &format!("message {i:03}")).unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    tokio::task::block_in_place(|| {
        let deadline = std::time::Instant::now() + crate::common::PATIENCE;
        let wait_until = |n: usize| {
            while received.load(Ordering::SeqCst) < n {
                assert!(
                    std::time::Instant::now() < deadline,
                    "stuck at {}",
                    received.load(Ordering::SeqCst)
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        wait_until(KILL_RELAY_AT);
        relay.crash_and_restart();
        wait_until(KILL_BOB_AT);
        listener.kill().unwrap();
        listener.wait().unwrap();
        listener = listen(&bob_dir2, &received);
    });
    sender.await.unwrap();
    // Bob's receipts for every message prove he stored each one.
    wait_until_all_delivered(&alice.client, &bob).await;
    tokio::task::block_in_place(|| {
        listener.kill().unwrap();
        listener.wait().unwrap();
    });

    let output = tokio::task::block_in_place(|| {
        magpie(&bob_dir)
            .args(["history", "alice", "--json", "--last", "10000"])
            .output()
            .unwrap()
    });
    assert!(output.status.success());
    let bodies: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["body"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let expected: Vec<String> = (0..MESSAGES).map(|i| format!("message {i:03}")).collect();
    assert_eq!(bodies, expected, "every message exactly once, in order");
    drop(relay);
}

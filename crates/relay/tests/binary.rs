//! The real `magpie-relay` binary as a child process: start-up errors and exit codes, the CA key file,
//! graceful SIGTERM, and `kill -9` while a client is sending 10,000 envelopes (and, in the second, while the
//! recipient acks and mailbox log segments retire).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_magpie-relay");

struct Relay {
    child: Child,
    base: String,
    fingerprint: String,
}

impl Relay {
    /// Starts the binary on 127.0.0.1:0 and waits for its "listening" log line.
    fn start(data: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(["--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("magpie-relay listening") {
                    let _ = tx.send(line);
                }
            }
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).expect("relay started");
        let field = |name: &str| {
            let start = line.find(&format!("{name}=")).unwrap() + name.len() + 1;
            line[start..].split_whitespace().next().unwrap().to_owned()
        };
        Self {
            base: format!("http://{}", field("listen")),
            fingerprint: field("ca_fingerprint_sha256"),
            child,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn fingerprint_bytes(&self) -> [u8; 32] {
        magpie_proto::Fingerprint::from_hex(&self.fingerprint)
            .unwrap()
            .as_bytes()
            .to_owned()
    }

    fn sigterm(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        self.child.wait().unwrap()
    }
}

/// `senders` tasks that post `envelopes` from one shared queue until it is empty or the relay is gone; each
/// records the ids (as JSON text) that got a 202.
type Accepted = Arc<Mutex<Vec<String>>>;

fn send_all(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    envelopes: Arc<Vec<Value>>,
    senders: usize,
) -> (Vec<tokio::task::JoinHandle<()>>, Accepted) {
    let next = Arc::new(AtomicUsize::new(0));
    let accepted = Accepted::default();
    let tasks = (0..senders)
        .map(|_| {
            let (http, base, token) = (http.clone(), base.to_owned(), token.to_owned());
            let (next, accepted, envelopes) = (next.clone(), accepted.clone(), envelopes.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(e) = envelopes.get(i) else { return };
                    match http
                        .post(format!("{base}/v1/envelopes"))
                        .bearer_auth(&token)
                        .json(e)
                        .send()
                        .await
                    {
                        Ok(r) if r.status() == 202 => accepted.lock().unwrap().push(e["id"].to_string()),
                        Ok(r) => panic!("unexpected {}", r.status()),
                        Err(_) => return, // the relay is gone
                    }
                }
            })
        })
        .collect();
    (tasks, accepted)
}

/// The ids (as JSON text) of everything waiting in `token`'s mailbox, paging on with the cursor.
async fn waiting_ids(http: &reqwest::Client, relay: &Relay, token: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after = 0;
    loop {
        let page: Value = http
            .get(relay.url(&format!("/v1/envelopes?after={after}&limit=1000")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let batch = page["envelopes"].as_array().unwrap();
        if batch.is_empty() {
            return ids;
        }
        ids.extend(batch.iter().map(|e| e["id"].to_string()));
        after = page["cursor"].as_u64().unwrap();
    }
}

async fn register_and_login(http: &reqwest::Client, relay: &Relay, name: &str) -> String {
    http_register(http, &relay.url(""), name).await;
    http_login(http, &relay.url(""), name, &relay.fingerprint_bytes()).await
}

#[test]
fn a_taken_port_and_an_unwritable_data_dir_fail_clearly_with_distinct_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(BIN)
        .args(["--data", dir.path().to_str().unwrap(), "--listen", &addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot listen on") && stderr.contains(&addr),
        "{stderr}"
    );

    // A path under a regular file cannot be a directory, even for root.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let out = Command::new(BIN)
        .args(["--data", file.join("data").to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(73));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not writable"), "{stderr}");

    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--data",
        "--listen",
        "MAGPIE_RELAY_DATA",
        "--max-envelope-bytes",
        "--sync",
    ] {
        assert!(help.contains(flag), "{flag} not in --help:\n{help}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_sending_loses_no_accepted_envelope_and_duplicates_none() {
    const TOTAL: usize = 10_000;
    const SENDERS: usize = 16;
    let dir = tempfile::tempdir().unwrap();
    let limits = ["--send-per-second", "1000000", "--send-burst", "1000000"];
    let mut relay = Relay::start(dir.path(), &limits);

    // The CA key was written 0600 and the logged fingerprint is the served one.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("ca/key.der"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let health: Value = http
        .get(relay.url("/v1/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["ca_fingerprint"], relay.fingerprint.as_str());

    let alice = register_and_login(&http, &relay, "alice").await;
    let bob = register_and_login(&http, &relay, "bob").await;
    let envelopes: Arc<Vec<Value>> = Arc::new((0..TOTAL).map(|i| envelope("bob", &i.to_le_bytes())).collect());

    // Senders share one queue; each records the ids that got a 202.

    let (tasks, accepted) = send_all(&http, &relay.base, &alice, envelopes.clone(), SENDERS);
    while accepted.lock().unwrap().len() < TOTAL * 3 / 10 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    relay.child.kill().unwrap(); // SIGKILL
    relay.child.wait().unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let acked_before: Vec<String> = accepted.lock().unwrap().clone();
    assert!(acked_before.len() < TOTAL, "the kill came too late to test anything");

    // Restart on the same directory: same CA, tokens still valid, every 202'd envelope there once.
    let first_fingerprint = relay.fingerprint.clone();
    let relay = Relay::start(dir.path(), &limits);
    assert_eq!(relay.fingerprint, first_fingerprint, "the CA was not reloaded");
    let delivered = waiting_ids(&http, &relay, &bob).await;
    let unique: HashSet<String> = delivered.iter().cloned().collect();
    assert_eq!(unique.len(), delivered.len(), "an envelope was stored twice");
    let missing = acked_before.iter().filter(|id| !unique.contains(*id)).count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} accepted envelopes lost",
        acked_before.len()
    );

    // The client retries everything; ids make it idempotent, so bob ends with exactly 10,000.
    let (tasks, accepted) = send_all(&http, &relay.base, &alice, envelopes.clone(), SENDERS);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(accepted.lock().unwrap().len(), TOTAL);
    let delivered = waiting_ids(&http, &relay, &bob).await;
    let unique: HashSet<String> = delivered.iter().cloned().collect();
    assert_eq!((delivered.len(), unique.len()), (TOTAL, TOTAL));
    eprintln!(
        "kill -9 after {} accepted of {TOTAL}: all delivered, none twice; after retries {} unique",
        acked_before.len(),
        unique.len()
    );

    let status = relay.sigterm();
    assert!(status.success(), "graceful SIGTERM exit: {status:?}");
}

/// As above, while the recipient reads and acks as it goes and segments of 64 KiB seal and retire under the load:
/// the kill can land in the middle of a retirement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_sending_reading_and_retiring_loses_nothing() {
    const TOTAL: usize = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--send-per-second",
        "1000000",
        "--send-burst",
        "1000000",
        // The reader polls as fast as it can.
        "--fetches-per-minute",
        "1000000",
        "--segment-kb",
        "64",
    ];
    let mut relay = Relay::start(dir.path(), &args);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let alice = register_and_login(&http, &relay, "alice").await;
    let bob = register_and_login(&http, &relay, "bob").await;
    let envelopes: Vec<Value> = (0..TOTAL).map(|i| envelope("bob", &i.to_le_bytes())).collect();
    let ids: Vec<String> = envelopes.iter().map(|e| e["id"].to_string()).collect();

    let (sender, accepted) = send_all(&http, &relay.base, &alice, Arc::new(envelopes), 1);
    let read = Arc::new(Mutex::new(HashSet::new()));
    let reader = {
        let (http, base, bob, read) = (http.clone(), relay.base.clone(), bob.clone(), read.clone());
        tokio::spawn(async move {
            let mut after = 0;
            loop {
                let page = http
                    .get(format!("{base}/v1/envelopes?after={after}&limit=200"))
                    .bearer_auth(&bob)
                    .send()
                    .await;
                let Ok(Ok(page)) = (match page {
                    Ok(r) => Ok(r.json::<Value>().await),
                    Err(e) => Err(e),
                }) else {
                    return;
                };
                let batch: Vec<Value> = page["envelopes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["id"].clone())
                    .collect();
                if let Some(cursor) = page["cursor"].as_u64() {
                    after = after.max(cursor);
                }
                let acked = http
                    .post(format!("{base}/v1/envelopes/ack"))
                    .bearer_auth(&bob)
                    .json(&serde_json::json!({ "ids": batch }))
                    .send()
                    .await;
                if acked.is_err() {
                    return;
                }
                read.lock().unwrap().extend(batch.iter().map(|id| id.to_string()));
            }
        })
    };
    while accepted.lock().unwrap().len() < TOTAL * 6 / 10 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mailbox = dir.path().join("store/mailbox");
    let count = |suffix: &str| {
        std::fs::read_dir(&mailbox)
            .unwrap()
            .filter(|f| f.as_ref().unwrap().file_name().to_str().unwrap().ends_with(suffix))
            .count()
    };
    relay.child.kill().unwrap(); // SIGKILL
    relay.child.wait().unwrap();
    for t in sender {
        t.await.unwrap();
    }
    reader.await.unwrap();
    let accepted_before: Vec<String> = accepted.lock().unwrap().clone();
    let read_before: HashSet<String> = read.lock().unwrap().clone();
    assert!(accepted_before.len() < TOTAL, "the kill came too late to test anything");
    assert!(count(".run") > 0, "no segment was retired before the kill");

    let relay = Relay::start(dir.path(), &args);
    let waiting = waiting_ids(&http, &relay, &bob).await;
    let unique: HashSet<&String> = waiting.iter().collect();
    assert_eq!(unique.len(), waiting.len(), "an envelope is waiting twice");
    let metrics = http
        .get(relay.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let waiting_gauge = format!("magpie_mailbox_waiting_envelopes {}", waiting.len());
    assert!(
        metrics.contains(&waiting_gauge),
        "{waiting_gauge} missing from\n{metrics}"
    );
    let lost = accepted_before
        .iter()
        .filter(|id| !read_before.contains(*id) && !unique.contains(id))
        .count();
    assert_eq!(
        lost,
        0,
        "{lost} of {} accepted envelopes neither read nor waiting",
        accepted_before.len()
    );
    // Acks need no durability (a lost one only brings a duplicate the client drops), so some read before the kill
    // may wait again; never one that was not sent.
    assert!(waiting.iter().all(|id| ids.contains(id)));
    eprintln!(
        "kill -9 after {} accepted, {} read: {} waiting after the restart ({} of them read before), {} segments, {} id runs",
        accepted_before.len(),
        read_before.len(),
        waiting.len(),
        waiting.iter().filter(|id| read_before.contains(*id)).count(),
        count(".log"),
        count(".run")
    );
    let status = relay.sigterm();
    assert!(status.success(), "graceful SIGTERM exit: {status:?}");
}

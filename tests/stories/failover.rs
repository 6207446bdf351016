//! Three relays on one PostgreSQL database behind nginx (Debian's, configured with the README's snippet), as
//! operators run them. Alice and Bob, connected through nginx, keep writing to each other while the relay holding
//! their push sockets is killed with SIGKILL; they reconnect through nginx to the others, and every message,
//! above all every one a relay had acknowledged, arrives exactly once and in order.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use magpie_core::engine::{Event, MessageView};
use magpie_core::history::{Delivery, Direction};
use magpie_core::Client;

use crate::binaries::binary;
use crate::chat::wait_until_all_delivered;
use crate::common::{go_online, handshake, logs, wait_for, Person, PATIENCE};

const EACH_WAY: usize = 300;
/// Behind a proxy every request comes from the proxy's address: `/metrics` needs a token.
const METRICS_TOKEN: &str = "failover-story-metrics";
/// The relay is killed once Bob has this many of Alice's messages.
const KILL_AT: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_behind_nginx_lose_nothing_when_their_relay_is_killed() {
    logs();
    let Some(database) = magpie_tests::pg::fresh_database().await else {
        return;
    };
    let Some(nginx_bin) = nginx_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Node> = (0..3)
        .map(|i| tokio::task::block_in_place(|| Node::start(&database, &dir.path().join(format!("node{i}")))))
        .collect();
    let nginx = tokio::task::block_in_place(|| Nginx::start(&nginx_bin, &dir.path().join("nginx"), &nodes));

    let alice = Person::register("alice", &nginx.url()).await;
    let bob = Person::register("bob", &nginx.url()).await;
    drop(go_online(&alice.client));
    drop(go_online(&bob.client));
    handshake(&alice.client, &bob.client).await;
    let sockets = wait_for_sockets(&nodes, 2).await;
    // The relay with the most of their sockets (both, or one of them) is the one to go.
    let victim = (0..nodes.len()).max_by_key(|&i| sockets[i]).unwrap();
    println!(
        "push sockets per relay before the kill: {sockets:?}; killing relay {}",
        victim + 1
    );

    let (a, b) = (alice.client.clone(), bob.client.clone());
    let (mut alice_events, mut bob_events) = (a.events(), b.events());
    let writing = [
        write(&a, b.username(), "from alice"),
        write(&b, a.username(), "from bob"),
    ];
    let bob_receiving = tokio::spawn(async move {
        let first = receive(&mut bob_events, KILL_AT).await;
        (first, bob_events)
    });
    let (mut got_by_bob, mut bob_events) = bob_receiving.await.unwrap();
    let acknowledged_before = acknowledged(&a, b.username())
        .union(&acknowledged(&b, a.username()))
        .copied()
        .collect::<HashSet<_>>();
    tokio::task::block_in_place(|| nodes[victim].kill());
    println!(
        "killed relay {} with {} messages acknowledged by the relays",
        victim + 1,
        acknowledged_before.len()
    );

    let (rest, got_by_alice) = tokio::join!(
        receive(&mut bob_events, EACH_WAY - KILL_AT),
        receive(&mut alice_events, EACH_WAY)
    );
    got_by_bob.extend(rest);
    for task in writing {
        task.await.unwrap();
    }
    assert_exactly_once_in_order(&got_by_bob, "from alice");
    assert_exactly_once_in_order(&got_by_alice, "from bob");
    let received: HashSet<uuid::Uuid> = got_by_bob.iter().chain(&got_by_alice).map(|m| m.id).collect();
    assert!(
        !acknowledged_before.is_empty(),
        "the kill came before any message was acknowledged"
    );
    assert!(
        acknowledged_before.is_subset(&received),
        "a message a relay acknowledged was lost"
    );
    for (client, peer) in [(&a, b.username()), (&b, a.username())] {
        wait_until_all_delivered(client, peer).await;
    }
    // Nothing arrives twice later either: a retried envelope is the same envelope, on any relay.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for events in [&mut alice_events, &mut bob_events] {
        while let Ok(event) = events.try_recv() {
            assert!(
                !matches!(event, Event::MessageReceived { .. }),
                "a message arrived twice: {event:?}"
            );
        }
    }
    // Both clients are connected again, through nginx, to the relays still running.
    let after = wait_for_sockets(&nodes, 2).await;
    assert_eq!(after[victim], 0);
    let http = reqwest::Client::new();
    let mut retried = 0;
    for node in nodes.iter().filter(|n| n.alive()) {
        retried += node.metric(&http, "magpie_envelopes_duplicate_total").await;
    }
    println!(
        "push sockets per relay after: {after:?}; {EACH_WAY} messages each way, {} acknowledged before the kill, \
         {retried} envelopes sent again and recognised, none lost or doubled",
        acknowledged_before.len()
    );
    drop(nginx);
}

/// Sends `tag 0`, `tag 1`, … to `peer`, one every 10 ms, as a person typing fast would.
fn write(from: &Client, peer: &magpie_proto::Username, tag: &'static str) -> tokio::task::JoinHandle<()> {
    let (from, peer) = (from.clone(), peer.clone());
    tokio::spawn(async move {
        for i in 0..EACH_WAY {
            from.send_text(&peer, &format!("{tag} {i}")).unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
}

async fn receive(events: &mut tokio::sync::broadcast::Receiver<Event>, n: usize) -> Vec<MessageView> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        got.push(
            wait_for(events, |e| match e {
                Event::MessageReceived { message } => Some(message.clone()),
                _ => None,
            })
            .await,
        );
    }
    got
}

fn assert_exactly_once_in_order(messages: &[MessageView], tag: &str) {
    let bodies: Vec<&str> = messages.iter().map(|m| m.body.as_str()).collect();
    let expected: Vec<String> = (0..EACH_WAY).map(|i| format!("{tag} {i}")).collect();
    assert_eq!(bodies, expected);
}

/// The ids of `client`'s messages to `peer` that a relay has acknowledged (sent or delivered).
fn acknowledged(client: &Client, peer: &magpie_proto::Username) -> HashSet<uuid::Uuid> {
    client
        .last_messages(peer, usize::MAX)
        .unwrap()
        .into_iter()
        .filter(|e| e.message.direction == Direction::Outgoing)
        .filter(|e| matches!(e.message.delivery, Delivery::Sent | Delivery::Delivered))
        .map(|e| e.message.id)
        .collect()
}

/// Open push sockets on each running relay, once they add up to `expected`.
async fn wait_for_sockets(nodes: &[Node], expected: u64) -> Vec<u64> {
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut sockets = Vec::new();
        for node in nodes {
            sockets.push(match node.alive() {
                true => node.push_connections(&http).await,
                false => 0,
            });
        }
        if sockets.iter().sum::<u64>() == expected {
            return sockets;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "push sockets per relay: {sockets:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// nginx from Debian's package (`scripts/setup-linux.sh --test` installs it); `None`, with a notice, on a
/// developer's machine without it, and a failure under CI.
fn nginx_binary() -> Option<PathBuf> {
    let found = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var("CI").is_err(),
            "CI runs the failover story: install nginx-light"
        );
        eprintln!("no nginx: the failover story did not run (bash scripts/setup-linux.sh --test installs it)");
    }
    found
}

/// A `magpie-relay` process on `database`, on an ephemeral loopback port, told to believe nginx's
/// `X-Forwarded-For` as the README's node command does. Killed when dropped.
struct Node {
    child: Child,
    port: u16,
}

impl Node {
    fn start(database: &str, dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let log = dir.join("relay.log");
        let child = Command::new(binary("magpie-relay", "magpie-relay"))
            .args(["--data", dir.join("data").to_str().unwrap(), "--listen", "127.0.0.1:0"])
            .args(["--database", database, "--client-ip-header", "X-Forwarded-For"])
            .args(["--metrics-token", METRICS_TOKEN])
            .env("RUST_LOG", "warn,magpie_relay=info")
            .stderr(std::fs::File::create(&log).unwrap())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        // Killed by its drop if it never says where it listens.
        let mut node = Self { child, port: 0 };
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.contains("magpie-relay listening")) {
                let addr = line.split("listen=").nth(1).unwrap().split_whitespace().next().unwrap();
                node.port = addr.rsplit(':').next().unwrap().parse().unwrap();
                return node;
            }
            assert!(std::time::Instant::now() < deadline, "relay did not start: {text}");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn alive(&self) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
    }

    async fn push_connections(&self, http: &reqwest::Client) -> u64 {
        self.metric(http, "magpie_push_connections").await
    }

    /// One of the relay's `/metrics` (the counters and gauges are whole numbers).
    async fn metric(&self, http: &reqwest::Client, name: &str) -> u64 {
        let metrics = http
            .get(format!("http://127.0.0.1:{}/metrics", self.port))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name}"))
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx in the foreground, serving the README's "Running several relays" snippet with its upstream list and
/// `listen` line pointed at `nodes` and a loopback port. Stopped when dropped.
struct Nginx {
    child: Child,
    port: u16,
}

impl Nginx {
    fn start(bin: &Path, dir: &Path, nodes: &[Node]) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let servers: String = nodes.iter().map(|n| format!("server 127.0.0.1:{}; ", n.port)).collect();
        let site = readme_nginx_snippet()
            .lines()
            .map(|line| {
                if line.starts_with("upstream magpie {") {
                    format!("upstream magpie {{ {servers}}}")
                } else if line.trim_start().starts_with("listen 443 ssl;") {
                    format!("    listen 127.0.0.1:{port};")
                } else {
                    line.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            site.contains(&servers) && site.contains(&format!("listen 127.0.0.1:{port};")),
            "{site}"
        );
        let d = dir.display();
        let config = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n{site}\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), config).unwrap();
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let nginx = Self { child, port };
        let deadline = std::time::Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
            assert!(std::time::Instant::now() < deadline, "nginx did not start: {log}");
            std::thread::sleep(Duration::from_millis(25));
        }
        nginx
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The nginx block of the README's "Running several relays".
fn readme_nginx_snippet() -> String {
    let readme = include_str!("../../README.md");
    let section = &readme[readme.find("### Running several relays").unwrap()..];
    let start = section.find("```nginx\n").unwrap() + "```nginx\n".len();
    let end = start + section[start..].find("```").unwrap();
    section[start..end].to_owned()
}

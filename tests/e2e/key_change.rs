//! A key change through a relay that lies: the desktop onboards on a remote relay (the lying-relay example),
//! confirms its CA, and chats with someone at a terminal. Then the relay restarts with its directory answering
//! for that person with a key its own CA certified for someone else. The desktop checks its contacts' keys after
//! reconnecting: the conversation warns, the chat row is marked, and sending pauses.

use std::fs::OpenOptions;
use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::key::Key;
use fantoccini::Client;
use tempfile::TempDir;

use crate::onboarding;
use crate::terminal::Terminal;
use crate::window::{
    click, content_of, element, eventually, free_port, gone, picture, present, text_of, type_into, WAIT,
};

/// Who the relay lies about: the person at the terminal.
pub const VICTIM: &str = "frank";
/// Reconnecting follows a backoff, and the relay makes an RSA key when it starts: allow more than one wait.
const RECONNECT_PATIENCE: Duration = Duration::from_secs(60);

/// Builds an example of `package` (a no-op when fresh) and returns its path: target/<profile>/examples/`example`.
pub fn example(package: &str, example: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", package, "--example", example])
        .status()
        .unwrap();
    assert!(status.success(), "building the {example} example failed");
    // This test runs from target/<profile>/deps/.
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join("examples").join(example);
    assert!(path.exists(), "{} missing", path.display());
    path
}

/// The lying relay as a process of its own, on a data folder and port it keeps across restarts (so its CA and its
/// users stay the same). Stopped when dropped.
pub struct LyingRelay {
    exe: PathBuf,
    dir: TempDir,
    port: u16,
    child: Option<Child>,
    /// Its URL and CA fingerprint (hex), as it printed them.
    pub url: String,
    pub ca: String,
}

impl LyingRelay {
    /// Builds the example and starts it on a fresh folder and a free port.
    pub async fn start() -> Self {
        let exe = tokio::task::spawn_blocking(|| example("magpie-relay", "lying_relay"))
            .await
            .unwrap();
        let mut relay = Self {
            exe,
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            child: None,
            url: String::new(),
            ca: String::new(),
        };
        relay.spawn().await;
        relay
    }

    /// While this file exists, the directory lies about [`VICTIM`].
    pub fn swap_file(&self) -> PathBuf {
        self.dir.path().join("swap")
    }

    /// While this file exists, the relay flips a bit in every message it stores.
    pub fn tamper_file(&self) -> PathBuf {
        self.dir.path().join("tamper")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("relay.log")
    }

    /// Starts the process and waits for its "listening" line.
    async fn spawn(&mut self) {
        let exe = self.exe.clone();
        let data = self.dir.path().join("data");
        let listen = format!("127.0.0.1:{}", self.port);
        let files = [self.swap_file(), self.tamper_file()];
        let log = self.log();
        let (child, url, ca) =
            tokio::task::spawn_blocking(move || spawn_lying_relay(&exe, &data, &listen, &files, &log))
                .await
                .unwrap();
        self.child = Some(child);
        self.url = url;
        self.ca = ca;
    }

    /// Stops the process (Ctrl-C, as an operator would; killed if it does not end) and starts it again on the
    /// same folder and port: every client connected to it loses the connection and reconnects.
    pub async fn restart(&mut self) {
        let before = (self.url.clone(), self.ca.clone());
        if let Some(child) = self.child.take() {
            tokio::task::spawn_blocking(move || stop(child)).await.unwrap();
        }
        self.spawn().await;
        assert_eq!(
            (self.url.clone(), self.ca.clone()),
            before,
            "the same relay again: same address, same CA"
        );
    }
}

impl Drop for LyingRelay {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs the example until it prints `lying relay listening on URL ca HEX`; a port still held by the previous run
/// is tried again for a while.
fn spawn_lying_relay(
    exe: &Path,
    data: &Path,
    listen: &str,
    files: &[PathBuf; 2],
    log: &Path,
) -> (Child, String, String) {
    let [swap, tamper] = files;
    let deadline = Instant::now() + WAIT;
    loop {
        let stderr = OpenOptions::new().create(true).append(true).open(log).unwrap();
        let mut child = Command::new(exe)
            .arg("--data")
            .arg(data)
            .args(["--listen", listen, "--victim", VICTIM, "--swap-file"])
            .arg(swap)
            .arg("--tamper-file")
            .arg(tamper)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (line_tx, line_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = line_tx.send(line);
            // Keep reading, so a later line never meets a closed pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = line_rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_default();
        if let Some(rest) = line.trim().strip_prefix("lying relay listening on ") {
            let (url, ca) = rest
                .split_once(" ca ")
                .unwrap_or_else(|| panic!("unexpected line from the lying relay: {line:?}"));
            return (child, url.to_owned(), ca.to_owned());
        }
        let _ = child.kill();
        let _ = child.wait();
        let mut output = String::new();
        let _ = std::fs::File::open(log).and_then(|mut f| f.read_to_string(&mut output));
        let port_busy = output.contains("in use");
        assert!(
            port_busy && Instant::now() < deadline,
            "the lying relay did not start on {listen} (said {line:?}); its log:\n{output}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Ctrl-C, then a kill if it has not ended within a few seconds.
fn stop(mut child: Child) {
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("the lying relay did not stop on Ctrl-C: killing it");
    let _ = child.kill();
    let _ = child.wait();
}

/// Onboards `me` on `relay` (checking the CA it shows against the one the relay printed), starts a chat with the
/// terminal's user and completes it; then makes the relay lie and restarts it.
pub async fn through_a_lying_relay(client: &Client, me: &str, relay: &mut LyingRelay, them: &Terminal) {
    // Onboarding on "A relay on the network": the fingerprint shown is the relay's, and must be confirmed.
    element(client, "onboarding-username").await;
    type_into(client, "onboarding-username", me).await;
    click(client, "onboarding-relay-remote").await;
    let url_field = element(client, "onboarding-relay-url").await;
    url_field.clear().await.unwrap();
    // Typed the way people do, without a trailing slash (the backend answers with "http://host:port/").
    type_into(client, "onboarding-relay-url", relay.url.trim_end_matches('/')).await;
    click(client, "onboarding-check-relay").await;
    let shown = text_of(client, "onboarding-ca-fingerprint").await;
    assert_eq!(
        shown.split_whitespace().collect::<String>(),
        relay.ca,
        "the window shows the CA fingerprint the relay printed: {shown:?}"
    );
    assert!(
        shown.split_whitespace().all(|group| group.len() == 4),
        "shown in groups of four: {shown:?}"
    );
    click(client, "onboarding-confirm-ca").await;
    assert!(element(client, "onboarding-confirm-ca")
        .await
        .is_selected()
        .await
        .unwrap());
    picture(client, "onboarding-remote-relay.png").await;
    click(client, "onboarding-create").await;
    let done = text_of(client, "onboarding-done").await;
    assert!(done.contains(&format!("Registered with {}", relay.url)), "{done:?}");
    onboarding::start_chatting(client, me).await;

    // The terminal's user registers on the same relay; the window asks them for a chat.
    let registered = them.ok(&["--relay", &relay.url, "register", VICTIM]).await;
    assert!(
        registered.contains(&format!("Registered {VICTIM} with")),
        "{registered}"
    );
    type_into(client, "new-chat-input", &format!("{VICTIM}{}", char::from(Key::Enter))).await;
    let waiting = text_of(client, &format!("outgoing-{VICTIM}")).await;
    assert!(waiting.contains(&format!("Waiting for {VICTIM}")), "{waiting:?}");

    eventually("the window's request at the terminal", WAIT, || async {
        let requests = them.ok(&["requests"]).await;
        requests.contains(&format!("{me} asks to chat")).then_some(())
    })
    .await;
    let accepted = them.ok(&["accept", me]).await;
    assert!(accepted.starts_with(&format!("Accepted {me}'s request")), "{accepted}");
    // The window (online) answers the accept by itself; the terminal finishes the handshake when it syncs.
    let row = format!("chat-row-{VICTIM}");
    eventually("the chat to have a session in the window", WAIT, || async {
        them.ok(&["sync"]).await;
        if !present(client, &row).await {
            return None;
        }
        let shown = content_of(client, &row).await;
        (!shown.contains("Setting up keys")).then_some(())
    })
    .await;
    gone(
        client,
        &format!("outgoing-{VICTIM}"),
        "the sent request to leave the list",
    )
    .await;
    click(client, &row).await;
    assert_eq!(content_of(client, "conversation-peer").await, VICTIM);
    assert_eq!(text_of(client, "verification-badge").await, "Not verified");
    assert!(!present(client, "key-change-banner").await);
    assert!(
        element(client, "compose-input").await.is_enabled().await.unwrap(),
        "the chat is open for writing"
    );

    // The relay flips a bit in a message from the terminal: the window discards it, and says so in the chat.
    std::fs::write(relay.tamper_file(), b"tamper\n").unwrap();
    them.ok(&["send", me, "this one is tampered with on the way"]).await;
    let notice = eventually("the security notice in the chat", WAIT, || async {
        if present(client, "security-notice").await {
            Some(text_of(client, "security-notice-text").await)
        } else {
            None
        }
    })
    .await;
    assert_eq!(
        notice,
        format!("A message from {VICTIM} could not be verified and was discarded.")
    );
    assert!(
        !content_of(client, "conversation")
            .await
            .contains("tampered with on the way"),
        "nothing of it is shown"
    );
    picture(client, "security-notice.png").await;
    std::fs::remove_file(relay.tamper_file()).unwrap();
    click(client, "security-notice-dismiss").await;
    gone(client, "security-notice", "the security notice to be dismissed").await;

    // The relay now answers for the terminal's user with another key, and restarts: the window reconnects and
    // checks its contacts' keys in the directory again.
    std::fs::write(relay.swap_file(), b"lie\n").unwrap();
    relay.restart().await;

    let banner = eventually(
        "the key-change warning after reconnecting",
        RECONNECT_PATIENCE,
        || async {
            if present(client, "key-change-banner").await {
                Some(text_of(client, "key-change-banner").await)
            } else {
                None
            }
        },
    )
    .await;
    assert!(
        banner.contains(&format!("{VICTIM}'s security key changed.")),
        "{banner:?}"
    );
    assert!(
        banner.contains(&format!(
            "This can mean {VICTIM} reinstalled Magpie — or that someone is intercepting."
        )),
        "{banner:?}"
    );
    assert!(
        banner.contains("Compare safety numbers before you continue."),
        "{banner:?}"
    );
    element(client, "compare-safety-numbers").await;
    element(client, "accept-new-key").await;
    // The banner names the key "Accept new key" would take; the dialog shows that same key with its number.
    let new_key = text_of(client, "new-key-fingerprint").await;
    assert_eq!(new_key.split_whitespace().count(), 4, "{new_key:?}");
    assert_eq!(text_of(client, "verification-badge").await, "Key changed");
    let badge = content_of(client, &format!("key-changed-{VICTIM}")).await;
    assert_eq!(badge, "Key changed", "the chat row is marked");
    let composer = element(client, "compose-input").await;
    assert!(!composer.is_enabled().await.unwrap(), "sending is paused");
    assert_eq!(
        text_of(client, "compose-disabled-reason").await,
        format!("Sending is paused until you accept {VICTIM}'s new key or verify again")
    );
    // The connection is back, so the reason is the key, not the network.
    let state = element(client, "connection-state").await;
    eventually("the connection dot to be online again", WAIT, || async {
        (state.attr("data-state").await.unwrap().as_deref() == Some("online")).then_some(())
    })
    .await;
    picture(client, "key-change.png").await;

    // The safety number offered is the new key's, with a note that says so.
    click(client, "compare-safety-numbers").await;
    element(client, "safety-digits").await;
    let dialog = text_of(client, "safety-dialog").await;
    assert!(
        dialog.contains(&format!(
            "This is the number of the new key. {VICTIM}'s key changed: compare it before you trust it."
        )),
        "{dialog:?}"
    );
    let dialog_key = text_of(client, "safety-fingerprint").await;
    assert!(dialog_key.starts_with(&new_key), "{dialog_key:?} vs {new_key:?}");
    element(client, "safety-qr").await;
    picture(client, "key-change-safety-number.png").await;
    click(client, "safety-close").await;
    gone(client, "safety-dialog", "the safety number to close").await;
    // Nothing was accepted: the warning stays.
    assert!(present(client, "key-change-banner").await);
}

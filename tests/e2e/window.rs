//! The app's real window through tauri-driver: finding elements by `data-testid`, waiting for what the UI shows,
//! screenshots, and the evidence a failure leaves behind.

use std::future::Future;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use tempfile::TempDir;

/// How long the window may take to show one thing (generous: CI machines are slow, and key generation is real).
pub const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(250);

pub fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run this through `bash tests/e2e/run.sh`"))
}

/// One window at a time: the app is single-instance, so a second one would only focus the first.
static ONE_APP: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The app in a WebDriver session, started with an environment of its own.
pub struct App {
    pub client: Client,
    /// The process id the launcher wrote (the launcher `exec`s the app, so it is the app's).
    pid_file: PathBuf,
    _launcher: TempDir,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

/// WebKitGTK's switch to its software path (see src-tauri/src/rendering.rs).
pub const COMPOSITING_ENV: &str = "WEBKIT_DISABLE_COMPOSITING_MODE";

/// Starts the app through tauri-driver, waiting for any earlier app to have ended. The app gets tauri-driver's
/// environment (run.sh's `MAGPIE_DATA_DIR` and `MAGPIE_LOCAL_RELAY_PORT`), with `env` on top: tauri-driver
/// passes no environment of a session's own, so the session starts a small launcher script that sets it and
/// `exec`s the app.
pub async fn launch_app(env: &[(&str, &str)]) -> App {
    let turn = ONE_APP.lock().await;
    let application = required_env("MAGPIE_E2E_APP");
    let driver = std::env::var("MAGPIE_E2E_DRIVER").unwrap_or_else(|_| "http://127.0.0.1:4444".to_owned());
    let launcher = tempfile::tempdir().unwrap();
    let pid_file = launcher.path().join("app.pid");
    let script = launcher.path().join("magpie-desktop");
    let quoted = |value: &str| {
        assert!(!value.contains('\''), "no quotes in the launcher: {value}");
        format!("'{value}'")
    };
    let mut text = format!("#!/bin/sh\necho $$ > {}\n", quoted(&pid_file.to_string_lossy()));
    if !env.iter().any(|(name, _)| *name == COMPOSITING_ENV) {
        // Composited, unless a story asks otherwise: WebKitGTK's automation never answers a screenshot on its
        // software path, which the app chooses without a GPU (as here). One story covers that path.
        text.push_str(&format!("export {COMPOSITING_ENV}=0\n"));
    }
    for (name, value) in env {
        text.push_str(&format!("export {name}={}\n", quoted(value)));
    }
    text.push_str(&format!("exec {} \"$@\"\n", quoted(&application)));
    std::fs::write(&script, text).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();

    let capabilities = serde_json::json!({ "tauri:options": { "application": script } });
    let serde_json::Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    let client = ClientBuilder::native()
        .capabilities(capabilities)
        .connect(&driver)
        .await
        .expect("tauri-driver accepts a session");
    App {
        client,
        pid_file,
        _launcher: launcher,
        _turn: turn,
    }
}

impl App {
    /// Ends the session and waits until the app's process is gone, so the next app can start.
    pub async fn close(self) {
        let closed = self.client.clone().close().await;
        let pid = std::fs::read_to_string(&self.pid_file)
            .ok()
            .and_then(|pid| pid.trim().parse::<u32>().ok());
        if let Some(pid) = pid {
            let deadline = tokio::time::Instant::now() + WAIT;
            while running(pid) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(POLL).await;
            }
            if running(pid) {
                eprintln!("the app (pid {pid}) did not exit within {WAIT:?} of the session's end: killing it");
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
        closed.unwrap();
    }
}

/// Whether process `pid` still runs (a zombie has ended; its parent just has not reaped it yet).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// Runs `story` against a freshly launched app: on a failure, leaves target/e2e/failure-`name`.png and the
/// page's text; either way ends the app before returning (or passing the failure on).
pub async fn with_app<F, Fut>(name: &str, env: &[(&str, &str)], story: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let app = launch_app(env).await;
    let outcome = tokio::spawn(story(app.client.clone())).await;
    if outcome.is_err() {
        leave_evidence(&app.client, name).await;
    }
    app.close().await;
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

/// A data folder and an embedded-relay port of a story's own, as the app's environment; the folder goes when
/// this is dropped.
pub struct OwnData {
    _scratch: tempfile::TempDir,
    data_dir: String,
    port: String,
}

impl OwnData {
    pub fn new() -> Self {
        let scratch = tempfile::tempdir().unwrap();
        let data_dir = scratch.path().join("data").to_str().unwrap().to_owned();
        Self {
            _scratch: scratch,
            data_dir,
            port: free_port().to_string(),
        }
    }

    /// The embedded relay's address.
    pub fn relay_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn data_dir(&self) -> &str {
        &self.data_dir
    }

    pub fn env(&self) -> [(&str, &str); 2] {
        [
            ("MAGPIE_DATA_DIR", self.data_dir.as_str()),
            ("MAGPIE_LOCAL_RELAY_PORT", self.port.as_str()),
        ]
    }
}

/// A loopback port nobody listens on now (the kernel just handed it out, so it is almost surely still free).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn by_id(test_id: &str) -> String {
    format!("[data-testid=\"{test_id}\"]")
}

/// Waits for the element with `data-testid` = `test_id`.
pub async fn element(client: &Client, test_id: &str) -> Element {
    let selector = by_id(test_id);
    client
        .wait()
        .at_most(WAIT)
        .every(POLL)
        .for_element(Locator::Css(&selector))
        .await
        .unwrap_or_else(|error| panic!("{selector} did not appear within {WAIT:?} ({error})"))
}

/// The text of the element with `data-testid` = `test_id`, once it is there.
pub async fn text_of(client: &Client, test_id: &str) -> String {
    element(client, test_id).await.text().await.unwrap()
}

/// The text in the element's DOM, whitespace collapsed. For text that is shown but clipped with an ellipsis
/// (`overflow: hidden` in a flex item): WebDriver's visible-text rule gives "" for it in WebKitWebDriver.
pub async fn content_of(client: &Client, test_id: &str) -> String {
    let content = element(client, test_id).await.prop("textContent").await.unwrap();
    content
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

pub async fn click(client: &Client, test_id: &str) {
    element(client, test_id).await.click().await.unwrap();
}

/// Clicks into the field and types `text` (a key at a time, as a person would).
pub async fn type_into(client: &Client, test_id: &str, text: &str) {
    let field = element(client, test_id).await;
    field.click().await.unwrap();
    field.send_keys(text).await.unwrap();
}

/// Whether an element with `data-testid` = `test_id` is in the page now (no waiting).
pub async fn present(client: &Client, test_id: &str) -> bool {
    match client.find_all(Locator::Css(&by_id(test_id))).await {
        Ok(found) => !found.is_empty(),
        // It went while being looked at (WebKitWebDriver reports that as stale): say so at the next look.
        Err(fantoccini::error::CmdError::Standard(e))
            if e.error == fantoccini::error::ErrorStatus::StaleElementReference =>
        {
            true
        }
        Err(other) => panic!("looking for {test_id}: {other}"),
    }
}

/// Waits until no element with `data-testid` = `test_id` is left (a dialog closed, a request answered).
pub async fn gone(client: &Client, test_id: &str, what: &str) {
    eventually(what, WAIT, || async { (!present(client, test_id).await).then_some(()) }).await;
}

/// Polls `check` until it gives a value, for at most `patience`; `what` says what was awaited when it never came.
pub async fn eventually<T, F, Fut>(what: &str, patience: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "waited {patience:?} for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until nothing moves: no finite animation running, and no scroll position changing between two looks (a
/// smooth scroll is under way). Screenshots then show where a transition ended, not its middle.
pub async fn settled(client: &Client) {
    let script = r#"
        const moving = document.getAnimations().filter((a) =>
            a.playState === 'running' && a.effect?.getComputedTiming().iterations !== Infinity).length;
        const scrolled = [...document.querySelectorAll('*')]
            .filter((e) => e.scrollHeight > e.clientHeight || e.scrollWidth > e.clientWidth)
            .map((e) => `${e.scrollTop},${e.scrollLeft}`)
            .join(';');
        return `${moving}|${scrolled}`;
    "#;
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut last = String::new();
    loop {
        let now = client.execute(script, vec![]).await.unwrap();
        let now = now.as_str().unwrap_or_default().to_owned();
        if now.starts_with("0|") && now == last {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the window still moved after {WAIT:?}: {now}"
        );
        last = now;
        tokio::time::sleep(POLL).await;
    }
}

/// Scrolls the element with `data-testid` = `test_id` into its scroll container's view, at once.
pub async fn scroll_into_view(client: &Client, test_id: &str) {
    element(client, test_id).await;
    let script = "document.querySelector(arguments[0]).scrollIntoView({ block: 'nearest', behavior: 'instant' });";
    client
        .execute(script, vec![serde_json::Value::String(by_id(test_id))])
        .await
        .unwrap();
}

/// All text the page shows (what a failure report prints).
pub async fn page_text(client: &Client) -> String {
    match client.find(Locator::Css("body")).await {
        Ok(body) => body.text().await.unwrap_or_else(|e| format!("(no text: {e})")),
        Err(error) => format!("(no body: {error})"),
    }
}

/// target/e2e/ of the workspace (run.sh empties it before each run).
fn shots_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("target/e2e")
}

/// Saves a screenshot of the window as target/e2e/`name`.
pub async fn screenshot(client: &Client, name: &str) -> PathBuf {
    // The DOM can be ahead of the pixels: wait two frames so the picture shows what the assertions saw.
    let two_frames = "const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(() => done()));";
    client.execute_async(two_frames, vec![]).await.unwrap();
    let dir = shots_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, client.screenshot().await.unwrap()).unwrap();
    path
}

/// Saves target/e2e/`name` and checks that it is a real picture of the screen.
pub async fn picture(client: &Client, name: &str) {
    assert_picture(&screenshot(client, name).await);
}

fn assert_picture(path: &Path) {
    let bytes = std::fs::metadata(path).unwrap().len();
    // A blank or error page compresses to a few kB; the sparest real screen (the lock screen) to about 19 kB.
    assert!(
        bytes > 12_000,
        "{} is only {bytes} bytes: a blank window?",
        path.display()
    );
    println!("screenshot: {} ({bytes} bytes)", path.display());
}

/// What a failed story leaves behind: target/e2e/failure-`name`.png and the page's text on stderr.
pub async fn leave_evidence(client: &Client, name: &str) {
    // Bounded: on WebKitGTK's software path a screenshot never comes.
    match tokio::time::timeout(Duration::from_secs(10), client.screenshot())
        .await
        .unwrap_or(Err(fantoccini::error::CmdError::WaitTimeout))
    {
        Ok(png) => {
            let dir = shots_dir();
            let path = dir.join(format!("failure-{name}.png"));
            match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, png)) {
                Ok(()) => eprintln!("failure screenshot: {}", path.display()),
                Err(error) => eprintln!("could not save {}: {error}", path.display()),
            }
        }
        Err(error) => eprintln!("no failure screenshot: {error}"),
    }
    eprintln!("--- page text at the failure ---\n{}\n---", page_text(client).await);
}

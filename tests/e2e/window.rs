//! The app's real window through tauri-driver: finding elements by `data-testid`, waiting for what the UI shows,
//! screenshots, and the evidence a failure leaves behind.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};

/// How long the window may take to show one thing (generous: CI machines are slow, and key generation is real).
pub const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(250);

pub fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run this through `bash tests/e2e/run.sh`"))
}

/// Starts the app through tauri-driver (the environment of tauri-driver, e.g. `MAGPIE_DATA_DIR`, is the app's).
pub async fn launch_app() -> Client {
    let application = required_env("MAGPIE_E2E_APP");
    let driver = std::env::var("MAGPIE_E2E_DRIVER").unwrap_or_else(|_| "http://127.0.0.1:4444".to_owned());
    let capabilities = serde_json::json!({ "tauri:options": { "application": application } });
    let serde_json::Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    ClientBuilder::native()
        .capabilities(capabilities)
        .connect(&driver)
        .await
        .expect("tauri-driver accepts a session")
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
    !client.find_all(Locator::Css(&by_id(test_id))).await.unwrap().is_empty()
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
    // A blank or error page compresses to a few kB; the real screen is far larger.
    assert!(
        bytes > 20_000,
        "{} is only {bytes} bytes: a blank window?",
        path.display()
    );
    println!("screenshot: {} ({bytes} bytes)", path.display());
}

/// What a failed run leaves behind: target/e2e/failure.png and the page's text on stderr.
pub async fn leave_evidence(client: &Client) {
    match client.screenshot().await {
        Ok(png) => {
            let dir = shots_dir();
            let path = dir.join("failure.png");
            match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, png)) {
                Ok(()) => eprintln!("failure screenshot: {}", path.display()),
                Err(error) => eprintln!("could not save {}: {error}", path.display()),
            }
        }
        Err(error) => eprintln!("no failure screenshot: {error}"),
    }
    eprintln!("--- page text at the failure ---\n{}\n---", page_text(client).await);
}

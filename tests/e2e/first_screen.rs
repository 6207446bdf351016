//! Drives the real Magpie window through tauri-driver and WebKitWebDriver.
//! Run with `npm run test:e2e`, which builds the app and starts Xvfb, D-Bus, gnome-keyring and tauri-driver.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

const WAIT: Duration = Duration::from_secs(20);

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run this through `npm run test:e2e`"))
}

async fn launch_app() -> Client {
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

async fn text_of(client: &Client, test_id: &str) -> String {
    let selector = format!("[data-testid={test_id}]");
    match client.wait().at_most(WAIT).for_element(Locator::Css(&selector)).await {
        Ok(element) => element.text().await.unwrap(),
        Err(error) => {
            // Leave evidence: what the window showed when the element never came.
            let shot = screenshot(client, "failure.png").await;
            let body = client.find(Locator::Css("body")).await.unwrap().text().await.unwrap();
            panic!(
                "{selector} did not appear ({error}); screenshot {}; page text:\n{body}",
                shot.display()
            );
        }
    }
}

async fn screenshot(client: &Client, name: &str) -> PathBuf {
    // The DOM can be ahead of the pixels: wait two frames so the picture shows what the assertions saw.
    let two_frames = "const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(() => done()));";
    client.execute_async(two_frames, vec![]).await.unwrap();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/e2e");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, client.screenshot().await.unwrap()).unwrap();
    path
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

#[tokio::test(flavor = "current_thread")]
async fn first_screen_shows_what_rust_answered() {
    let expected_data_dir = required_env("MAGPIE_DATA_DIR");
    let client = launch_app().await;

    // The empty state reports the credential store that Rust probed: the real Secret Service, unlocked.
    let backend = text_of(&client, "credential-backend").await;
    assert!(
        backend.starts_with("Secret Service"),
        "credential store shown: {backend:?}"
    );
    assert_picture(&screenshot(&client, "first-screen.png").await);

    client
        .find(Locator::Css("[data-testid=about-button]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(text_of(&client, "about-version").await, env!("CARGO_PKG_VERSION"));
    // Only the Rust side knows this folder: it came from the environment the app was started in.
    assert_eq!(text_of(&client, "about-data-dir").await, expected_data_dir);
    let store = text_of(&client, "about-credential-store").await;
    assert!(
        store.contains("available") && !store.contains("not available"),
        "{store:?}"
    );
    assert_picture(&screenshot(&client, "about.png").await);

    client
        .find(Locator::Css("[data-testid=about-close]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let dialogs = client
        .find_all(Locator::Css("[data-testid=about-dialog]"))
        .await
        .unwrap();
    assert!(dialogs.is_empty(), "About stays open after Close");

    client.close().await.unwrap();
}

//! axe-core against the real window: each screen's findings saved as target/e2e/axe-<screen>.json (axe's own JSON)
//! and none serious or critical allowed.

use fantoccini::Client;
use serde_json::Value;

/// axe-core as npm installed it for the repository.
fn axe_source() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("axe-core is not installed ({path}: {e}); run npm ci"))
}

/// Runs axe-core on the page as it is, saves its results, and fails on a serious or critical violation.
pub async fn check(client: &Client, screen: &str) {
    let script = format!(
        "{}\nconst done = arguments[0];\naxe.run(document, {{ resultTypes: ['violations'] }}).then((r) => done(JSON.stringify(r)), (e) => done(JSON.stringify({{ error: String(e) }})));",
        axe_source()
    );
    let answer = client.execute_async(&script, vec![]).await.unwrap();
    let text = answer.as_str().unwrap_or_default().to_owned();
    let results: Value = serde_json::from_str(&text).unwrap();
    assert!(results.get("error").is_none(), "axe-core failed on {screen}: {text}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/e2e");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("axe-{screen}.json")),
        serde_json::to_vec_pretty(&results).unwrap(),
    )
    .unwrap();
    let violations = results["violations"].as_array().cloned().unwrap_or_default();
    let grave: Vec<String> = violations
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .map(|v| {
            let targets: Vec<String> = v["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|n| n["target"].to_string())
                .take(5)
                .collect();
            format!("{} ({}): {} — {}", v["id"], v["impact"], v["help"], targets.join(", "))
        })
        .collect();
    println!(
        "axe {screen}: {} violations, {} serious or critical",
        violations.len(),
        grave.len()
    );
    assert!(grave.is_empty(), "axe-core on {screen}:\n{}", grave.join("\n"));
}

/// Chooses the theme in Settings ("light", "dark" or "system") and closes Settings.
pub async fn choose_theme(client: &Client, theme: &str) {
    use crate::window::{click, element, gone};
    click(client, "settings-button").await;
    let select = element(client, "settings-theme").await;
    select.select_by_value(theme).await.unwrap();
    click(client, "settings-close").await;
    gone(client, "settings-dialog", "Settings to close").await;
    let shown = client
        .execute("return document.documentElement.dataset.theme ?? 'system';", vec![])
        .await
        .unwrap();
    assert_eq!(shown.as_str(), Some(theme), "the window took the theme");
}

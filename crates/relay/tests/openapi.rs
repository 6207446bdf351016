//! The contract, once: the document at `GET /v1/openapi.json` is generated from magpie-api's types and the
//! router's handlers. These tests fail when it drifts from what is committed in `docs/openapi.json` (any change of
//! a route or a type shows up there in review: rerun with `MAGPIE_BLESS=1` to accept it), from what the router
//! serves, from the paths the client calls, or from the routes `docs/PROTOCOL.md` specifies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use axum::http::{Method, StatusCode};
use common::*;
use magpie_api::paths;
use magpie_relay::router;
use serde_json::Value;

fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
}

async fn served_document() -> Value {
    let app = router(memory_state(config()));
    let (status, document) = call(&app, Method::GET, paths::OPENAPI, None, None).await;
    assert_eq!(status, StatusCode::OK);
    document
}

/// Every (method, path) the document describes.
fn operations(document: &Value) -> BTreeSet<(String, String)> {
    document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect()
}

#[tokio::test]
async fn the_served_document_is_the_committed_one() {
    let served = served_document().await;
    let committed_path = repo_file("docs/openapi.json");
    let pretty = serde_json::to_string_pretty(&served).unwrap() + "\n";
    if std::env::var_os("MAGPIE_BLESS").is_some() {
        std::fs::write(&committed_path, &pretty).unwrap();
    }
    let committed: Value = serde_json::from_str(&std::fs::read_to_string(&committed_path).unwrap()).unwrap();
    assert!(
        served == committed,
        "the relay's API changed: review `MAGPIE_BLESS=1 cargo test -p magpie-relay --test openapi` and its diff of \
         docs/openapi.json (and say it in docs/PROTOCOL.md)"
    );
    assert_eq!(served["openapi"], "3.1.0");
}

#[tokio::test]
async fn the_router_serves_every_documented_operation_and_nothing_else() {
    let document = served_document().await;
    let app = router(memory_state(config()));
    for (method, path) in operations(&document) {
        let concrete = path.replace("{username}", "alice");
        let (status, body) = call(
            &app,
            Method::from_bytes(method.as_bytes()).unwrap(),
            &concrete,
            None,
            None,
        )
        .await;
        let no_such_route = body["code"] == "not_found" && body["message"] == "no such route";
        assert!(
            status != StatusCode::METHOD_NOT_ALLOWED && !no_such_route,
            "{method} {path}: {status} {body}"
        );
    }
    // And a method or path outside the document is refused as such, with the JSON error body.
    let (status, body) = call(&app, Method::DELETE, paths::ENVELOPES, None, None).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::METHOD_NOT_ALLOWED, &"method_not_allowed".into())
    );
    let (status, body) = call(&app, Method::GET, "/v1/mailboxes", None, None).await;
    assert_eq!((status, &body["code"]), (StatusCode::NOT_FOUND, &"not_found".into()));
}

#[tokio::test]
async fn every_path_the_client_calls_is_documented() {
    let document = served_document().await;
    let documented: BTreeSet<String> = operations(&document).into_iter().map(|(_, path)| path).collect();
    let called = [
        paths::HEALTH,
        paths::CA,
        paths::OPENAPI,
        paths::METRICS,
        paths::REGISTER,
        paths::LOGIN_CHALLENGE,
        paths::LOGIN,
        paths::ENVELOPES,
        paths::ACK,
        paths::PUSH,
    ];
    for path in called
        .iter()
        .map(|p| p.to_string())
        .chain([paths::directory("{username}")])
    {
        assert!(documented.contains(&path), "{path} is not in the document");
    }
}

#[tokio::test]
async fn protocol_md_specifies_exactly_the_documented_operations() {
    let document = served_document().await;
    let protocol = std::fs::read_to_string(repo_file("docs/PROTOCOL.md")).unwrap();
    let section = protocol
        .split("\n## Relay API\n")
        .nth(1)
        .expect("a Relay API section")
        .split("\n## ")
        .next()
        .unwrap();
    // Each route has a heading `### METHOD /path` there.
    let specified: BTreeSet<(String, String)> = section
        .lines()
        .filter_map(|line| line.strip_prefix("### `"))
        .filter_map(|rest| {
            let (method, path) = rest.split_once(' ')?;
            let path = path.split(['`', '?']).next()?;
            Some((method.to_owned(), path.to_owned()))
        })
        .collect();
    assert_eq!(
        specified,
        operations(&document),
        "PROTOCOL.md's Relay API headings against the document"
    );
}

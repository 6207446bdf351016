//! Fuzzed HTTP requests (route, method, query, headers, body) through the relay's real router, in process, with
//! an in-memory store and two logged-in users (`magpie_fuzz::relay`). The relay promises that bad input is 4xx,
//! never 500, and that every error is JSON `{code, message}`; 507 is its answer to a full mailbox. The store is
//! in memory, so a 503 (storage unavailable) would be a bug as well.
#![no_main]

use std::cell::RefCell;

use axum::http::{Method, StatusCode};
use axum::Router;
use http_body_util::BodyExt as _;
use libfuzzer_sys::fuzz_target;
use magpie_fuzz::relay::{parse_request, renew_challenge, Fixture};
use magpie_relay::AppState;
use tower::ServiceExt as _;

/// Requests served before the state starts afresh: challenges, tokens and mail would otherwise pile up in memory.
const FRESH_STATE_EVERY: u32 = 20_000;

struct Relay {
    runtime: tokio::runtime::Runtime,
    fixture: Fixture,
    state: AppState,
    app: Router,
    served: u32,
}

impl Relay {
    fn new() -> Self {
        let fixture = Fixture::new();
        let state = fixture.state();
        Self {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            app: magpie_relay::router(state.clone()),
            state,
            fixture,
            served: 0,
        }
    }
}

thread_local! {
    // Built once: a runtime, a CA and two certificates per input would leave a few hundred inputs a second.
    static RELAY: RefCell<Option<Relay>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    let Some(request) = parse_request(data) else {
        return;
    };
    let head = request.method() == Method::HEAD;
    let described = format!("{} {}", request.method(), request.uri());
    RELAY.with_borrow_mut(|relay| {
        let relay = relay.get_or_insert_with(Relay::new);
        relay.served += 1;
        if relay.served >= FRESH_STATE_EVERY {
            relay.state = relay.fixture.state();
            relay.app = magpie_relay::router(relay.state.clone());
            relay.served = 0;
        }
        relay.runtime.block_on(renew_challenge(&relay.state));
        let app = relay.app.clone();
        let (status, body) = relay.runtime.block_on(async move {
            let response = app.oneshot(request).await.unwrap();
            let status = response.status();
            (status, response.into_body().collect().await.unwrap().to_bytes())
        });
        let text = String::from_utf8_lossy(&body);
        assert!(
            !status.is_server_error() || status == StatusCode::INSUFFICIENT_STORAGE,
            "{described}: {status} {text}"
        );
        if (status.is_client_error() || status.is_server_error()) && !head {
            let error: serde_json::Value = serde_json::from_slice(&body)
                .unwrap_or_else(|e| panic!("{described}: {status} with a body that is not JSON ({e}): {text}"));
            assert!(
                error["code"].is_string() && error["message"].is_string(),
                "{described}: {status} {text}"
            );
        }
    });
});

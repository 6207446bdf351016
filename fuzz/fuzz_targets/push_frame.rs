//! Fuzzed text frames from a logged-in client's push socket, handled by the relay's own frame code
//! (`magpie_relay::fuzzing::push_frame`: parse, pace, stage a send or do an ack, answer once durable) against an
//! in-memory store. Every frame gets exactly one answer, which is JSON of one of the three documented kinds; a
//! refusal is one of the HTTP API's codes and never `internal` or `storage_unavailable` (the store is in memory).
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use magpie_fuzz::relay::Fixture;
use magpie_relay::AppState;

/// Frames handled before the state starts afresh (mailboxes fill up and stay full otherwise).
const FRESH_STATE_EVERY: u32 = 20_000;

struct Relay {
    runtime: tokio::runtime::Runtime,
    fixture: Fixture,
    state: AppState,
    handled: u32,
}

thread_local! {
    static RELAY: RefCell<Option<Relay>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    // A WebSocket text frame is UTF-8: tungstenite refuses anything else before the relay sees it.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    RELAY.with_borrow_mut(|relay| {
        let relay = relay.get_or_insert_with(|| {
            let fixture = Fixture::new();
            Relay {
                runtime: tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap(),
                state: fixture.state(),
                fixture,
                handled: 0,
            }
        });
        relay.handled += 1;
        if relay.handled >= FRESH_STATE_EVERY {
            relay.state = relay.fixture.state();
            relay.handled = 0;
        }
        let answer = relay
            .runtime
            .block_on(magpie_relay::fuzzing::push_frame(&relay.state, "alice", text))
            .unwrap_or_else(|| panic!("no answer to {text:?}"));
        let reply: serde_json::Value =
            serde_json::from_str(&answer).unwrap_or_else(|e| panic!("answer {answer:?} is not JSON: {e}"));
        match reply["type"].as_str() {
            Some("accepted") => assert!(
                reply["id"].is_string() && reply["cursor"].is_u64() && reply["created"].is_boolean(),
                "{answer}"
            ),
            Some("acked") => assert!(reply["acked"].is_u64(), "{answer}"),
            Some("error") => {
                let code = reply["code"].as_str().unwrap_or_else(|| panic!("{answer}"));
                assert!(
                    !matches!(code, "internal" | "storage_unavailable") && reply["message"].is_string(),
                    "{text:?} → {answer}"
                );
            }
            _ => panic!("{text:?} → unexpected answer {answer}"),
        }
    });
});

//! Session::open on arbitrary sealed messages against a real session (fixed keys via import), and the
//! plaintext decoder behind it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use magpie_proto::{Plaintext, SealedMessage, Session};

// A responder-side state made by the test suite's deterministic chain keys.
const STATE: &str = r#"{"v":1,"session_id":"WlpaWlpaWlpaWlpaWlpaWg==","me":"bob","peer":"alice","role":"responder","peer_fingerprint":"0000000000000000000000000000000000000000000000000000000000000000","send_chain":"EBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8=","send_n":0,"recv_chain":"EBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8=","recv_next":0,"skipped":[],"established_at":0,"sent":0,"received":0}"#;

fuzz_target!(|data: &[u8]| {
    // What a message that authenticates holds.
    let _ = Plaintext::decode(data);
    let mut session = Session::import(STATE.as_bytes()).unwrap();
    if let Ok(msg) = SealedMessage::from_json(data) {
        let _ = session.open(&msg);
    }
    // Also the raw-ciphertext path with a valid header.
    let msg = SealedMessage {
        v: 1,
        session_id: session.session_id().to_vec(),
        from: "alice".into(),
        n: u64::from(data.first().copied().unwrap_or(0)),
        ciphertext: data.to_vec(),
    };
    let _ = session.open(&msg);
});

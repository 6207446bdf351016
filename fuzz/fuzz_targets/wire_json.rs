//! Every wire parser on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use magpie_proto::*;

fuzz_target!(|data: &[u8]| {
    let _ = ChatRequest::from_json(data).map(|m| m.canonical_bytes());
    let _ = ChatAccept::from_json(data).map(|m| m.signed_bytes());
    let _ = ChatDecline::from_json(data).map(|m| m.signed_bytes());
    let _ = KeyTransfer::from_json(data).map(|m| m.signed_bytes());
    let _ = KeyConfirm::from_json(data);
    let _ = SealedMessage::from_json(data);
    let _ = Envelope::from_json(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Username::parse(text);
        let _ = Fingerprint::from_hex(text);
    }
});

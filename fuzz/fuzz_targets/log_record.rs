//! The relay's mailbox log on fuzzed bytes: as a record's payload, as one whole record (header and CRC), and as a
//! segment file replayed into the index the way opening a store does, once as it is and once with its CRCs put
//! right. Decoding damaged bytes must give a typed `Corrupt` error, never a panic; whatever decodes must encode
//! back to the same bytes; a replay must stop where the record scan does and index only whole envelope records
//! (`magpie_relay::fuzzing::log_bytes` checks these).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = magpie_relay::fuzzing::log_bytes(data) {
        panic!("{broken}");
    }
});

//! Session::import on arbitrary bytes; whatever imports must export again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use magpie_proto::Session;

fuzz_target!(|data: &[u8]| {
    if let Ok(session) = Session::import(data) {
        let again = session.export().unwrap();
        Session::import(again.expose_secret()).unwrap();
    }
});

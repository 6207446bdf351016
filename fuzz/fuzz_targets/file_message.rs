//! The file message a peer sends: any body that parses names a file that can be saved under its safe name, and
//! says the same when written again; any bytes as a blob segment are refused or opened, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use magpie_proto::file::{open_segment, FileDescriptor, FileLayout};
use magpie_proto::FileKey;

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = std::str::from_utf8(data) {
        if let Ok(descriptor) = FileDescriptor::from_body(body) {
            let name = descriptor.safe_name();
            assert!(!name.is_empty() && !name.starts_with('.'), "{name:?}");
            assert!(
                !name.contains(['/', '\\', ':']) && !name.chars().any(char::is_control),
                "{name:?}"
            );
            let again = FileDescriptor::from_body(&descriptor.to_body().unwrap()).unwrap();
            assert!(again == descriptor);
        }
    }
    if data.len() >= 8 {
        let (size, sealed) = data.split_at(8);
        let layout = FileLayout::new(u64::from_le_bytes(size.try_into().unwrap()) % (1 << 20));
        let key = FileKey::from_bytes([7; 32]);
        for index in [0, layout.last_index()] {
            let _ = open_segment(&key, &layout, index, sealed.to_vec());
        }
    }
});

//! The UI's TypeScript types must match the Rust types that cross IPC.
//! `MAGPIE_UPDATE_BINDINGS=1 cargo test -p magpie-desktop --test bindings` rewrites the file.

use std::path::Path;

#[test]
fn typescript_bindings_are_fresh() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/src/lib/bindings.ts");
    let generated = magpie_desktop::ipc_types::typescript_bindings();
    if std::env::var_os("MAGPIE_UPDATE_BINDINGS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "{} is stale: run `npm run bindings` and commit the result",
        path.display()
    );
}

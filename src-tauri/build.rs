// Declaring our commands makes Tauri generate an `allow-<command>` permission for each, so the capability file
// grants exactly these and nothing else.
const COMMANDS: &[&str] = &["app_info"];

fn main() {
    let attributes = tauri_build::Attributes::new().app_manifest(tauri_build::AppManifest::new().commands(COMMANDS));
    if let Err(error) = tauri_build::try_build(attributes) {
        // A build script reports failure by exiting non-zero with a message cargo shows.
        eprintln!("tauri build step failed: {error:#}");
        std::process::exit(1);
    }
}

#!/usr/bin/env bash
# The baseline for the .deb size: a Tauri hello world (one window, one HTML page, no plugins), built into a .deb
# by the same Tauri CLI, Tauri version (our Cargo.lock) and release profile as Magpie. Prints both sizes and the
# ratio. Run `npm run bundle` first. The hello world lives in target/hello-tauri.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
hello=target/hello-tauri
# Sources afresh; its own target/ is kept, so a second run only re-bundles.
find "$hello" -mindepth 1 -maxdepth 1 ! -name target -exec rm -rf {} + 2>/dev/null || true
mkdir -p "$hello/src" "$hello/dist" "$hello/icons"
cp Cargo.lock "$hello/"
cp icons/32x32.png icons/128x128.png icons/128x128@2x.png "$hello/icons/"
tauri_version=$(cargo metadata --format-version 1 --locked |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="tauri"))')
# The same release profile as the workspace's (size-optimized, LTO, stripped).
profile=$(sed -n '/^\[profile.release\]/,/^$/p' Cargo.toml)
cat >"$hello/Cargo.toml" <<TOML
[package]
name = "hello"
version = "0.1.0"
edition = "2021"

[build-dependencies]
tauri-build = "2"

[dependencies]
tauri = "=$tauri_version"

[features]
custom-protocol = ["tauri/custom-protocol"]

[workspace]

$profile
TOML
echo 'fn main() { tauri_build::build() }' >"$hello/build.rs"
cat >"$hello/src/main.rs" <<'RS'
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]
fn main() {
    tauri::Builder::default()
        .run(tauri::generate_context!())
        .expect("the window opens");
}
RS
echo '<!doctype html><title>Hello</title><h1>Hello, world</h1>' >"$hello/dist/index.html"
cat >"$hello/tauri.conf.json" <<'JSON'
{
  "productName": "hello",
  "identifier": "app.magpie.hello",
  "build": { "frontendDist": "dist" },
  "app": { "windows": [{ "title": "Hello" }] },
  "bundle": { "active": true, "targets": ["deb"], "icon": ["icons/32x32.png", "icons/128x128.png", "icons/128x128@2x.png"] }
}
JSON
(cd "$hello" && "$root/node_modules/.bin/tauri" build --bundles deb --ci >build.log 2>&1) ||
  { tail -30 "$hello/build.log" >&2; exit 1; }
python3 - "$hello"/target/release/bundle/deb/hello_0.1.0_*.deb target/bundle/release/bundle/deb/Magpie_*_*.deb <<'PY'
import os, sys
hello, magpie = (os.path.getsize(p) for p in sys.argv[1:3])
print(f"hello_deb_mb={hello/1e6:.2f} magpie_deb_mb={magpie/1e6:.2f} ratio={magpie/hello:.2f}")
PY

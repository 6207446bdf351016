#!/usr/bin/env bash
# The baseline for the .deb size and the start time: a Tauri hello world (one window, one HTML page, no plugins),
# built into a .deb by the same Tauri CLI, Tauri version (our Cargo.lock) and release profile as Magpie. Prints
# both sizes and the ratio when Magpie's .deb exists (`npm run bundle`). Its page reports its first paint the way
# Magpie's does (two animation frames, then a command), to the file HELLO_REPORT names; scripts/perf-app.sh times
# it. The hello world lives in target/hello-tauri, its binary in target/hello-tauri/target/release/hello.
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
use std::time::{SystemTime, UNIX_EPOCH};

#[tauri::command]
fn painted() {
    if let Ok(report) = std::env::var("HELLO_REPORT") {
        let wall_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let _ = std::fs::write(report, format!("painted wall_ms={wall_ms}\n"));
    }
}

fn main() {
    tauri::Builder::default()
        .invoke_handler(tauri::generate_handler![painted])
        .run(tauri::generate_context!())
        .expect("the window opens");
}
RS
cat >"$hello/dist/index.html" <<'HTML'
<!doctype html><title>Hello</title><h1>Hello, world</h1>
<script>requestAnimationFrame(() => requestAnimationFrame(() => window.__TAURI__.core.invoke('painted')));</script>
HTML
cat >"$hello/tauri.conf.json" <<'JSON'
{
  "productName": "hello",
  "identifier": "app.magpie.hello",
  "build": { "frontendDist": "dist" },
  "app": { "withGlobalTauri": true, "windows": [{ "title": "Hello" }] },
  "bundle": { "active": true, "targets": ["deb"], "icon": ["icons/32x32.png", "icons/128x128.png", "icons/128x128@2x.png"] }
}
JSON
(cd "$hello" && "$root/node_modules/.bin/tauri" build --bundles deb --ci >build.log 2>&1) ||
  { tail -30 "$hello/build.log" >&2; exit 1; }
# A glob, not `ls | head`: with no bundle built, `ls` fails and pipefail would end the script (and perf-app.sh) here.
shopt -s nullglob
magpie_debs=(target/bundle/release/bundle/deb/Magpie_*_*.deb)
shopt -u nullglob
((${#magpie_debs[@]})) || { echo "hello world built; no Magpie .deb to compare its size with (npm run bundle)"; exit 0; }
python3 - "$hello"/target/release/bundle/deb/hello_0.1.0_*.deb "${magpie_debs[0]}" <<'PY'
import os, sys
hello, magpie = (os.path.getsize(p) for p in sys.argv[1:3])
print(f"hello_deb_mb={hello/1e6:.2f} magpie_deb_mb={magpie/1e6:.2f} ratio={magpie/hello:.2f}")
PY

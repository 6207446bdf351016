#!/usr/bin/env bash
# Runs Magpie from source with hot reload of the UI (Vite) and rebuilds of the Rust side on change.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-linux.sh
exec npx tauri dev "$@"

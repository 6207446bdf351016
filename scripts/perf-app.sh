#!/usr/bin/env bash
# Measures the release app under Xvfb with a 1,000,000-message profile (issue 6's figures):
#   start_ms      exec -> chat list drawn (the UI reports after its first paint), warm median
#   pss_mb        total PSS of the app and its WebKit processes, idle, chat open
#   idle_cpu_pct  CPU of all of them over 20 s idle, % of one core
#   open_chat_ms  click on the 1M-message chat -> first messages drawn
# and, as the baseline, a Tauri hello world's exec -> first paint (scripts/baseline-hello-tauri.sh).
# Usage: bash scripts/perf-app.sh [MESSAGES] [RUNS]   (defaults 1000000 and 6; the first run is cold and dropped)
set -euo pipefail
cd "$(dirname "$0")/.."
messages="${1:-1000000}"
runs="${2:-6}"

bash scripts/setup-linux.sh --test  # Xvfb and the keyring for the measuring half
npx tauri build --no-bundle --ci --features perf
cargo build --release -p magpie-desktop --example seed_profile
bash scripts/baseline-hello-tauri.sh
exec scripts/keyring-session.sh --display python3 scripts/perf-app.py \
  --app target/release/magpie-desktop --seed target/release/examples/seed_profile \
  --messages "$messages" --runs "$runs" --hello target/hello-tauri/target/release/hello

#!/usr/bin/env bash
# Builds the app with its UI embedded, then drives its real window: Xvfb + D-Bus + unlocked gnome-keyring +
# tauri-driver (which starts Debian's WebKitWebDriver) + the WebDriver test in tests/e2e/ (which also runs the
# `magpie` command line against the app's embedded relay). Screenshots: target/e2e/.
#   tests/e2e/run.sh [--app PATH] [TEST-NAME-FILTER]
# --app tests that binary (the installed /usr/bin/magpie, say) instead of building one.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [[ "${1:-}" != "--inner" ]]; then
  if [[ "${1:-}" == "--app" ]]; then
    MAGPIE_E2E_APP=$(realpath "$2")
    shift 2
  else
    # A debug build with the UI embedded (what `tauri build` makes), without installer bundles.
    npx tauri build --debug --no-bundle --ci
    # A later plain `cargo build` would overwrite target/debug/magpie-desktop with a dev-server build: test a copy.
    rm -rf target/e2e && mkdir -p target/e2e && cp target/debug/magpie-desktop target/e2e/magpie-desktop
    MAGPIE_E2E_APP="$PWD/target/e2e/magpie-desktop"
  fi
  export MAGPIE_E2E_APP
  exec scripts/keyring-session.sh --display bash tests/e2e/run.sh --inner "$@"
fi
shift

scratch=$(mktemp -d -t magpie-e2e.XXXXXX)
driver_pid=""
cleanup() {
  [[ -n "$driver_pid" ]] && kill "$driver_pid" 2>/dev/null || true
  rm -rf "$scratch"
}
trap cleanup EXIT

export MAGPIE_DATA_DIR="$scratch/data"
# The app's embedded relay listens here (tauri-driver passes our environment on to the app), and the test's
# `magpie` command line registers there too. A port the kernel just handed out is almost surely still free.
free_port() {
  node -e 'const s = require("net").createServer();
s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}
MAGPIE_LOCAL_RELAY_PORT=$(free_port)
export MAGPIE_LOCAL_RELAY_PORT
# tauri-driver and WebKitWebDriver on free ports too (not 4444/4445), so two runs on one machine (a package test
# beside the test command, say) cannot talk to each other's driver.
port=$(free_port)
native_port=$(free_port)
export MAGPIE_E2E_DRIVER="http://127.0.0.1:$port"

tauri-driver --port "$port" --native-port "$native_port" >"$scratch/driver.log" 2>&1 &
driver_pid=$!
for _ in $(seq 1 100); do
  curl -sf "$MAGPIE_E2E_DRIVER/status" >/dev/null && break
  kill -0 "$driver_pid" 2>/dev/null || { cat "$scratch/driver.log" >&2; exit 1; }
  sleep 0.1
done

status=0
# One story at a time: the app is single-instance (each story starts its own app, with a data folder of its own).
cargo test -p magpie-tests --features e2e --test e2e --locked -- --nocapture --test-threads=1 "$@" || status=$?
if ((status)); then
  echo "--- tauri-driver log ---" >&2
  cat "$scratch/driver.log" >&2
fi
exit "$status"

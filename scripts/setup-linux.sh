#!/usr/bin/env bash
# Installs what a fresh Debian 12 / Ubuntu machine lacks to build, run and test Magpie. Idempotent: when everything
# is present it only checks, in a second or two. `--test` adds the test tools (Xvfb, WebKitWebDriver, tauri-driver,
# cargo-fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."

want_test_tools=false
[[ "${1:-}" == "--test" ]] && want_test_tools=true

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }
fail() {
  printf '\033[1;31msetup:\033[0m %s\n' "$*" >&2
  exit 1
}

if [[ "$(uname -s)" != "Linux" ]]; then
  fail "this script is for Debian/Ubuntu. On macOS install Xcode command line tools, Rust (rustup) and Node.js 20.19+;
on Windows install the Visual Studio C++ build tools, WebView2 (preinstalled on Windows 11), Rust and Node.js 20.19+.
Then run: npm ci && npm run app"
fi

# Build: Tauri's WebKitGTK stack. Run: the Secret Service lives in gnome-keyring (or KeePassXC) over D-Bus.
apt_build=(libwebkit2gtk-4.1-dev build-essential curl wget file libxdo-dev libssl-dev openssl libayatana-appindicator3-dev
  librsvg2-dev pkg-config libdbus-1-dev perl)
# The relay's PostgreSQL backend is tested against a real server (scripts/pg-session.sh starts a private one), and
# its failover story behind nginx (the story runs its own nginx in a temporary directory).
apt_test=(xvfb xauth webkit2gtk-driver gnome-keyring libsecret-tools dbus-x11 dbus-bin dbus-daemon postgresql
  nginx-light)
apt_wanted=("${apt_build[@]}")
$want_test_tools && apt_wanted+=("${apt_test[@]}")

missing=()
for pkg in "${apt_wanted[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done

if ((${#missing[@]})); then
  command -v apt-get >/dev/null || fail "missing packages (${missing[*]}) and no apt-get: install them with your package manager."
  if [[ $EUID -eq 0 ]]; then
    sudo=()
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo=(sudo)
  else
    fail "these packages are missing and I cannot become root to install them:
  sudo apt-get update && sudo apt-get install -y ${missing[*]}"
  fi
  say "installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || fail "Rust is missing: install it with rustup (https://rustup.rs), then run this again."

node_ok=false
if command -v node >/dev/null; then
  node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' && node_ok=true
fi
$node_ok || fail "Node.js 20.19 or newer is needed (found: $(node --version 2>/dev/null || echo none)).
Debian 12's own nodejs is 18: install a newer one (e.g. from NodeSource or nvm), then run this again."

# npm ci only when package-lock.json changed since the last install.
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -f node_modules/.magpie-lock-hash ]] || [[ "$(cat node_modules/.magpie-lock-hash)" != "$lock_hash" ]]; then
  say "installing npm packages"
  npm ci --no-fund --no-audit --loglevel=error
  echo "$lock_hash" >node_modules/.magpie-lock-hash
fi

if $want_test_tools && ! command -v tauri-driver >/dev/null; then
  say "installing tauri-driver (about 40 s)"
  cargo install tauri-driver --version '^2' --locked --quiet
fi

# The fuzz part of scripts/test.sh. Pinned: its build flags are part of what the test runs. It builds the targets
# with the repository's stable toolchain (no sanitizer, so no nightly flags); libFuzzer's C++ needs build-essential.
cargo_fuzz_version=0.13.2
if $want_test_tools && [[ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]]; then
  say "installing cargo-fuzz $cargo_fuzz_version (about a minute)"
  cargo install cargo-fuzz --version "=$cargo_fuzz_version" --locked --quiet
fi

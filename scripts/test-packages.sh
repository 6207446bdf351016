#!/usr/bin/env bash
# Builds the installer packages and tries them on this machine, as root (apt-get, systemd-nspawn):
#   app   — the desktop .deb and .rpm (`npm run bundle`): installs the .deb with apt-get, checks the command,
#           the desktop entry and the icon, opens the installed app's window under Xvfb through WebDriver
#           (screenshot: target/e2e/first-start.png), then removes the package and checks nothing is left.
#   relay — `cargo install --path crates/relay` works; the relay's .deb (cargo-deb) is installed in a booted
#           Debian 12 container (systemd-nspawn, private network), where systemd starts the hardened service as its
#           own user; GET /v1/health must answer; then it is purged.
#   scripts/test-packages.sh [app|relay]...     (both by default)
set -euo pipefail
cd "$(dirname "$0")/.."

parts=("$@")
((${#parts[@]})) || parts=(app relay)
[[ $EUID -eq 0 ]] || { echo "test-packages: run as root (it installs packages): sudo $0 $*" >&2; exit 1; }

version=$(cargo metadata --no-deps --format-version 1 |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="magpie-desktop"))')
arch=$(dpkg --print-architecture)
step() { printf '\n\033[1;34m== %s\033[0m\n' "$*"; }
fail() { printf '\033[1;31mtest-packages: %s\033[0m\n' "$*" >&2; exit 1; }
size() { python3 -c 'import os,sys; print(f"{os.path.getsize(sys.argv[1])/1e6:.2f} MB")' "$1"; }
apt_install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }

app() {
  bash scripts/setup-linux.sh --test
  step "npm run bundle (release build, .deb and .rpm)"
  npm run --silent bundle
  local deb="target/bundle/release/bundle/deb/Magpie_${version}_${arch}.deb"
  local rpm
  rpm=$(ls target/bundle/release/bundle/rpm/Magpie-"${version}"-1.*.rpm)
  [[ -f "$deb" ]] || fail "no $deb"
  echo "deb: $deb, $(size "$deb")"
  echo "rpm: $rpm, $(size "$rpm")"
  dpkg-deb --field "$deb" Package Version Depends Recommends
  # The .rpm cannot be installed here (no rpm database); its metadata and files can be checked.
  command -v rpm >/dev/null || apt_install rpm
  rpm -qp --queryformat '%{NAME} %{VERSION}\n' "$rpm" | grep -qx "magpie $version" || fail "$rpm: not magpie $version"
  rpm -qp --requires "$rpm" | grep -qx dbus-libs || fail "$rpm does not require dbus-libs"
  rpm -qpl "$rpm" | grep -qx /usr/bin/magpie || fail "$rpm does not hold /usr/bin/magpie"
  echo "rpm requires: $(rpm -qp --requires "$rpm" | grep -v '^rpmlib' | tr '\n' ' ')"

  step "apt-get install ./$(basename "$deb")"
  dpkg-query -W magpie >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq magpie >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "./$deb" >/dev/null
  [[ "$(dpkg-query -W -f='${Version}' magpie)" == "$version" ]] || fail "the installed version is not $version"
  [[ "$(/usr/bin/magpie --version)" == "Magpie $version" ]] || fail "/usr/bin/magpie --version: $(/usr/bin/magpie --version)"
  local desktop=/usr/share/applications/Magpie.desktop
  [[ -f $desktop ]] || fail "no $desktop"
  grep -qx 'Exec=magpie' "$desktop" || fail "$desktop does not start magpie: $(grep Exec "$desktop")"
  grep -qx 'Categories=Network;InstantMessaging;Chat;' "$desktop" || fail "$desktop: $(grep Categories "$desktop")"
  [[ -f /usr/share/icons/hicolor/128x128/apps/magpie.png ]] || fail "no 128x128 icon"
  echo "installed: /usr/bin/magpie ($(/usr/bin/magpie --version)), $desktop, icons"

  step "the installed app's window (Xvfb, WebDriver)"
  bash tests/e2e/run.sh --app /usr/bin/magpie a_first_start_opens_on_onboarding

  step "apt-get purge magpie"
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq magpie >/dev/null
  ! dpkg-query -W -f='${Status}' magpie 2>/dev/null | grep -q installed || fail "magpie is still installed"
  for path in /usr/bin/magpie "$desktop" /usr/share/icons/hicolor/128x128/apps/magpie.png; do
    [[ ! -e $path ]] || fail "$path was left behind"
  done
  echo "removed cleanly"
}

relay() {
  command -v debootstrap >/dev/null && command -v systemd-nspawn >/dev/null || apt_install debootstrap systemd-container
  command -v cargo-deb >/dev/null || { step "cargo install cargo-deb"; cargo install cargo-deb --version '^3' --locked --quiet; }
  step "cargo deb -p magpie-relay"
  cargo deb -p magpie-relay --locked
  local deb
  deb=$(ls target/debian/magpie-relay_"${version}"-1_"${arch}".deb)
  echo "deb: $deb, $(size "$deb")"

  step "cargo install --path crates/relay"
  local installed
  installed=$(mktemp -d -t magpie-relay-install.XXXXXX)
  # The workspace's target folder: the release build above is reused, not redone.
  CARGO_TARGET_DIR="$PWD/target" cargo install --path crates/relay --locked --quiet --root "$installed"
  [[ "$("$installed/bin/magpie-relay" --version)" == "magpie-relay $version" ]] || fail "cargo install: $("$installed/bin/magpie-relay" --version)"
  echo "installed: $("$installed/bin/magpie-relay" --version)"
  rm -rf "$installed"

  # A minimal Debian 12 with systemd, made once (about a minute) and copied for each run.
  local base=target/packages/bookworm
  if [[ ! -f $base/.complete ]]; then
    step "debootstrap a Debian 12 with systemd (once)"
    rm -rf "$base" && mkdir -p "$(dirname "$base")"
    debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,curl,adduser,procps \
      bookworm "$base" http://deb.debian.org/debian >target/packages/debootstrap.log
    touch "$base/.complete"
  fi
  local scratch
  scratch=$(mktemp -d -t magpie-relay-package.XXXXXX)
  trap 'rm -rf "$scratch"' RETURN
  cp -a "$base" "$scratch/root"
  mkdir "$scratch/results"
  cp "$deb" "$scratch/root/root/magpie-relay.deb"
  cp tests/packages/relay-in-container.sh "$scratch/root/root/"
  cat >"$scratch/root/etc/systemd/system/package-test.service" <<'UNIT'
[Unit]
Description=Install and try the magpie-relay package
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/bin/sh /root/relay-in-container.sh
ExecStopPost=/bin/systemctl poweroff --no-block
StandardOutput=journal+console
StandardError=journal+console
UNIT
  ln -s /etc/systemd/system/package-test.service "$scratch/root/etc/systemd/system/multi-user.target.wants/"

  step "boot the container; systemd installs and starts magpie-relay"
  timeout 300 systemd-nspawn --quiet --register=no --keep-unit --private-network --console=pipe \
    --bind="$scratch/results:/results" -D "$scratch/root" --boot >"$scratch/console.log" 2>&1 || true
  if [[ "$(cat "$scratch/results/status" 2>/dev/null)" != "ok" ]]; then
    grep -v '^\s*$' "$scratch/console.log" | tail -60 >&2
    fail "the relay package test in the container did not pass"
  fi
  echo "health: $(cat "$scratch/results/health")"
  cat "$scratch/results/facts"
}

for part in "${parts[@]}"; do
  case "$part" in
    app) app ;;
    relay) relay ;;
    *) fail "unknown part '$part' (expected app or relay)" ;;
  esac
done
printf '\n\033[1;32mPackages passed: %s\033[0m\n' "${parts[*]}"

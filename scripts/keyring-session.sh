#!/usr/bin/env bash
# Runs a command the way Magpie's tests need the desktop to be: a private D-Bus session with an unlocked
# gnome-keyring (the real Secret Service), and with --display an Xvfb screen. Nothing outlives the command.
#   scripts/keyring-session.sh [--display] COMMAND [ARGS...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

needed=(dbus-run-session dbus-send gnome-keyring-daemon)
[[ "${1:-}" == "--display" ]] && needed+=(xvfb-run)
for tool in "${needed[@]}"; do
  command -v "$tool" >/dev/null || { echo "keyring-session: $tool is missing; run bash scripts/setup-linux.sh --test first" >&2; exit 1; }
done

if [[ "${1:-}" == "--display" ]]; then
  shift
  exec xvfb-run -a -s "-screen 0 1280x800x24" "$here/keyring-session.sh" "$@"
fi

if [[ "${MAGPIE_IN_KEYRING_SESSION:-}" != 1 ]]; then
  # dbus-run-session gives us a bus of our own; without it dbus-x11 autolaunches one that outlives the run.
  exec env MAGPIE_IN_KEYRING_SESSION=1 dbus-run-session -- "$here/keyring-session.sh" "$@"
fi

scratch=$(mktemp -d -t magpie-session.XXXXXX)
daemon_pid=""
cleanup() {
  [[ -n "$daemon_pid" ]] && kill "$daemon_pid" 2>/dev/null || true
  rm -rf "$scratch"
}
trap cleanup EXIT

# A keyring of our own: fresh data and runtime dirs, so runs never share secrets with each other or a user.
export XDG_DATA_HOME="$scratch/data" XDG_RUNTIME_DIR="$scratch/runtime"
mkdir -p "$XDG_DATA_HOME" && mkdir -m 0700 "$XDG_RUNTIME_DIR"

printf 'magpie-test' | gnome-keyring-daemon --foreground --unlock --components=secrets >"$scratch/keyring.env" 2>"$scratch/keyring.log" &
daemon_pid=$!

secrets_up() {
  dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null | grep -q 'boolean true'
}
for _ in $(seq 1 100); do
  secrets_up && break
  kill -0 "$daemon_pid" 2>/dev/null || { cat "$scratch/keyring.log" >&2; echo "gnome-keyring-daemon died" >&2; exit 1; }
  sleep 0.1
done
secrets_up || { cat "$scratch/keyring.log" >&2; echo "the Secret Service did not come up in 10 s" >&2; exit 1; }
# shellcheck disable=SC1091
set -a && . "$scratch/keyring.env" && set +a

status=0
"$@" || status=$?
if ! kill -0 "$daemon_pid" 2>/dev/null; then
  # Seen once in a full run (a SIGTRAP inside the daemon): every credential-store call after it fails. Say so.
  echo "keyring-session: gnome-keyring-daemon stopped while the command ran; its log:" >&2
  cat "$scratch/keyring.log" >&2
  ((status)) || status=1
fi
exit "$status"

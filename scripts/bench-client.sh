#!/usr/bin/env bash
# The client engine's figures in one line: the engine bench (Alice -> Bob through a real relay, the handshake)
# and the history bench (a chat of 1,000,000 messages). Both print their own details first.
#
#   scripts/bench-client.sh
#   -> send_recv_p50_us=… p99_us=… handshake_ms=… last50_p99_us=… rss_mb=… raw_hop_p50_us=… ...
set -euo pipefail
cd "$(dirname "$0")/.."

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# Each bench's output goes on to our stderr as it comes (through the inherited descriptor, so a log file
# redirected with `>` keeps it in order) and to a file the summary is read from.
cargo bench -q -p magpie-tests --bench engine 2>&1 | tee "$out/engine" >&2
cargo bench -q -p magpie-core --bench history 2>&1 | tee "$out/history" >&2
engine=$(grep '^send_recv_p50_us=' "$out/engine" | tail -n 1 || true)
history=$(grep '^last50_p99_us=' "$out/history" | tail -n 1 || true)

field() { # the value of key $2 in line $1
    tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p" | head -n 1
}
[[ -n $engine && -n $history ]] || { echo "a benchmark printed no summary line" >&2; exit 1; }

echo "send_recv_p50_us=$(field "$engine" send_recv_p50_us) p99_us=$(field "$engine" p99_us)" \
    "handshake_ms=$(field "$engine" handshake_ms) last50_p99_us=$(field "$history" last50_p99_us)" \
    "rss_mb=$(field "$history" rss_mb) raw_hop_p50_us=$(field "$engine" raw_hop_p50_us)" \
    "in_process_handshake_ms=$(field "$engine" in_process_handshake_ms)" \
    "open_cold_ms=$(field "$history" open_cold_ms) catch_up_ms=$(field "$engine" catch_up_ms)"

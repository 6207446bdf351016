#!/usr/bin/env bash
# The client engine's figures in one line: the engine bench (Alice -> Bob through a real relay, the handshake)
# and the history bench (a chat of 1,000,000 messages). Both print their own details first.
#
#   scripts/bench-client.sh
#   -> send_recv_p50_us=… p99_us=… handshake_ms=… last50_p99_us=… rss_mb=… raw_hop_p50_us=… ...
set -euo pipefail
cd "$(dirname "$0")/.."

summary_of() { # bench output on stdin, the summary line's first key as $1
    tee /dev/stderr | grep "^$1=" | tail -n 1
}
field() { # the value of key $2 in line $1
    tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p" | head -n 1
}

engine=$(cargo bench -q -p magpie-tests --bench engine 2>&1 | summary_of send_recv_p50_us)
history=$(cargo bench -q -p magpie-core --bench history 2>&1 | summary_of last50_p99_us)
[[ -n $engine && -n $history ]] || { echo "a benchmark printed no summary line" >&2; exit 1; }

echo "send_recv_p50_us=$(field "$engine" send_recv_p50_us) p99_us=$(field "$engine" p99_us)" \
    "handshake_ms=$(field "$engine" handshake_ms) last50_p99_us=$(field "$history" last50_p99_us)" \
    "rss_mb=$(field "$history" rss_mb) raw_hop_p50_us=$(field "$engine" raw_hop_p50_us)" \
    "in_process_handshake_ms=$(field "$engine" in_process_handshake_ms)" \
    "open_cold_ms=$(field "$history" open_cold_ms) catch_up_ms=$(field "$engine" catch_up_ms)"

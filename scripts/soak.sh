#!/usr/bin/env bash
# scripts/soak.sh [MINUTES]: a soak with faults, not part of CI (default 60 minutes).
#
# One origin and one edge of rtmp-edge on loopback; 1,000 players through the edge
# (rtmp-bench: 900 steady probes with sequence checks, 100 churning); a fault every few
# seconds (stalled players, garbage connections, half handshakes, the publisher killed and
# started again) and the origin killed and started again every 5 minutes. Every 10 s it
# samples the edge's and the origin's RSS, open files and CPU, and the edge's API counters;
# at the end it prints a table (one row per 5 minutes of an hour) and a verdict, and exits
# 1 when the verdict fails. What each check means: scripts/soak.py.
#
# Builds the release binaries when missing (CARGO_TARGET_DIR is honoured). Logs, samples
# (samples.jsonl) and rtmp-bench's JSON go to $CARGO_TARGET_DIR/soak/ (target/ by default),
# with copies of the binaries it runs. RTMP_EDGE_SOAK_ORIGIN_EVERY=SECONDS restarts the
# origin more often, to try the script out in a few minutes.
# Needs rtmpdump and python3. The machine's load average is sampled too: a soak on a
# machine busy with other work says so in its output.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$repo_root/target}"
case "$target_dir" in /*) ;; *) target_dir="$repo_root/$target_dir" ;; esac
minutes="${1:-60}"
work="$target_dir/soak"

for tool in rtmpdump python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "[soak] $tool not found (scripts/test.sh installs it)" >&2; exit 2; }
done
if [ ! -x "$target_dir/release/rtmp-edge" ] || [ ! -x "$target_dir/release/rtmp-bench" ]; then
    echo "[soak] building the release binaries"
    (cd "$repo_root" && cargo build --release --bins)
fi
# 1,000 players, the churners and the faults in one rtmp-bench process each need more
# than the usual 1024 descriptors (the relays raise their own limit).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 4096 ] || { echo "[soak] open files limit $(ulimit -n) is too low (need 4096)" >&2; exit 2; }

rm -rf "$work"
mkdir -p "$work/bin"
# The run restarts the origin and the publisher from these copies: a build during the
# soak does not change what it runs. Their own names keep them out of reach of a
# `pkill rtmp-bench` meant for other runs on a shared machine (the first hour-long run
# here lost its players to a SIGTERM from outside).
cp "$target_dir/release/rtmp-edge" "$work/bin/soak-relay"
cp "$target_dir/release/rtmp-bench" "$work/bin/soak-bench"
exec python3 "$repo_root/scripts/soak.py" "$minutes" "$work/bin" "$repo_root/tests/fixtures/h264_aac.flv" "$work"

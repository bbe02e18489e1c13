#!/usr/bin/env bash
# Side-by-side benchmark: the same rtmp-bench scenarios against rtmp-edge and nginx-rtmp,
# one after the other, on loopback. Prints one table (also saved as $OUT/table.md).
#
#   scripts/bench.sh            # everything, about 12 minutes on 2 cores
#   BENCH_QUICK=1 scripts/bench.sh   # shorter runs, to check the script itself
#
# What /metrics costs: run the 1,000-player fan-out twice, without and with a scrape of
# rtmp-edge's /metrics every second (BENCH_SCRAPE=1), and compare CPU s per GB:
#   BENCH_SERVERS=rtmp-edge BENCH_FANOUTS=1000 BENCH_DIR=target/bench-noscrape scripts/bench.sh
#   BENCH_SERVERS=rtmp-edge BENCH_FANOUTS=1000 BENCH_DIR=target/bench-scrape BENCH_SCRAPE=1 scripts/bench.sh
#
# What TLS costs: BENCH_TLS=1 runs rtmp-edge alone with a plain and a TLS listener, and
# the fan-out (default 100 and 1,000 players) over rtmp:// and over rtmps:// alternately,
# each BENCH_TLS_REPEAT times (default 2), in one process; the table gives CPU s per GB
# delivered for each run, their spread, and TLS / plain:
#   BENCH_TLS=1 scripts/bench.sh
#
# A reconnect storm: BENCH_BURST=1 keeps 5,000 players watching (rtmp-bench relay) and
# connects 5,000 more within one second (rtmp-bench burst: each plays to its first
# keyframe and leaves), against rtmp-edge with mio's old backlog of 128
# (--listen-backlog 128), rtmp-edge as shipped, and nginx-rtmp; each BENCH_REPEAT times
# (default 2). The table gives handshake times, handshakes over 1 s (a SYN dropped and
# sent again) and timeouts:
#   BENCH_BURST=1 scripts/bench.sh
#
# The latency budget: BENCH_LATENCY=1 gives CPU s per GB delivered for --write-batch 0,
# 40 and 350 ms beside nginx-rtmp, at 300 and 1,000 players (BENCH_FANOUTS), each
# BENCH_REPEAT times, with latency; BENCH_WORKERS=1 ramps players (steps of 250 every 6 s,
# p99 <= 500 ms) against --workers 1 and --workers 2, the load generator pinned to the
# last core and a single worker to the first (taskset), each BENCH_REPEAT times:
#   BENCH_LATENCY=1 scripts/bench.sh
#   BENCH_WORKERS=1 scripts/bench.sh
# What HTTP-FLV costs: BENCH_HTTP_FLV=1 runs rtmp-edge alone with its HTTP listener, and
# the fan-out (default 1,000 players) over rtmp://, HTTP-FLV and WebSocket-FLV in turn, each
# BENCH_HTTP_FLV_REPEAT times (default 2), in one process; the table gives CPU s per GB
# delivered for each run and HTTP-FLV / RTMP, WebSocket-FLV / RTMP:
#   BENCH_HTTP_FLV=1 scripts/bench.sh
#
# Needs: cargo, ffmpeg, nginx with libnginx-mod-rtmp, python3 (and curl for BENCH_SCRAPE,
# openssl for BENCH_TLS, taskset for BENCH_WORKERS). Not part of CI.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${BENCH_DIR:-$ROOT/target/bench}
EDGE_PORT=${EDGE_PORT:-19351}
NGINX_PORT=${NGINX_PORT:-19352}
RTMP_MODULE=${RTMP_MODULE:-/usr/lib/nginx/modules/ngx_rtmp_module.so}
QUICK=${BENCH_QUICK:-0}
FANOUT_SECS=$([ "$QUICK" = 1 ] && echo 5 || echo 15)
FANOUTS=${BENCH_FANOUTS:-"100 500 1000 2000"}
IDLE_PLAYERS=${BENCH_IDLE:-10000}
SERVERS=${BENCH_SERVERS:-"rtmp-edge nginx-rtmp"}
# BENCH_SCRAPE=1: rtmp-edge serves HTTP, and its /metrics is fetched once a second while
# each of its scenarios runs (the scraper's CPU is its own, not the server's).
SCRAPE=${BENCH_SCRAPE:-0}
EDGE_HTTP_PORT=${EDGE_HTTP_PORT:-19353}
TLS_COMPARE=${BENCH_TLS:-0}
TLS_REPEAT=${BENCH_TLS_REPEAT:-2}
EDGE_TLS_PORT=${EDGE_TLS_PORT:-19354}
BURST_COMPARE=${BENCH_BURST:-0}
LATENCY_COMPARE=${BENCH_LATENCY:-0}
WORKERS_COMPARE=${BENCH_WORKERS:-0}
REPEAT=${BENCH_REPEAT:-2}
BURST_STEADY=${BENCH_BURST_STEADY:-5000}
BURST_NEW=${BENCH_BURST_NEW:-5000}
HTTP_FLV_COMPARE=${BENCH_HTTP_FLV:-0}
HTTP_FLV_REPEAT=${BENCH_HTTP_FLV_REPEAT:-2}
TICKS=$(getconf CLK_TCK)
# Extra rtmp-edge options for the next start, and CPU pinning of the server and of
# rtmp-bench (e.g. (taskset -c 0)); empty: no pinning.
EDGE_EXTRA=()
SERVER_PIN=()
BENCH_PIN=()

# 10,000 idle players plus the servers' own sockets, in this shell and its children.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" -lt $((IDLE_PLAYERS + 1000)) ]; then
    ulimit -n $((IDLE_PLAYERS + 5000)) 2>/dev/null || echo "warning: ulimit -n is $(ulimit -n); the idle scenario may fail" >&2
fi

mkdir -p "$OUT"
cd "$ROOT"
echo "== building (release, shipped profile)"
cargo build --release --bins --quiet
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BENCH=$TARGET/release/rtmp-bench
# BENCH_EDGE=PATH: another build of rtmp-edge (an older commit's, say) under the same load
# generator, for before/after figures: scripts/bench.sh passes it only options that
# existed before the HTTP listener unless a comparison needs that listener.
EDGE=${BENCH_EDGE:-$TARGET/release/rtmp-edge}

MEDIA=$OUT/h264-aac-2500k.flv
if [ ! -s "$MEDIA" ]; then
    echo "== generating $MEDIA (30 s, 1280x720 25 fps H.264 CBR 2.37 Mb/s + AAC 128 kb/s, GOP 2 s)"
    ffmpeg -v error -y -f lavfi -i testsrc2=size=1280x720:rate=25 -f lavfi -i sine=frequency=440:sample_rate=48000 \
        -t 30 -c:v libx264 -preset veryfast -pix_fmt yuv420p -b:v 2370k -maxrate 2370k -bufsize 2370k \
        -x264-params nal-hrd=cbr:force-cfr=1 -g 50 -keyint_min 50 -sc_threshold 0 \
        -c:a aac -b:a 128k -f flv "$MEDIA"
fi

SERVER_PID=""
cpu_seconds() { awk -v t="$TICKS" '{ sub(/.*\) /, ""); print ($12 + $13) / t }' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
# Write system calls (write, writev, send...) the process made so far.
write_calls() { awk '/^syscw/ { print $2 }' "/proc/$1/io" 2>/dev/null || echo 0; }

start_server() { # name
    case $1 in
    rtmp-edge)
        local http_args=()
        { [ "$SCRAPE" = 1 ] || [ "$HTTP_FLV_COMPARE" = 1 ]; } && http_args=(--http-listen "127.0.0.1:$EDGE_HTTP_PORT" --http-max-connections 30000)
        [ "$TLS_COMPARE" = 1 ] && http_args+=(--tls-listen "127.0.0.1:$EDGE_TLS_PORT" --tls-cert "$OUT/tls/relay.pem" --tls-key "$OUT/tls/relay.key")
        "${SERVER_PIN[@]}" "$EDGE" --listen 127.0.0.1:$EDGE_PORT --chunk-size 4096 --max-connections 30000 \
            --max-connections-per-ip 30000 --log-level warn "${http_args[@]}" "${EDGE_EXTRA[@]}" >"$OUT/rtmp-edge.log" 2>&1 &
        SERVER_PID=$!
        PORT=$EDGE_PORT
        ;;
    nginx-rtmp)
        mkdir -p "$OUT/nginx/logs"
        cat >"$OUT/nginx/nginx.conf" <<EOF
load_module $RTMP_MODULE;
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 30000;
pid $OUT/nginx/nginx.pid;
error_log $OUT/nginx/logs/error.log error;
events { worker_connections 30000; }
rtmp {
    server {
        listen 127.0.0.1:$NGINX_PORT;
        chunk_size 4096;
        application live { live on; }
    }
}
EOF
        "${SERVER_PIN[@]}" nginx -p "$OUT/nginx" -c "$OUT/nginx/nginx.conf" &
        SERVER_PID=$!
        PORT=$NGINX_PORT
        ;;
    esac
    for _ in $(seq 50); do
        (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && return 0
        sleep 0.1
    done
    echo "$1 did not start listening on $PORT" >&2
    exit 1
}

stop_server() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}
trap stop_server EXIT

# Fetches rtmp-edge's /metrics once a second until process $1 ends; one line per scrape
# (seconds it took, HTTP status, bytes) in $2.
scrape_metrics() { # bench pid, log file
    : >"$2"
    while kill -0 "$1" 2>/dev/null; do
        curl -s -o /dev/null -w "%{time_total} %{http_code} %{size_download}\n" \
            "http://127.0.0.1:$EDGE_HTTP_PORT/metrics" >>"$2" || echo "0 000 0" >>"$2"
        sleep 1
    done
}

# Runs rtmp-bench with its arguments while sampling the server: writes NAME.json (the
# bench's figures) and NAME.server (CPU seconds used, RSS at start and peak).
measure() { # name, rtmp-bench args...
    local name=$1
    shift
    local cpu0 rss0 writes0
    cpu0=$(cpu_seconds "$SERVER_PID")
    writes0=$(write_calls "$SERVER_PID")
    rss0=$(rss_kb "$SERVER_PID")
    local peak=$rss0
    "${BENCH_PIN[@]}" "$BENCH" "$@" --json "$OUT/$name.json" >"$OUT/$name.log" 2>&1 &
    local bench=$!
    local scraper=""
    if [ "$SCRAPE" = 1 ] && [ "$PORT" = "$EDGE_PORT" ]; then
        scrape_metrics "$bench" "$OUT/$name.scrapes" &
        scraper=$!
    fi
    while kill -0 "$bench" 2>/dev/null; do
        local now
        now=$(rss_kb "$SERVER_PID")
        [ "$now" -gt "$peak" ] && peak=$now
        sleep 0.5
    done
    wait "$bench" || true
    if [ -n "$scraper" ]; then
        wait "$scraper" || true
        echo "   $name: $(wc -l <"$OUT/$name.scrapes") /metrics scrapes, $(grep -vc ' 200 ' "$OUT/$name.scrapes") failed"
    fi
    local cpu1 writes1
    cpu1=$(cpu_seconds "$SERVER_PID")
    writes1=$(write_calls "$SERVER_PID")
    echo "cpu_s=$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { print b - a }') rss_start_kb=$rss0 rss_peak_kb=$peak write_calls=$((writes1 - writes0))" >"$OUT/$name.server"
    echo "   $name: $(tail -n +1 "$OUT/$name.log" | grep -E '^(average Mbps|latency ms|max sustained|churn conn|failed|ramp stopped)' | tr -s ' ' | paste -sd ';' -)"
}

# A reconnect storm against the running server: BURST_STEADY players watch a live stream
# (rtmp-bench relay, its own publisher), then BURST_NEW new players connect within one
# second (rtmp-bench burst). Writes NAME-steady.json, NAME-burst.json and NAME.server.
burst() { # name
    local name=$1 url=rtmp://127.0.0.1:$PORT/live/storm
    local cpu0
    cpu0=$(cpu_seconds "$SERVER_PID")
    "$BENCH" relay "$url" "$url" --file "$MEDIA" -n "$BURST_STEADY" --rate 1000 --duration 30 --timeout 20 \
        --json "$OUT/$name-steady.json" >"$OUT/$name-steady.log" 2>&1 &
    local steady=$!
    # The storm comes once every steady player is in and the publisher has been live a while.
    for _ in $(seq 600); do
        grep -q "published [1-9]" "$OUT/$name-steady.log" 2>/dev/null && break
        sleep 0.1
    done
    sleep 5
    "$BENCH" burst "$url" -n "$BURST_NEW" --rate "$BURST_NEW" --timeout 10 --json "$OUT/$name-burst.json" \
        >"$OUT/$name-burst.log" 2>&1 || true
    wait "$steady" || true
    echo "cpu_s=$(awk -v a="$cpu0" -v b="$(cpu_seconds "$SERVER_PID")" 'BEGIN { print b - a }')" >"$OUT/$name.server"
    echo "   $name: $(grep -E '^(handshake ms|handshakes over|failed|first keyframe)' "$OUT/$name-burst.log" | tr -s ' ' | paste -sd ';' -)"
}

machine_line() {
    echo "Machine: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores), Linux $(uname -r); $(nginx -v 2>&1 | sed 's/.*: //'); $(date -u +%Y-%m-%d); load average at the start $(cut -d' ' -f1-3 /proc/loadavg)"
}

if [ "$BURST_COMPARE" = 1 ]; then
    for run in $(seq "$REPEAT"); do
        for config in rtmp-edge-backlog128 rtmp-edge nginx-rtmp; do
            echo "== burst: $config, run $run"
            EDGE_EXTRA=()
            [ "$config" = rtmp-edge-backlog128 ] && EDGE_EXTRA=(--listen-backlog 128)
            start_server "${config%-backlog128}"
            burst "burst-$config-$run"
            stop_server
        done
    done
    {
        machine_line
        echo "Command: BENCH_BURST=1 scripts/bench.sh ($BURST_STEADY watching, $BURST_NEW new in 1 s; $REPEAT runs each)"
        echo
        python3 - "$OUT" "$REPEAT" <<'PY'
import json, sys
out, repeat = sys.argv[1], int(sys.argv[2])
labels = {"rtmp-edge-backlog128": "rtmp-edge, --listen-backlog 128 (before)", "rtmp-edge": "rtmp-edge (after)", "nginx-rtmp": "nginx-rtmp"}
def load(path):
    try:
        return json.load(open(path))
    except (OSError, ValueError):
        return {}
print("| server | run | new: handshake ms p50 / p99 / max | handshakes over 1 s | new: timed out / failed | new: first keyframe p99 ms | watching: failed / behind (peak) | watching: latency p99 ms |")
print("| --- | ---: | --- | ---: | ---: | ---: | --- | ---: |")
for config in labels:
    for run in range(1, repeat + 1):
        b = load(f"{out}/burst-{config}-{run}-burst.json")
        s = load(f"{out}/burst-{config}-{run}-steady.json")
        h = b.get("handshake", {})
        timeouts = sum(v for k, v in b.get("errors", {}).items() if "timed out" in k)
        print(f"| {labels[config]} | {run} | {h.get('p50_ms', 0):.1f} / {h.get('p99_ms', 0):.1f} / {h.get('max_ms', 0):.1f} "
              f"| {b.get('handshakes_over_1s', 'n/a')} | {timeouts} / {b.get('failed', 'n/a')} | {b.get('first_keyframe', {}).get('p99_ms', 0):.1f} "
              f"| {s.get('failed', 'n/a')} / {s.get('peak_behind', 'n/a')} | {s.get('latency', {}).get('p99_ms', 0):.1f} |")
PY
    } | tee "$OUT/burst-table.md"
    exit 0
fi

if [ "$LATENCY_COMPARE" = 1 ]; then
    FANOUTS=${BENCH_FANOUTS:-"300 1000"}
    for run in $(seq "$REPEAT"); do
        for config in wb0 wb40 wb350 nginx-rtmp; do
            echo "== latency budget: $config, run $run"
            case $config in
            wb*) EDGE_EXTRA=(--write-batch "${config#wb}"); start_server rtmp-edge ;;
            *) EDGE_EXTRA=(); start_server nginx-rtmp ;;
            esac
            for n in $FANOUTS; do
                url=rtmp://127.0.0.1:$PORT/live/budget$n
                measure "budget-$config-$n-$run" relay "$url" "$url" --file "$MEDIA" -n "$n" --rate 1000 --duration "$FANOUT_SECS" --timeout 20
            done
            stop_server
        done
    done
    {
        machine_line
        echo "Command: BENCH_LATENCY=1 scripts/bench.sh$([ "$QUICK" = 1 ] && echo ' (BENCH_QUICK=1)') (fan-outs $FANOUTS, $FANOUT_SECS s each, $REPEAT runs)"
        echo
        python3 - "$OUT" "$FANOUTS" "$REPEAT" <<'PY'
import json, sys
out, fanouts, repeat = sys.argv[1], sys.argv[2].split(), int(sys.argv[3])
labels = {"wb0": "rtmp-edge --write-batch 0", "wb40": "rtmp-edge --write-batch 40", "wb350": "rtmp-edge --write-batch 350", "nginx-rtmp": "nginx-rtmp"}
def run(name):
    try:
        bench = json.load(open(f"{out}/{name}.json"))
        sampled = {k: float(v) for k, v in (f.split("=") for f in open(f"{out}/{name}.server").read().split())}
    except (OSError, ValueError):
        return None
    if not bench.get("bytes"):
        return None
    return sampled["cpu_s"] / (bench["bytes"] / 1e9), bench
print("| players | server | CPU s per GB, each run | mean | spread | added latency p50 / p99 ms, each run | failed / behind |")
print("| ---: | --- | --- | ---: | ---: | --- | --- |")
for n in fanouts:
    for config, label in labels.items():
        runs = [r for r in (run(f"budget-{config}-{n}-{i}") for i in range(1, repeat + 1)) if r]
        if not runs:
            print(f"| {n} | {label} | n/a | | | | |")
            continue
        values = [v for v, _ in runs]
        mean = sum(values) / len(values)
        spread = f"{(max(values) - min(values)) / mean * 100:.0f}%"
        latency = ", ".join(f"{b['latency']['p50_ms']:.1f} / {b['latency']['p99_ms']:.1f}" for _, b in runs)
        health = ", ".join(f"{b.get('failed')} / {b.get('peak_behind')}" for _, b in runs)
        print(f"| {n} | {label} | {', '.join(f'{v:.2f}' for v in values)} | {mean:.2f} | {spread} | {latency} | {health} |")
PY
    } | tee "$OUT/latency-table.md"
    exit 0
fi

if [ "$WORKERS_COMPARE" = 1 ]; then
    last=$(( $(nproc) - 1 ))
    for run in $(seq "$REPEAT"); do
        for workers in 1 2; do
            echo "== workers: --workers $workers, run $run"
            EDGE_EXTRA=(--workers "$workers")
            # One worker on the first core, the load generator on the last; two workers
            # take every core, so only the generator is pinned.
            if [ "$workers" = 1 ] && [ "$last" -gt 0 ]; then SERVER_PIN=(taskset -c 0); else SERVER_PIN=(); fi
            [ "$last" -gt 0 ] && BENCH_PIN=(taskset -c "$last")
            start_server rtmp-edge
            url=rtmp://127.0.0.1:$PORT/live/workers
            if [ "$QUICK" = 1 ]; then ramp_args=(--step 500 --step-secs 3 --max-players 3000); else ramp_args=(--step 250 --step-secs 6 --max-players 12000); fi
            measure "workers-$workers-$run" ramp "$url" "$url" --file "$MEDIA" --rate 1000 --max-latency-ms 500 "${ramp_args[@]}"
            stop_server
            SERVER_PIN=()
            BENCH_PIN=()
        done
    done
    {
        machine_line
        echo "Command: BENCH_WORKERS=1 scripts/bench.sh$([ "$QUICK" = 1 ] && echo ' (BENCH_QUICK=1)') ($REPEAT runs each; rtmp-bench pinned to core $last, --workers 1 to core 0)"
        echo
        python3 - "$OUT" "$REPEAT" <<'PY'
import json, sys
out, repeat = sys.argv[1], int(sys.argv[2])
print("| workers | max sustained players (p99 <= 500 ms), each run | mean | spread | server CPU s, each run | stopped because |")
print("| ---: | --- | ---: | ---: | --- | --- |")
for workers in (1, 2):
    runs = []
    for i in range(1, repeat + 1):
        try:
            bench = json.load(open(f"{out}/workers-{workers}-{i}.json"))
            sampled = {k: float(v) for k, v in (f.split("=") for f in open(f"{out}/workers-{workers}-{i}.server").read().split())}
        except (OSError, ValueError):
            continue
        runs.append((bench.get("ramp_max_players") or 0, sampled.get("cpu_s", 0), bench.get("ramp_failure") or "reached --max-players"))
    if not runs:
        continue
    values = [r[0] for r in runs]
    mean = sum(values) / len(values)
    spread = f"{(max(values) - min(values)) / mean * 100:.0f}%" if mean else "n/a"
    print(f"| {workers} | {', '.join(str(v) for v in values)} | {mean:.0f} | {spread} | {', '.join(f'{r[1]:.0f}' for r in runs)} | {'; '.join(r[2] for r in runs)} |")
PY
    } | tee "$OUT/workers-table.md"
    exit 0
fi

# A test CA and a certificate for localhost, for the TLS comparison.
make_certificates() {
    mkdir -p "$OUT/tls"
    cd "$OUT/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=rtmp-edge bench CA" \
        -keyout ca.key -out ca.pem 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
        -keyout relay.key -out relay.csr 2>/dev/null
    printf 'subjectAltName=DNS:localhost\n' >relay.ext
    openssl x509 -req -in relay.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile relay.ext -out relay.pem 2>/dev/null
    cd "$ROOT"
}

if [ "$TLS_COMPARE" = 1 ]; then
    make_certificates
    FANOUTS=${BENCH_FANOUTS:-"100 1000"}
    echo "== rtmp-edge, plain and TLS listeners in one process"
    start_server rtmp-edge
    for n in $FANOUTS; do
        for run in $(seq "$TLS_REPEAT"); do
            for transport in plain tls; do
                if [ "$transport" = tls ]; then
                    url=rtmps://localhost:$EDGE_TLS_PORT/live
                    tls_args=(--tls-ca "$OUT/tls/ca.pem")
                else
                    url=rtmp://127.0.0.1:$EDGE_PORT/live
                    tls_args=()
                fi
                measure "tls-compare-$transport-$n-$run" relay "$url/$transport$n-$run" "$url/$transport$n-$run" \
                    --file "$MEDIA" -n "$n" --rate 1000 --duration "$FANOUT_SECS" --timeout 20 "${tls_args[@]}"
            done
        done
    done
    stop_server
    {
        echo "Machine: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores), Linux $(uname -r); $(date -u +%Y-%m-%d)"
        echo "Command: BENCH_TLS=1 scripts/bench.sh$([ "$QUICK" = 1 ] && echo ' (BENCH_QUICK=1)') (fan-outs: $FANOUTS; $TLS_REPEAT runs each)"
        echo
        python3 - "$OUT" "$FANOUTS" "$TLS_REPEAT" <<'PY'
import json, sys
out, fanouts, repeat = sys.argv[1], sys.argv[2].split(), int(sys.argv[3])

def cpu_per_gb(name):
    try:
        bench = json.load(open(f"{out}/{name}.json"))
        fields = open(f"{out}/{name}.server").read().split()
        sampled = {k: float(v) for k, v in (f.split("=") for f in fields)}
    except (OSError, ValueError):
        return None, {}
    if not bench.get("bytes"):
        return None, bench
    bench["write_calls"] = sampled.get("write_calls", 0)
    return sampled["cpu_s"] / (bench["bytes"] / 1e9), bench

print("| players | transport | CPU s per GB, each run | mean | spread | KB per write call, each run | added latency p50 / p99 ms, each run | failed / behind | TLS / plain |")
print("| ---: | --- | --- | ---: | ---: | --- | --- | --- | ---: |")
for n in fanouts:
    means = {}
    for transport in ["plain", "tls"]:
        runs = [cpu_per_gb(f"tls-compare-{transport}-{n}-{run}") for run in range(1, repeat + 1)]
        values = [v for v, _ in runs if v is not None]
        mean = sum(values) / len(values) if values else None
        means[transport] = mean
        spread = f"{(max(values) - min(values)) / mean * 100:.0f}%" if mean else "n/a"
        health = ", ".join(f"{b.get('failed', 'n/a')} / {b.get('peak_behind', 'n/a')}" for _, b in runs)
        per_write = ", ".join(
            f"{b['bytes'] / b['write_calls'] / 1e3:.1f}" if b.get("write_calls") else "n/a" for _, b in runs)
        latency = ", ".join(
            f"{b.get('latency', {}).get('p50_ms', 0):.1f} / {b.get('latency', {}).get('p99_ms', 0):.1f}" for _, b in runs)
        ratio = ""
        if transport == "tls" and means.get("plain") and mean:
            ratio = f"{mean / means['plain']:.2f}x"
        shown = ", ".join(f"{v:.2f}" for v in values) or "n/a"
        label = "rtmps (TLS)" if transport == "tls" else "rtmp"
        print(f"| {n} | {label} | {shown} | {mean:.2f} | {spread} | {per_write} | {latency} | {health} | {ratio} |" if mean
              else f"| {n} | {label} | n/a | n/a | n/a | {per_write} | {latency} | {health} | |")
PY
    } | tee "$OUT/tls-table.md"
    exit 0
fi

if [ "$HTTP_FLV_COMPARE" = 1 ]; then
    FANOUTS=${BENCH_FANOUTS:-1000}
    echo "== rtmp-edge, RTMP, HTTP-FLV and WebSocket-FLV players in one process"
    start_server rtmp-edge
    for n in $FANOUTS; do
        for run in $(seq "$HTTP_FLV_REPEAT"); do
            for protocol in rtmp http-flv ws-flv; do
                name=$protocol$n-$run
                play=rtmp://127.0.0.1:$EDGE_PORT/live/$name
                [ "$protocol" != rtmp ] && play=http://127.0.0.1:$EDGE_HTTP_PORT/live/$name.flv
                measure "flv-compare-$protocol-$n-$run" relay "rtmp://127.0.0.1:$EDGE_PORT/live/$name" "$play" \
                    --protocol "$protocol" --file "$MEDIA" -n "$n" --rate 1000 --duration "$FANOUT_SECS" --timeout 20
            done
        done
    done
    stop_server
    {
        echo "Machine: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores), Linux $(uname -r); $(date -u +%Y-%m-%d)"
        echo "Command: BENCH_HTTP_FLV=1 scripts/bench.sh$([ "$QUICK" = 1 ] && echo ' (BENCH_QUICK=1)') (fan-outs: $FANOUTS; $HTTP_FLV_REPEAT runs each)"
        echo
        python3 - "$OUT" "$FANOUTS" "$HTTP_FLV_REPEAT" <<'PY'
import json, sys
out, fanouts, repeat = sys.argv[1], sys.argv[2].split(), int(sys.argv[3])

def run(name):
    try:
        bench = json.load(open(f"{out}/{name}.json"))
        fields = open(f"{out}/{name}.server").read().split()
        sampled = {k: float(v) for k, v in (f.split("=") for f in fields)}
    except (OSError, ValueError):
        return None, {}
    if not bench.get("bytes"):
        return None, bench
    bench["write_calls"] = sampled.get("write_calls", 0)
    return sampled["cpu_s"] / (bench["bytes"] / 1e9), bench

labels = {"rtmp": "RTMP", "http-flv": "HTTP-FLV", "ws-flv": "WebSocket-FLV"}
print("| players | protocol | CPU s per GB, each run | mean | KB per write call | added latency p50 / p99 ms | failed / behind | messages per player (min / max) | / RTMP |")
print("| ---: | --- | --- | ---: | --- | --- | --- | --- | ---: |")
for n in fanouts:
    means = {}
    for protocol in ["rtmp", "http-flv", "ws-flv"]:
        runs = [run(f"flv-compare-{protocol}-{n}-{r}") for r in range(1, repeat + 1)]
        values = [v for v, _ in runs if v is not None]
        mean = sum(values) / len(values) if values else None
        means[protocol] = mean
        per_write = ", ".join(f"{b['bytes'] / b['write_calls'] / 1e3:.1f}" if b.get("write_calls") else "n/a" for _, b in runs)
        latency = ", ".join(f"{b.get('latency', {}).get('p50_ms', 0):.1f} / {b.get('latency', {}).get('p99_ms', 0):.1f}" for _, b in runs)
        health = ", ".join(f"{b.get('failed', 'n/a')} / {b.get('peak_behind', 'n/a')}" for _, b in runs)
        messages = ", ".join(f"{b.get('min_player_messages', 'n/a')} / {b.get('max_player_messages', 'n/a')}" for _, b in runs)
        ratio = f"{mean / means['rtmp']:.2f}x" if protocol != "rtmp" and mean and means.get("rtmp") else ""
        shown = ", ".join(f"{v:.2f}" for v in values) or "n/a"
        print(f"| {n} | {labels[protocol]} | {shown} | {mean:.2f} | {per_write} | {latency} | {health} | {messages} | {ratio} |" if mean
              else f"| {n} | {labels[protocol]} | n/a | n/a | {per_write} | {latency} | {health} | {messages} | |")
PY
    } | tee "$OUT/http-flv-table.md"
    exit 0
fi

for server in $SERVERS; do
    echo "== $server"
    start_server $server
    url=rtmp://127.0.0.1:$PORT/live
    for n in $FANOUTS; do
        measure "$server-fanout-$n" relay "$url/fan$n" "$url/fan$n" --file "$MEDIA" -n "$n" \
            --rate 1000 --duration "$FANOUT_SECS" --timeout 20
    done
    if [ "$QUICK" = 1 ]; then ramp_args=(--step 500 --step-secs 3 --max-players 2000); else ramp_args=(--step 250 --step-secs 6 --max-players 8000); fi
    measure "$server-ramp" ramp "$url/ramp" "$url/ramp" --file "$MEDIA" --rate 1000 --max-latency-ms 500 "${ramp_args[@]}"
    measure "$server-churn" churn "$url/churn" "$url/churn" --file "$MEDIA" -n 20 --duration "$FANOUT_SECS"
    # Memory per connection on a fresh process: players of a stream nobody publishes.
    stop_server
    start_server $server
    sleep 1
    measure "$server-idle" play "$url/idle" -n "$IDLE_PLAYERS" --rate 2500 --duration 10 --timeout 20
    stop_server
done

{
    echo "Machine: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores), $(free -g | awk '/^Mem/ {print $2}') GiB RAM, Linux $(uname -r); $(nginx -v 2>&1 | sed 's/.*: //'); $(date -u +%Y-%m-%d)"
    echo "Command: scripts/bench.sh$([ "$QUICK" = 1 ] && echo ' (BENCH_QUICK=1)')$([ "$SCRAPE" = 1 ] && echo ' (BENCH_SCRAPE=1: rtmp-edge /metrics scraped every second)')"
    echo
    python3 - "$OUT" "$FANOUTS" <<'PY'
import json, sys
out, fanouts = sys.argv[1], sys.argv[2].split()
servers = ["rtmp-edge", "nginx-rtmp"]

def load(server, scenario):
    try:
        bench = json.load(open(f"{out}/{server}-{scenario}.json"))
    except (OSError, ValueError):
        bench = {}
    try:
        fields = open(f"{out}/{server}-{scenario}.server").read().split()
        sampled = {k: float(v) for k, v in (f.split("=") for f in fields)}
    except (OSError, ValueError):
        sampled = {}
    return bench, sampled

rows = []  # (label, edge value, nginx value, ratio, ratio meaning)
def row(label, values, fmt, better):
    e, n = values
    ratio = ""
    if e is not None and n not in (None, 0):
        ratio = f"{e / n:.2f}x"
    show = lambda v: "n/a" if v is None else fmt.format(v)
    rows.append((label, show(e), show(n), ratio, better))

def cpu_per_gb(bench, sampled):
    if not bench.get("bytes") or "cpu_s" not in sampled:
        return None
    return sampled["cpu_s"] / (bench["bytes"] / 1e9)

for n in fanouts:
    data = [load(s, f"fanout-{n}") for s in servers]
    row(f"fan-out {n}: server CPU s per GB delivered", [cpu_per_gb(*d) for d in data], "{:.2f}", "lower is better")
    row(f"fan-out {n}: received Mb/s, whole run incl. connect and drain ({int(n) * 2.5:.0f} while live)", [d[0].get("mbps") for d in data], "{:.0f}", "")
    row(f"fan-out {n}: added latency p50 ms", [d[0].get("latency", {}).get("p50_ms") for d in data], "{:.2f}", "lower is better")
    row(f"fan-out {n}: added latency p99 ms", [d[0].get("latency", {}).get("p99_ms") for d in data], "{:.2f}", "lower is better")
    row(f"fan-out {n}: failed / behind players", [None, None], "{}", "")
    rows[-1] = (rows[-1][0], *[f"{d[0].get('failed', 'n/a')} / {d[0].get('peak_behind', 'n/a')}" for d in data], "", "")
data = [load(s, "ramp") for s in servers]
row("max sustained players (ramp)", [d[0].get("ramp_max_players") for d in data], "{:.0f}", "higher is better")
rows.append(("ramp stopped because", *[d[0].get("ramp_failure") or "reached --max-players" for d in data], "", ""))
data = [load(s, "idle") for s in servers]
def rss_per_player(bench, sampled):
    players = bench.get("connected") or 0
    if not players or "rss_peak_kb" not in sampled:
        return None
    return (sampled["rss_peak_kb"] - sampled["rss_start_kb"]) / players
row(f"RSS per idle player KiB ({data[0][0].get('connected', 0)} / {data[1][0].get('connected', 0)} connected)", [rss_per_player(*d) for d in data], "{:.1f}", "lower is better")
data = [load(s, "churn") for s in servers]
row("churn connections/s", [d[0].get("churn_per_s") for d in data], "{:.0f}", "higher is better")
row("churn time to first keyframe p50 ms", [d[0].get("first_keyframe", {}).get("p50_ms") for d in data], "{:.1f}", "lower is better")
row("churn time to first keyframe p99 ms", [d[0].get("first_keyframe", {}).get("p99_ms") for d in data], "{:.1f}", "lower is better")

print("| scenario | rtmp-edge | nginx-rtmp | rtmp-edge / nginx-rtmp |")
print("| --- | ---: | ---: | ---: |")
for label, e, n, ratio, better in rows:
    print(f"| {label} | {e} | {n} | {ratio} |")
print()
print("Load generator CPU seconds per scenario (rtmp-edge / nginx-rtmp): " + ", ".join(
    f"{sc} {load(servers[0], sc)[0].get('loadgen_cpu_s', 0):.0f}/{load(servers[1], sc)[0].get('loadgen_cpu_s', 0):.0f}"
    for sc in [f"fanout-{n}" for n in fanouts] + ["ramp", "churn", "idle"]))
PY
} | tee "$OUT/table.md"

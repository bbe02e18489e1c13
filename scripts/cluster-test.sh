#!/usr/bin/env bash
# A tiered deployment in network namespaces, all on this machine:
#
#   client ns (players) --> lb ns (HAProxy, TCP, send-proxy-v2, health checks)
#                             --> edge1 ns, edge2 ns (rtmp-edge --proxy-protocol --origin ...)
#                                   --> origin ns (rtmp-edge, and an ffmpeg publisher)
#
# Every namespace has one veth into a bridge in a namespace of its own ("sw"), with an
# address in 10.214.14.0/24 that exists only inside these namespaces; nothing is routed
# off the machine and the host's own interfaces are not touched.
#
# It shows, and fails unless:
#   - players (ffmpeg and rtmpdump) spread over both edges;
#   - each edge opens exactly one pull for the stream (the edges' /api/v1/streams, and the
#     origin's /api/v1/clients: one player per edge address);
#   - the edges see the players' own address (/api/v1/clients ip = the client namespace's,
#     proxied_by = HAProxy's), and HAProxy's health checks leave no warning in their logs;
#   - after edge1 is killed, HAProxy marks it down and new players land on edge2, while
#     edge2's players go on untouched: every player's packets (ffprobe MD5 per packet)
#     are one contiguous run of the published file's, with no gap across the kill.
#
# Needs root (ip netns), haproxy, ffmpeg, ffprobe, rtmpdump, python3, and the release
# binary (built when missing; CARGO_TARGET_DIR is honoured). Cleans up namespaces and
# processes on exit. Exit code 77: the machine does not allow it (the reason is printed).
# Logs stay in $CARGO_TARGET_DIR/cluster-test/ (target/ by default).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$repo_root/target}"
case "$target_dir" in /*) ;; *) target_dir="$repo_root/$target_dir" ;; esac
work="$target_dir/cluster-test"
check="$repo_root/scripts/cluster_check.py"
started=$(date +%s)

log() { printf '[cluster-test] %s\n' "$*"; }
skip() { printf '[cluster-test] skipped: %s\n' "$*"; exit 77; }
fail() {
    printf '[cluster-test] FAILED: %s\n' "$*" >&2
    for file in "$work"/*.log; do
        [ -f "$file" ] || continue
        printf -- '--- %s (last lines)\n' "${file#$work/}" >&2
        tail -n 8 "$file" >&2
    done
    exit 1
}

[ "$(id -u)" -eq 0 ] || skip "needs root for ip netns (running as uid $(id -u))"
command -v ip >/dev/null 2>&1 || skip "ip (iproute2) not found"
for tool in haproxy ffmpeg ffprobe rtmpdump python3; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || skip "$tool not found (scripts/test.sh installs it)"
done
haproxy_bin=$(command -v haproxy || echo /usr/sbin/haproxy)

prefix="rtec$$"
probe="$prefix-probe"
ip netns add "$probe" 2>/dev/null || skip "ip netns add is not allowed here (a container without CAP_SYS_ADMIN?)"
if ! ip -n "$probe" link add probe0 type bridge 2>/dev/null; then
    ip netns del "$probe"
    skip "cannot create a bridge inside a network namespace"
fi
ip netns del "$probe"

bin="$target_dir/release/rtmp-edge"
if [ ! -x "$bin" ]; then
    log "building the release binary"
    (cd "$repo_root" && cargo build --release --bin rtmp-edge)
fi

rm -rf "$work"
mkdir -p "$work"
namespaces=(sw origin edge1 edge2 lb client)
declare -A pid=()

cleanup() {
    local name ns
    for name in "${!pid[@]}"; do
        kill -KILL "${pid[$name]}" 2>/dev/null || true
    done
    for ns in "${namespaces[@]}"; do
        if ip netns list | grep -qw "$prefix-$ns"; then
            # Anything still running in a namespace of this run was started by it.
            for stray in $(ip netns pids "$prefix-$ns" 2>/dev/null); do
                kill -KILL "$stray" 2>/dev/null || true
            done
            ip netns del "$prefix-$ns" 2>/dev/null || true
        fi
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- the network
net=10.214.14
declare -A addr=([origin]=$net.10 [edge1]=$net.21 [edge2]=$net.22 [lb]=$net.30 [client]=$net.40)
for ns in "${namespaces[@]}"; do
    ip netns add "$prefix-$ns"
    ip -n "$prefix-$ns" link set lo up
done
ip -n "$prefix-sw" link add br0 type bridge
ip -n "$prefix-sw" link set br0 up
for ns in origin edge1 edge2 lb client; do
    ip -n "$prefix-$ns" link add eth0 type veth peer name "$ns" netns "$prefix-sw"
    ip -n "$prefix-$ns" addr add "${addr[$ns]}/24" dev eth0
    ip -n "$prefix-$ns" link set eth0 up
    ip -n "$prefix-sw" link set "$ns" master br0
    ip -n "$prefix-sw" link set "$ns" up
done
log "namespaces $prefix-{${namespaces[*]}} on $net.0/24"

# nsx NS COMMAND...: runs a command in a namespace.
nsx() { local ns=$1; shift; ip netns exec "$prefix-$ns" "$@"; }
# start NS NAME COMMAND...: runs it in the background, output to NAME.log.
start() {
    local ns=$1 name=$2; shift 2
    ip netns exec "$prefix-$ns" "$@" >"$work/$name.log" 2>&1 &
    pid[$name]=$!
    disown "$!"
}
api() { nsx client python3 "$check" get "http://$1:8080$2"; }
wait_api() { nsx client python3 "$check" wait "http://$1:8080$2" "$3" "${4:-15}" >/dev/null || fail "waiting for $1$2: $3"; }
json() { python3 -c "import json,sys; j=json.load(sys.stdin); print($1)"; }

# ---------------------------------------------------------------- media, origin, publisher
media="$target_dir/cluster-test-media.flv"
if [ ! -s "$media" ]; then
    log "making 90 s of test media (320x240 H.264, noise AAC: every packet differs)"
    ffmpeg -nostdin -hide_banner -loglevel error -f lavfi -i testsrc2=size=320x240:rate=25 \
        -f lavfi -i anoisesrc=r=44100:a=0.05 -t 90 -c:v libx264 -preset ultrafast -g 25 \
        -pix_fmt yuv420p -c:a aac -b:a 64k -f flv -y "$media.tmp" && mv "$media.tmp" "$media"
fi
start origin origin "$bin" --listen "${addr[origin]}:1935" --http-listen "${addr[origin]}:8080"
wait_api "${addr[origin]}" /api/v1/summary 'True' 10
start origin publisher ffmpeg -nostdin -hide_banner -loglevel warning -re -i "$media" -c copy -f flv \
    "rtmp://${addr[origin]}:1935/live/cam"
wait_api "${addr[origin]}" /api/v1/streams 'any(s["name"] == "cam" and s["live"] for s in j)'
log "origin live: live/cam published by ffmpeg"

# ---------------------------------------------------------------- edges, HAProxy
for edge in edge1 edge2; do
    start "$edge" "$edge" "$bin" --listen "${addr[$edge]}:1935" --http-listen "${addr[$edge]}:8080" \
        --origin "${addr[origin]}:1935" --proxy-protocol
done
for edge in edge1 edge2; do
    wait_api "${addr[$edge]}" /api/v1/summary 'True' 10
done
cat >"$work/haproxy.cfg" <<EOF
global
    maxconn 1000
defaults
    mode tcp
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    timeout check 1s
    retries 2
    option redispatch
listen rtmp
    bind ${addr[lb]}:1935
    balance roundrobin
    server edge1 ${addr[edge1]}:1935 send-proxy-v2 check inter 300 fall 2 rise 2
    server edge2 ${addr[edge2]}:1935 send-proxy-v2 check inter 300 fall 2 rise 2
EOF
"$haproxy_bin" -c -q -f "$work/haproxy.cfg" || fail "haproxy -c rejected the configuration"
start lb haproxy "$haproxy_bin" -db -f "$work/haproxy.cfg"
nsx client python3 - "${addr[lb]}" <<'EOF' || fail "HAProxy does not accept on ${addr[lb]}:1935"
import socket, sys, time
deadline = time.monotonic() + 10
while True:
    try:
        socket.create_connection((sys.argv[1], 1935), timeout=1).close()
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.1)
EOF

# ---------------------------------------------------------------- players
url="rtmp://${addr[lb]}:1935/live/cam"
players_on() { api "${addr[$1]}" /api/v1/summary | json 'j["players"]'; }
declare -A placed=() began=()
count=0
# player NAME KIND: starts an ffmpeg or rtmpdump player in the client namespace, waits
# until an edge counts it, and notes which edge took it.
player() {
    local name=$1 kind=$2 before1 before2 now1 now2
    before1=$(players_on edge1 2>/dev/null || echo 0)
    before2=$(players_on edge2)
    case "$kind" in
        ffmpeg) start client "$name" ffmpeg -nostdin -hide_banner -loglevel warning -i "$url" -c copy -f flv -y "$work/$name.flv" ;;
        rtmpdump) start client "$name" rtmpdump -q -r "$url" --live -o "$work/$name.flv" ;;
    esac
    began[$name]=$(date +%s.%N)
    for _ in $(seq 1 100); do
        now1=$(players_on edge1 2>/dev/null || echo 0)
        now2=$(players_on edge2)
        if [ $((now1 + now2)) -gt $((before1 + before2)) ]; then
            if [ "$now1" -gt "$before1" ]; then placed[$name]=edge1; else placed[$name]=edge2; fi
            log "$name ($kind) plays through ${placed[$name]}"
            return 0
        fi
        sleep 0.1
    done
    fail "$name did not start playing"
}
player p1 ffmpeg
player p2 rtmpdump
player p3 ffmpeg
player p4 rtmpdump
player p5 ffmpeg
player p6 ffmpeg
before_kill=(p1 p2 p3 p4 p5 p6)

on1=$(players_on edge1)
on2=$(players_on edge2)
[ "$on1" -ge 2 ] && [ "$on2" -ge 2 ] || fail "players did not spread: $on1 on edge1, $on2 on edge2"
for edge in edge1 edge2; do
    api "${addr[$edge]}" /api/v1/streams >"$work/$edge-streams.json"
    pulls=$(json '[(u["kind"], u["state"]) for s in j if s["name"] == "cam" for u in s["upstreams"]]' <"$work/$edge-streams.json")
    [ "$pulls" = "[('pull', 'playing')]" ] || fail "$edge: upstreams of live/cam: $pulls, expected one playing pull"
    api "${addr[$edge]}" /api/v1/clients >"$work/$edge-clients.json"
    seen=$(json 'sorted({(c["ip"], c.get("proxied_by", "-").split(":")[0]) for c in j if c["role"] == "player"})' <"$work/$edge-clients.json")
    [ "$seen" = "[('${addr[client]}', '${addr[lb]}')]" ] || fail "$edge: players' (ip, proxied_by): $seen"
done
api "${addr[origin]}" /api/v1/clients >"$work/origin-clients.json"
pulls_at_origin=$(json 'sorted(c["ip"] for c in j if c["role"] == "player")' <"$work/origin-clients.json")
[ "$pulls_at_origin" = "['${addr[edge1]}', '${addr[edge2]}']" ] || fail "origin's players (one pull per edge expected): $pulls_at_origin"
log "spread: $on1 players on edge1, $on2 on edge2; one pull each; the edges see ${addr[client]} through ${addr[lb]}"

# ---------------------------------------------------------------- kill edge1
sleep 4 # let the players play, so the kill falls in the middle of their runs
killed_at=$(date +%s.%N)
kill -KILL "${pid[edge1]}"
unset 'pid[edge1]'
log "edge1 killed"
for _ in $(seq 1 100); do
    grep -q "edge1 is DOWN" "$work/haproxy.log" && break
    sleep 0.1
done
grep -q "edge1 is DOWN" "$work/haproxy.log" || fail "HAProxy did not mark edge1 down"
log "HAProxy: $(grep -o 'Server rtmp/edge1 is DOWN[^.]*' "$work/haproxy.log" | head -n1)"
player p7 ffmpeg
player p8 rtmpdump
for name in p7 p8; do
    [ "${placed[$name]}" = edge2 ] || fail "$name went to ${placed[$name]} after edge1 was killed"
done
wait_api "${addr[origin]}" /api/v1/clients "sorted(c['ip'] for c in j if c['role'] == 'player') == ['${addr[edge2]}']"
api "${addr[edge2]}" /api/v1/streams >"$work/edge2-streams-after.json"
pulls=$(json '[(u["kind"], u["state"], u["reconnects"]) for s in j if s["name"] == "cam" for u in s["upstreams"]]' <"$work/edge2-streams-after.json")
[ "$pulls" = "[('pull', 'playing', 0)]" ] || fail "edge2's pull after the kill: $pulls"
sleep 4

# ---------------------------------------------------------------- end, and judge
# edge2 passed every health check from the start (edge1's went on until the kill).
grep -q "edge2 is DOWN" "$work/haproxy.log" && fail "HAProxy marked edge2 down"
ended_at=$(date +%s.%N)
kill -TERM "${pid[edge2]}" # a graceful shutdown: players get Play.Stop and end by themselves
for name in "${before_kill[@]}" p7 p8; do
    [ "${placed[$name]}" = edge2 ] || continue
    for _ in $(seq 1 100); do
        kill -0 "${pid[$name]}" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "${pid[$name]}" 2>/dev/null && fail "$name did not end at edge2's shutdown"
    unset "pid[$name]"
done
# Frames a player of edge2 must hold: all the media time it was connected, less 2 s
# (joining at the cached keyframe can start up to a GOP earlier; ends are not exact).
min_frames() { python3 -c "print(max(1, int((float('$2') - float('$1') - 2) * 25)))"; }
for name in "${before_kill[@]}" p7 p8; do
    if [ "${placed[$name]}" = edge2 ]; then
        python3 "$check" run "$media" "$work/$name.flv" --min-video "$(min_frames "${began[$name]}" "$ended_at")" \
            --label "$name (edge2, played through)" || fail "$name"
    else
        python3 "$check" run "$media" "$work/$name.flv" --cut --label "$name (edge1, cut at the kill)" || fail "$name"
    fi
done
# A health check is a connection from HAProxy's own address; proxied players are logged
# with theirs.
if grep -h -E "(WARN|INFO) +[a-z_:]+\] ${addr[lb]//./\\.}:[0-9]+: " "$work/edge1.log" "$work/edge2.log"; then
    fail "HAProxy's health checks were logged above debug by the edges"
fi
log "edge2's players went on through the kill with no gap; HAProxy's checks left no line above debug"
log "passed in $(( $(date +%s) - started )) s (edge1 killed $(python3 -c "print(round(float('$ended_at') - float('$killed_at'), 1))") s before the end)"

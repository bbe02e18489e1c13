#!/usr/bin/env bash
# Regenerates tests/fixtures/: small FLV files made with the system ffmpeg from
# synthetic lavfi sources, and real RTMP wire bytes recorded between ffmpeg,
# rtmpdump and nginx-rtmp through scripts/record_proxy.py.
#
# `scripts/make-fixtures.sh ertmp` regenerates only tests/fixtures/ertmp/ (needs only
# python3 with imageio-ffmpeg).
#
# Needs: ffmpeg (with libx264), rtmpdump, nginx + libnginx-mod-rtmp, python3,
# coreutils timeout. Everything runs on 127.0.0.1 with ephemeral ports.
# The FLV files are reproducible with the same ffmpeg build; the wire
# recordings are not (the handshake carries random bytes and timing varies).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

fixtures=tests/fixtures
wire=$fixtures/wire
proxy=scripts/record_proxy.py
rtmp_module=/usr/lib/nginx/modules/ngx_rtmp_module.so
max_recording_bytes=409600

log() { printf '[make-fixtures] %s\n' "$*"; }
die() { printf '[make-fixtures] error: %s\n' "$*" >&2; exit 1; }

for tool in ffmpeg ffprobe rtmpdump python3 timeout; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (scripts/test.sh installs the media tools)"
done
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx_bin" ] || die "nginx not found"
[ -f "$rtmp_module" ] || die "$rtmp_module not found (apt-get install libnginx-mod-rtmp)"

tmp=$(mktemp -d /tmp/rtmp-edge-fixtures.XXXXXX)
bg_pids=()
cleanup() {
    local pid
    for pid in "${bg_pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${bg_pids[@]}"; do
        # Give each a moment, then insist; never wait forever.
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ FLV files
# Deterministic: synthetic sources, single-threaded encoders, bitexact muxing,
# no metadata that carries versions or dates.
common_out=(-fflags +bitexact -flags:v +bitexact -flags:a +bitexact -map_metadata -1 -threads 1)
video_in=(-f lavfi -i "testsrc2=size=320x240:rate=25:duration=4")
audio_in=(-f lavfi -i "sine=frequency=440:beep_factor=4:sample_rate=44100:duration=4")
# A keyframe every 25 frames (1 s at 25 fps), no scene-cut keyframes, no
# B-frames (so dts == pts), a small constant-ish bitrate.
x264=(-c:v libx264 -preset veryfast -tune zerolatency -profile:v main -pix_fmt yuv420p
      -g 25 -keyint_min 25 -sc_threshold 0 -bf 0 -b:v 250k -maxrate 250k -bufsize 250k
      -x264-params threads=1:lookahead-threads=1)
aac=(-c:a aac -b:a 64k -ac 2)

encode() {
    local out=$1; shift
    log "writing $out"
    timeout 60 ffmpeg -nostdin -hide_banner -loglevel error -y "$@" "${common_out[@]}" -f flv "$out"
}
if [ "${1:-}" != ertmp ]; then
    encode "$fixtures/h264_aac.flv" "${video_in[@]}" "${audio_in[@]}" -map 0:v -map 1:a "${x264[@]}" "${aac[@]}"
    encode "$fixtures/audio_only.flv" "${audio_in[@]}" -map 0:a "${aac[@]}"
    encode "$fixtures/video_only.flv" "${video_in[@]}" -map 0:v "${x264[@]}"
fi

# ------------------------------------------------------------------ E-RTMP streams
# Enhanced RTMP fixtures for tests/ertmp_interop.rs, made with the current ffmpeg
# that imageio-ffmpeg ships (Debian's 5.1 cannot write HEVC/AV1/VP9/Opus into FLV).
# 160x120, 25 fps, a keyframe every 25 frames (1 s) and no scene-cut keyframes, 4 s:
# long enough for a player to join mid-stream at a later keyframe, small enough to
# commit (about 50 KB each).
make_ertmp_fixtures() {
    local new_ffmpeg out=$fixtures/ertmp
    new_ffmpeg=${RTMP_EDGE_NEW_FFMPEG:-$(python3 -c 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())' 2>/dev/null || true)}
    [ -n "$new_ffmpeg" ] && [ -x "$new_ffmpeg" ] \
        || die "the imageio-ffmpeg binary is missing (python3 -m pip install imageio-ffmpeg)"
    mkdir -p "$out"
    local src=(-f lavfi -i "testsrc2=size=160x120:rate=25:duration=4"
               -f lavfi -i "sine=frequency=440:beep_factor=4:sample_rate=48000:duration=4"
               -map 0:v -map 1:a -pix_fmt yuv420p -b:v 64k)
    local x265=(-c:v libx265 -preset ultrafast
                -x265-params "keyint=25:min-keyint=25:scenecut=0:bframes=0:pools=1:frame-threads=1:info=0:log-level=error")
    local x264=(-c:v libx264 -preset veryfast -tune zerolatency -profile:v main -g 25 -keyint_min 25
                -sc_threshold 0 -bf 0 -x264-params threads=1:lookahead-threads=1)
    local av1=(-c:v libsvtav1 -preset 10 -g 25 -svtav1-params "keyint=25:scd=0:lp=1")
    local vp9=(-c:v libvpx-vp9 -deadline realtime -cpu-used 8 -g 25 -keyint_min 25 -row-mt 0)
    local aac=(-c:a aac -b:a 32k -ac 2) opus=(-c:a libopus -b:a 32k -ac 2)
    ertmp_encode() {
        local file=$1; shift
        log "writing $out/$file"
        timeout 60 "$new_ffmpeg" -nostdin -hide_banner -loglevel error -y "${src[@]}" "$@" \
            "${common_out[@]}" -f flv "$out/$file" 2> >(grep -v '^Svt\[' >&2)
    }
    ertmp_encode hevc_aac.flv "${x265[@]}" "${aac[@]}"
    ertmp_encode hevc_opus.flv "${x265[@]}" "${opus[@]}"
    ertmp_encode av1_opus.flv "${av1[@]}" "${opus[@]}"
    ertmp_encode vp9_opus.flv "${vp9[@]}" "${opus[@]}"
    ertmp_encode h264_aac_legacy.flv "${x264[@]}" "${aac[@]}"
    # Multitrack (E-RTMP v2): two HEVC tracks (160x120 and 96x72) and two Opus tracks
    # (440 and 660 Hz), 3 s. ffmpeg sends track 0 with plain ex headers and track 1 as
    # Multitrack/OneTrack messages.
    log "writing $out/hevc_opus_multitrack.flv"
    timeout 60 "$new_ffmpeg" -nostdin -hide_banner -loglevel error -y \
        -f lavfi -i "testsrc2=size=160x120:rate=25:duration=3" \
        -f lavfi -i "sine=frequency=440:beep_factor=4:sample_rate=48000:duration=3" \
        -f lavfi -i "sine=frequency=660:sample_rate=48000:duration=3" \
        -filter_complex "[0:v]split[big][in];[in]scale=96:72[small]" \
        -map "[big]" -map "[small]" -map 1:a -map 2:a -pix_fmt yuv420p \
        "${x265[@]}" -b:v:0 48k -b:v:1 24k -c:a libopus -b:a 24k -ac 1 \
        "${common_out[@]}" -f flv "$out/hevc_opus_multitrack.flv"
    local f size
    for f in "$out"/*.flv; do
        size=$(stat -c %s "$f")
        [ "$size" -lt 102400 ] || die "$f is $size bytes, over 100 KB"
    done
}
make_ertmp_fixtures
if [ "${1:-}" = ertmp ]; then
    # `make-fixtures.sh ertmp`: only the E-RTMP streams (no nginx, no wire recordings).
    ls -l "$fixtures"/ertmp
    exit 0
fi

# ------------------------------------------------------------------ nginx-rtmp
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

start_nginx() {
    local attempt
    for attempt in 1 2 3; do
        nginx_port=$(free_port)
        cat > "$tmp/nginx.conf" <<CONF
load_module $rtmp_module;
daemon off;
master_process off;
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log info;
events { worker_connections 64; }
rtmp {
    access_log $tmp/nginx-access.log;
    server {
        listen 127.0.0.1:$nginx_port;
        chunk_size 4096;
        application live {
            live on;
        }
    }
}
CONF
        "$nginx_bin" -p "$tmp" -e "$tmp/nginx-error.log" -c "$tmp/nginx.conf" &
        nginx_pid=$!
        bg_pids+=("$nginx_pid")
        local _
        for _ in $(seq 1 50); do
            if python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),0.2).close()' \
                "$nginx_port" 2>/dev/null; then
                log "nginx-rtmp listening on 127.0.0.1:$nginx_port (pid $nginx_pid)"
                return 0
            fi
            kill -0 "$nginx_pid" 2>/dev/null || break
            sleep 0.1
        done
        log "nginx did not come up on port $nginx_port (attempt $attempt):"
        tail -n 5 "$tmp/nginx-error.log" >&2 || true
        kill -TERM "$nginx_pid" 2>/dev/null || true
        wait "$nginx_pid" 2>/dev/null || true
    done
    die "could not start nginx-rtmp"
}

# Starts the recording proxy in the background, to nginx, writing $wire/$1.*;
# sets proxy_port and proxy_pid.
start_proxy() {
    local name=$1 port_file="$tmp/$1.port"
    rm -f "$port_file"
    python3 -B "$proxy" --target "127.0.0.1:$nginx_port" --out "$wire/$name" \
        --port-file "$port_file" --timeout 30 --max-bytes "$max_recording_bytes" &
    proxy_pid=$!
    bg_pids+=("$proxy_pid")
    local _
    for _ in $(seq 1 50); do
        [ -s "$port_file" ] && break
        sleep 0.1
    done
    [ -s "$port_file" ] || die "record_proxy did not start"
    proxy_port=$(cat "$port_file")
}

wait_proxy() {
    # The proxy exits on its own once the connection closes (30 s at most).
    wait "$proxy_pid" || die "record_proxy for $1 failed"
}

# Waits until the publisher is live on nginx: a short probe play straight to
# nginx must receive media. (rtmpdump's --stop counts absolute stream time, so
# a live play is bounded with timeout instead; rtmpdump exits cleanly on TERM.)
wait_for_stream() {
    local _ probe="$tmp/probe.flv"
    for _ in $(seq 1 20); do
        rm -f "$probe"
        timeout 1.5 rtmpdump -q --live -r "rtmp://127.0.0.1:$nginx_port/live/stream" \
            -o "$probe" >/dev/null 2>&1 || true
        if [ -f "$probe" ] && [ "$(stat -c %s "$probe")" -gt 4096 ]; then
            return 0
        fi
        sleep 0.3
    done
    die "the publisher never went live on nginx"
}

mkdir -p "$wire"
rm -f "$wire"/*.c2s "$wire"/*.s2c
start_nginx

# 1. ffmpeg publishing through the proxy. No -re: nginx takes the file as fast
# as ffmpeg sends it, and the bytes are the same apart from pacing.
log "recording ffmpeg_publish"
start_proxy ffmpeg_publish
timeout 30 ffmpeg -nostdin -hide_banner -loglevel error -i "$fixtures/h264_aac.flv" -c copy \
    -f flv "rtmp://127.0.0.1:$proxy_port/live/stream"
wait_proxy ffmpeg_publish

# 2. and 3. need a live stream: a publisher straight to nginx, looping the
# fixture in real time for as long as the plays take.
log "starting a background publisher"
timeout 60 ffmpeg -nostdin -hide_banner -loglevel error -re -stream_loop -1 \
    -i "$fixtures/h264_aac.flv" -c copy -f flv "rtmp://127.0.0.1:$nginx_port/live/stream" \
    2>"$tmp/publisher.log" &
bg_pids+=("$!")
wait_for_stream

log "recording rtmpdump_play"
start_proxy rtmpdump_play
# About 2 s of play, then timeout's TERM makes rtmpdump close the session
# (deleteStream, then FIN), so the recording ends the way a real player's does.
rc=0
timeout 2 rtmpdump -q --live -r "rtmp://127.0.0.1:$proxy_port/live/stream" -o /dev/null || rc=$?
[ "$rc" -eq 124 ] || [ "$rc" -eq 0 ] || [ "$rc" -eq 2 ] || die "rtmpdump failed ($rc)"
wait_proxy rtmpdump_play

log "recording ffmpeg_play"
start_proxy ffmpeg_play
timeout 20 ffmpeg -nostdin -hide_banner -loglevel error -i "rtmp://127.0.0.1:$proxy_port/live/stream" \
    -t 2 -c copy -f flv -y /dev/null
wait_proxy ffmpeg_play

# ------------------------------------------------------------------ checks
for f in "$wire"/*.c2s "$wire"/*.s2c; do
    size=$(stat -c %s "$f")
    [ "$size" -gt 0 ] || die "$f is empty"
    [ "$size" -lt "$max_recording_bytes" ] || die "$f is $size bytes, over the $max_recording_bytes limit"
done
for f in "$fixtures"/*.flv; do
    size=$(stat -c %s "$f")
    [ "$size" -lt 307200 ] || die "$f is $size bytes, over 300 KB"
done
log "done:"
ls -l "$fixtures"/*.flv "$wire"
du -sh "$fixtures"

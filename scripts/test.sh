#!/usr/bin/env bash
# The project's one test command: installs the real programs the interop tests
# talk to (only when missing), runs every cargo test target, then every fuzz target
# for a short time (scripts/fuzz.sh).
#
# Works as root on a fresh Debian machine (CI) and on a developer machine that
# already has everything. Knobs (environment):
#   RTMP_EDGE_SKIP_INSTALL=1   never install anything, only report what is missing
#   CARGO_BUILD_JOBS, RUST_TEST_THREADS   override parallelism (default: nproc)
#   CARGO_PROFILE_RELEASE_LTO  default "off" here; set "fat" to test the shipped profile
#   RTMP_EDGE_FUZZ_SECONDS     seconds per fuzz target (default 20; 0 skips fuzzing)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

script_start=$(date +%s)
step_start=$script_start

log() { printf '[test.sh] %s\n' "$*"; }
die() { printf '[test.sh] error: %s\n' "$*" >&2; exit 1; }
step_done() {
    local now
    now=$(date +%s)
    log "$1 took $((now - step_start)) s"
    step_start=$now
}

# ---------------------------------------------------------------- privileges
# apt and system-wide pip need root; use sudo when it is there and we are not.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run: $* (install it by hand or re-run as root)"
    fi
}

apt_updated=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 \
        || die "apt-get not found: install by hand: $*"
    if [ "${RTMP_EDGE_SKIP_INSTALL:-0}" = 1 ]; then
        die "missing packages and RTMP_EDGE_SKIP_INSTALL=1: $*"
    fi
    if [ "$apt_updated" -eq 0 ]; then
        log "apt-get update"
        as_root apt-get -o DPkg::Lock::Timeout=300 update -q
        apt_updated=1
    fi
    log "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get -o DPkg::Lock::Timeout=300 install -y -q "$@"
}

# ---------------------------------------------------------------- cargo
# rustup puts cargo in ~/.cargo/bin, which a non-login shell may not have on PATH.
if ! command -v cargo >/dev/null 2>&1 && [ -x "${HOME:-/root}/.cargo/bin/cargo" ]; then
    export PATH="${HOME:-/root}/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 \
    || die "cargo not found. Install Rust with rustup (https://rustup.rs), then re-run scripts/test.sh."

# ---------------------------------------------------------------- media tools
have_rtmp_module() {
    [ -f /usr/lib/nginx/modules/ngx_rtmp_module.so ] \
        || dpkg -s libnginx-mod-rtmp >/dev/null 2>&1
}
have_gst_rtmp2() {
    command -v gst-inspect-1.0 >/dev/null 2>&1 \
        && gst-inspect-1.0 rtmp2src >/dev/null 2>&1 \
        && gst-inspect-1.0 rtmp2sink >/dev/null 2>&1
}

missing=()
# openssl: the RTMPS tests' TLS 1.0/1.1 and renegotiation clients (s_client).
for tool in ffmpeg ffprobe rtmpdump nginx gst-launch-1.0 openssl; do
    # nginx lives in /usr/sbin, which a non-root PATH may lack.
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
done
have_rtmp_module || missing+=("nginx rtmp module")
have_gst_rtmp2 || missing+=("gstreamer rtmp2 elements")

if [ "${#missing[@]}" -gt 0 ]; then
    log "missing: ${missing[*]}"
    # Keep apt from starting nginx as a service on install: the tests run their
    # own nginx on ephemeral ports, and a system nginx would hold ports 80/1935.
    # policy-rc.d exit 101 is Debian's documented "do not start services" switch.
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [ ! -e "$policy" ]; then
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
        created_policy=1
    fi
    nginx_was_installed=0
    dpkg -s nginx >/dev/null 2>&1 && nginx_was_installed=1
    install_rc=0
    apt_install ffmpeg rtmpdump nginx libnginx-mod-rtmp openssl \
        gstreamer1.0-tools gstreamer1.0-plugins-bad gstreamer1.0-plugins-good || install_rc=$?
    if [ "$created_policy" -eq 1 ]; then
        as_root rm -f "$policy"
    fi
    [ "$install_rc" -eq 0 ] || die "apt-get install failed ($install_rc)"
    if [ "$nginx_was_installed" -eq 0 ]; then
        # In case a service manager started it anyway: stop and disable it.
        if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
            as_root systemctl disable --now nginx >/dev/null 2>&1 || true
        fi
        if [ -s /run/nginx.pid ]; then
            pid=$(cat /run/nginx.pid)
            if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
                log "stopping the system nginx (pid $pid) that apt started"
                as_root kill "$pid" || true
            fi
        fi
    fi
    have_rtmp_module || die "nginx rtmp module still missing after install"
    have_gst_rtmp2 || die "gstreamer rtmp2src/rtmp2sink still missing after install"
fi
command -v tshark >/dev/null 2>&1 || log "tshark not found (optional; capture-based checks will be skipped)"

# ---------------------------------------------------------------- newer ffmpeg (E-RTMP)
# imageio-ffmpeg ships a current static ffmpeg inside its wheel; Debian's ffmpeg
# is too old for Enhanced RTMP.
if ! command -v python3 >/dev/null 2>&1; then
    apt_install python3 python3-pip
fi
if ! python3 -c 'import imageio_ffmpeg' >/dev/null 2>&1; then
    [ "${RTMP_EDGE_SKIP_INSTALL:-0}" = 1 ] && die "imageio-ffmpeg missing and RTMP_EDGE_SKIP_INSTALL=1"
    if ! python3 -m pip --version >/dev/null 2>&1; then
        apt_install python3-pip
    fi
    log "pip install imageio-ffmpeg"
    export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
    pip_log=$(mktemp)
    if ! python3 -m pip install -q imageio-ffmpeg >"$pip_log" 2>&1; then
        if grep -q externally-managed-environment "$pip_log"; then
            # Debian 12+ marks its python as externally managed (PEP 668); this
            # package only adds a self-contained binary, so overriding is safe.
            log "pip: externally managed environment, retrying with --break-system-packages"
            python3 -m pip install -q --break-system-packages imageio-ffmpeg
        else
            cat "$pip_log" >&2
            rm -f "$pip_log"
            die "pip install imageio-ffmpeg failed"
        fi
    fi
    rm -f "$pip_log"
fi
RTMP_EDGE_NEW_FFMPEG=$(python3 -c 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())')
"$RTMP_EDGE_NEW_FFMPEG" -hide_banner -version >/dev/null 2>&1 \
    || die "the imageio-ffmpeg binary does not run: $RTMP_EDGE_NEW_FFMPEG"
export RTMP_EDGE_NEW_FFMPEG

# ---------------------------------------------------------------- packages with a service
# install_without_starting "PACKAGES" "SERVICES": apt-get install, with Debian's "do not
# start services" switch (policy-rc.d exit 101) on for the install, then the services
# stopped and disabled in case a service manager started them anyway. The tests run their
# own instances on their own ports.
install_without_starting() {
    local packages=($1) services=($2)
    local policy=/usr/sbin/policy-rc.d created=0 rc=0 service
    if [ ! -e "$policy" ]; then
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
        created=1
    fi
    apt_install --no-install-recommends "${packages[@]}" || rc=$?
    [ "$created" -eq 1 ] && as_root rm -f "$policy"
    [ "$rc" -eq 0 ] || die "apt-get install ${packages[*]} failed ($rc)"
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        for service in "${services[@]}"; do
            as_root systemctl disable --now "$service" >/dev/null 2>&1 || true
        done
    fi
}

# ---------------------------------------------------------------- metrics checkers
# /metrics is checked by Debian's promtool (package prometheus) and parsed by Debian's
# python3-prometheus-client, run with the system /usr/bin/python3. The prometheus package
# comes with a server that apt would start on port 9090; only promtool is wanted.
install_metrics_checkers() {
    local packages=()
    command -v promtool >/dev/null 2>&1 || packages+=(prometheus)
    /usr/bin/python3 -c 'import prometheus_client.parser' >/dev/null 2>&1 || packages+=(python3-prometheus-client)
    [ "${#packages[@]}" -eq 0 ] && return 0
    install_without_starting "${packages[*]}" "prometheus"
    command -v promtool >/dev/null 2>&1 || die "promtool still missing after installing prometheus"
}
install_metrics_checkers

# ---------------------------------------------------------------- HAProxy
# The PROXY protocol tests (tests/proxy_protocol.rs) and scripts/cluster-test.sh run
# Debian's HAProxy in the foreground with their own configuration; the packaged service
# (which would bind nothing useful) is never started.
have_haproxy() { command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; }
have_haproxy || install_without_starting "haproxy" "haproxy"
have_haproxy || die "haproxy still missing after install"

# ---------------------------------------------------------------- browser
# Debian's Chromium, driven by playwright-core at the version pinned in
# tests/browser/package.json (and its lockfile). Playwright never downloads a browser of
# its own: the tests point it at /usr/bin/chromium. Used by the status page test, and by
# the browser players' tests.
install_browser_deps() {
    command -v chromium >/dev/null 2>&1 || apt_install chromium
    command -v node >/dev/null 2>&1 || apt_install nodejs
    local wanted installed
    wanted=$(node -p 'require("./tests/browser/package.json").dependencies["playwright-core"]')
    installed=$(node -p 'require("./tests/browser/node_modules/playwright-core/package.json").version' 2>/dev/null || true)
    if [ "$installed" != "$wanted" ]; then
        [ "${RTMP_EDGE_SKIP_INSTALL:-0}" = 1 ] && die "playwright-core missing and RTMP_EDGE_SKIP_INSTALL=1"
        log "npm ci in tests/browser (playwright-core)"
        (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error) \
            || die "npm ci in tests/browser failed"
    fi
}
install_browser_deps

log "ffmpeg:      $(ffmpeg -hide_banner -version | head -n1)"
log "new ffmpeg:  $("$RTMP_EDGE_NEW_FFMPEG" -hide_banner -version | head -n1) ($RTMP_EDGE_NEW_FFMPEG)"
log "nginx:       $( (nginx -v 2>&1 || /usr/sbin/nginx -v 2>&1) | head -n1)"
log "promtool:    $(promtool --version 2>&1 | head -n1)"
log "haproxy:     $( (haproxy -v 2>/dev/null || /usr/sbin/haproxy -v) | head -n1)"
log "chromium:    $(chromium --version 2>/dev/null | tail -n1)"
log "cargo:       $(cargo --version)"
step_done "tool check/install"

# ---------------------------------------------------------------- cargo test
ncpu=$(nproc 2>/dev/null || echo 2)
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-$ncpu}"
# Interop tests bind ephemeral ports, so parallel test threads are safe; one per
# core keeps spawned ffmpeg/nginx processes from starving each other.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-$ncpu}"
# Release so media-heavy tests run fast, but without the shipped profile's fat
# LTO and single codegen unit: those make every test binary link for a minute
# on a 2-core machine and change nothing a test can observe. Unstripped so a
# failing test prints a readable backtrace.
export CARGO_PROFILE_RELEASE_LTO="${CARGO_PROFILE_RELEASE_LTO:-off}"
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS="${CARGO_PROFILE_RELEASE_CODEGEN_UNITS:-16}"
export CARGO_PROFILE_RELEASE_STRIP="${CARGO_PROFILE_RELEASE_STRIP:-none}"
export CARGO_PROFILE_RELEASE_INCREMENTAL="${CARGO_PROFILE_RELEASE_INCREMENTAL:-false}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
log "jobs=$CARGO_BUILD_JOBS test-threads=$RUST_TEST_THREADS lto=$CARGO_PROFILE_RELEASE_LTO"

bash scripts/check-lib.sh && step_done "scripts/check-lib.sh"
log "cargo test --release --all-targets"
cargo test --release --all-targets
step_done "cargo test --release --all-targets"

# --release so the doctests reuse the release build of the library and its
# dependencies instead of compiling everything a second time in debug.
log "cargo test --release --doc"
cargo test --release --doc
step_done "cargo test --release --doc"

# The tiered deployment (origin, two edges behind HAProxy with the PROXY protocol,
# players) in network namespaces: it needs root and a kernel that lets us make namespaces
# and bridges; scripts/cluster-test.sh says why when it cannot run (exit 77).
log "scripts/cluster-test.sh"
cluster_rc=0
bash scripts/cluster-test.sh || cluster_rc=$?
case "$cluster_rc" in
    0) step_done "scripts/cluster-test.sh" ;;
    77) log "scripts/cluster-test.sh skipped (the reason is above)" ;;
    *) die "scripts/cluster-test.sh failed ($cluster_rc)" ;;
esac

# Every cargo-fuzz target for a short time, on stable through RUSTC_BOOTSTRAP=1 (about 3 min
# on 2 cores: a 96 s sanitizer build, then 7 targets 20 s each, two at a time).
# RTMP_EDGE_FUZZ_SECONDS sets the time per target; 0 skips fuzzing.
fuzz_seconds="${RTMP_EDGE_FUZZ_SECONDS:-20}"
if [ "$fuzz_seconds" != 0 ]; then
    log "scripts/fuzz.sh $fuzz_seconds"
    bash scripts/fuzz.sh "$fuzz_seconds"
    step_done "scripts/fuzz.sh"
else
    log "RTMP_EDGE_FUZZ_SECONDS=0: fuzzing skipped"
fi

log "all tests passed in $(( $(date +%s) - script_start )) s"

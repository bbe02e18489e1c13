#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a short time and fails on any crash, leak,
# out-of-memory or hang.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]      (default 20)
#
# Works on stable Rust: RUSTC_BOOTSTRAP=1 lets stable rustc take the sanitizer flags
# cargo-fuzz passes. Installs cargo-fuzz (cargo install --locked, into ~/.cargo/bin) when it
# is missing. Builds all targets once (optimised, with debug assertions and overflow checks,
# AddressSanitizer), then runs them FUZZ_JOBS at a time (default: the number of cores).
#
# Each run starts from seeds the target writes itself from the committed recordings
# (tests/fixtures: wire bytes and FLV files; relay_core adds scenarios of its own), into
# fuzz/target/corpus/TARGET, which is emptied first: nothing generated is committed.
# A finding is kept in fuzz/artifacts/TARGET/ and printed with the command that replays it.
#
# Knobs (environment): FUZZ_JOBS (parallel targets), FUZZ_TARGETS (space-separated subset),
# FUZZ_KEEP_CORPUS=1 (start from the last run's corpus instead of the seeds alone).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root/fuzz"

seconds="${1:-20}"
# (0 would mean "no limit" to libFuzzer.)
case "$seconds" in
    ''|*[!0-9]*|0) echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] (1 or more)" >&2; exit 2 ;;
esac

log() { printf '[fuzz.sh] %s\n' "$*"; }
die() { printf '[fuzz.sh] error: %s\n' "$*" >&2; exit 1; }

if ! command -v cargo >/dev/null 2>&1 && [ -x "${HOME:-/root}/.cargo/bin/cargo" ]; then
    export PATH="${HOME:-/root}/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found"
if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz (cargo install cargo-fuzz --locked)"
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
# The build settings scripts/test.sh uses for the tests (many codegen units, no LTO, no
# incremental state): the sanitizer build takes 96 s instead of 200 s on 2 cores, and the
# targets run as fast.
export CARGO_PROFILE_RELEASE_LTO="${CARGO_PROFILE_RELEASE_LTO:-off}"
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS="${CARGO_PROFILE_RELEASE_CODEGEN_UNITS:-16}"
export CARGO_PROFILE_RELEASE_INCREMENTAL="${CARGO_PROFILE_RELEASE_INCREMENTAL:-false}"
start=$(date +%s)
log "building every target: cargo fuzz build -O --debug-assertions ($(cargo fuzz --version))"
cargo fuzz build -O --debug-assertions
built=$(date +%s)
log "build took $((built - start)) s"

targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"
jobs="${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}"
bin_dir="target/x86_64-unknown-linux-gnu/release"
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

# One target's run; writes its log and, on a finding, the artifact's path.
run_target() {
    local target=$1 corpus="target/corpus/$1" artifacts="artifacts/$1/"
    [ "${FUZZ_KEEP_CORPUS:-0}" = 1 ] || rm -rf "$corpus"
    mkdir -p "$corpus" "$artifacts"
    # -timeout: an input that runs 10 s is a hang, reported like a crash.
    FUZZ_SEEDS="$corpus" "$bin_dir/$target" "$corpus" \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -artifact_prefix="$artifacts" -print_final_stats=1 >"$logs/$target.log" 2>&1
}

log "running ${targets//$'\n'/ } for $seconds s each, $jobs at a time"
failed=()
running=0
for target in $targets; do
    run_target "$target" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait || true

for target in $targets; do
    output="$logs/$target.log"
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$output" | tail -n1)
    coverage=$(grep -o 'cov: [0-9]*' "$output" | tail -n1 || true)
    if grep -q 'Done [0-9]* runs' "$output" && ! grep -q 'Test unit written to' "$output"; then
        log "$target: ok, ${runs:-?} runs, $coverage"
        continue
    fi
    failed+=("$target")
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$output" | tail -n1)
    printf '[fuzz.sh] %s: FAILED\n' "$target" >&2
    grep -E -m1 -A3 'panicked at|ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)' "$output" >&2 || tail -n 20 "$output" >&2
    if [ -n "$artifact" ]; then
        printf '[fuzz.sh] %s: crash input: fuzz/%s\n' "$target" "$artifact" >&2
        printf '[fuzz.sh] replay: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -O --debug-assertions %s %s\n' "$target" "$artifact" >&2
        printf '[fuzz.sh] as steps: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz fmt -O %s %s\n' "$target" "$artifact" >&2
    fi
done

log "fuzzing took $(( $(date +%s) - built )) s after a $((built - start)) s build"
[ "${#failed[@]}" -eq 0 ] || die "findings in: ${failed[*]}"

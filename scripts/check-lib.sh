#!/usr/bin/env bash
# Checks that the library is what embedders get from crates.io:
#   1. `default-features = false` builds the sans-IO library alone, and its
#      dependency tree has none of the relay's crates (mio above all);
#   2. the docs build without a warning, with every feature and with none;
#   3. `cargo package` succeeds, and packs no fixture over 100 KB.
# scripts/test.sh runs it; it also runs on its own from any directory.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

log() { printf '[check-lib] %s\n' "$*"; }
die() { printf '[check-lib] error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- sans-IO build
log "cargo build --no-default-features"
cargo build --no-default-features
# Tests and examples that need no feature must still compile without them.
log "cargo check --no-default-features --all-targets"
cargo check --no-default-features --all-targets

# Normal and build edges only: dev-dependencies (tokio, for an example) may use mio.
tree=$(cargo tree --no-default-features -e normal,build --prefix none --format '{p}')
for relay_only in mio signal-hook signal-hook-mio env_logger getopts slab rustls rustls-native-certs aws-lc-rs aws-lc-sys; do
    if grep -qE "^${relay_only} v" <<<"$tree"; then
        die "cargo tree --no-default-features has ${relay_only}: it belongs behind the relay feature"
    fi
done
log "no-default-features tree: $(sort -u <<<"$tree" | wc -l) crates, none of the relay's"

# ---------------------------------------------------------------- docs
for features in --all-features --no-default-features; do
    log "cargo doc --no-deps $features (warnings are errors)"
    RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --lib "$features"
done

# ---------------------------------------------------------------- package
log "cargo package --list"
listing=$(cargo package --no-verify --list --allow-dirty 2>/dev/null)
too_big=0
while IFS= read -r path; do
    case "$path" in
        tests/*|benches/*|fuzz/*)
            size=$(stat -c %s "$path")
            if [ "$size" -gt $((100 * 1024)) ]; then
                printf '[check-lib] packaged fixture over 100 KB: %s (%s bytes)\n' "$path" "$size" >&2
                too_big=1
            fi
            ;;
    esac
done <<<"$listing"
[ "$too_big" -eq 0 ] || die "trim the include list in Cargo.toml"
log "package: $(wc -l <<<"$listing") files, no fixture over 100 KB"

# Verifying builds the packed crate on its own, so a file the include list forgot fails here.
log "cargo package (verify)"
cargo package --allow-dirty
log "library checks passed"

#!/usr/bin/env bash
# Checks that the library is what embedders get from crates.io:
#   1. `default-features = false` builds the sans-IO library alone, and its
#      dependency tree has none of the crates the `relay` feature turns on (read from
#      Cargo.toml, so a dependency added there later is checked too);
#   2. the docs build without a warning, with every feature and with none;
#   3. `cargo package` succeeds, and packs no fixture over 100 KB;
#   4. the packed crate's own unit tests build from what it ships: every file an
#      include_str!/include_bytes! under src/ names is packed, and they type-check.
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

# The crates the `relay` feature turns on, by package name: its `dep:NAME` entries (and
# `NAME/feature` or bare `NAME` entries naming an optional dependency), renames resolved.
metadata=$(cargo metadata --no-deps --format-version 1)
relay_crates=$(python3 -c '
import json, sys
package = next(p for p in json.load(sys.stdin)["packages"] if p["name"] == "rtmp-edge")
optional = {d.get("rename") or d["name"]: d["name"]
            for d in package["dependencies"] if d["kind"] is None and d["optional"]}
for entry in package["features"]["relay"]:
    key = entry[len("dep:"):] if entry.startswith("dep:") else entry.split("/")[0].rstrip("?")
    if key in optional:
        print(optional[key])
' <<<"$metadata")
[ -n "$relay_crates" ] || die "found no dependency in the relay feature of Cargo.toml"

# Normal and build edges only: dev-dependencies (tokio, for an example) may use mio.
tree=$(cargo tree --no-default-features -e normal,build --prefix none --format '{p}')
for relay_only in $relay_crates; do
    if grep -qE "^${relay_only} v" <<<"$tree"; then
        die "cargo tree --no-default-features has ${relay_only}: it belongs behind the relay feature"
    fi
done
log "no-default-features tree: $(sort -u <<<"$tree" | wc -l) crates, none of the relay's $(wc -w <<<"$relay_crates") ($(echo $relay_crates))"

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

# A unit test that includes a file the include list forgot would not build from crates.io.
log "include_str!/include_bytes! paths under src/ are packed"
not_packed=0
while IFS=: read -r source_file included; do
    packed_path=$(realpath -m --relative-to="$repo_root" "$(dirname "$source_file")/$included")
    if ! grep -qxF "$packed_path" <<<"$listing"; then
        printf '[check-lib] %s includes %s, which the package leaves out\n' "$source_file" "$packed_path" >&2
        not_packed=1
    fi
done < <(grep -roE --include='*.rs' 'include_(str|bytes)!\("[^"]+"\)' src \
    | sed -E 's/^([^:]+):include_(str|bytes)!\("([^"]+)"\)$/\1:\3/')
[ "$not_packed" -eq 0 ] || die "add those files to the include list in Cargo.toml"

# Verifying builds the packed crate on its own, so a file the include list forgot fails here.
log "cargo package (verify)"
cargo package --allow-dirty

# Verifying builds the library, not its tests: type-check those too, from the unpacked
# crate, sharing this target directory so only the crate itself is checked again.
version=$(python3 -c '
import json, sys
print(next(p for p in json.load(sys.stdin)["packages"] if p["name"] == "rtmp-edge")["version"])
' <<<"$metadata")
packed="$repo_root/target/package/rtmp-edge-$version"
log "cargo check --lib --tests --all-features in $packed"
CARGO_TARGET_DIR="$repo_root/target" cargo check --manifest-path "$packed/Cargo.toml" --lib --tests --all-features
log "library checks passed"

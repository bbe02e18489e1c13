#!/usr/bin/env bash
# Compares rustls's two crypto providers on this machine: builds benches/tls_provider once
# with aws-lc-rs and once with ring (its own crate and target directory, so rtmp-edge's
# build is untouched) and runs each RUNS times (default 2), alternating. Each run pushes
# MIB MiB (default 1024) of 4 KiB writes through a rustls server and client in memory,
# per TLS 1.3 cipher suite, and prints MB/s encrypted and decrypted.
#
#   scripts/tls-provider-bench.sh            # about 5 minutes on 2 cores, mostly building
#
# Needs: cargo and a C compiler (both providers build their C and assembly with cc).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-2}
MIB=${MIB:-1024}
cd "$ROOT/benches/tls_provider"
for provider in aws ring; do
    echo "== building with $provider"
    cargo build --release --quiet --features "$provider" --target-dir "target/$provider"
done
for run in $(seq "$RUNS"); do
    for provider in aws ring; do
        echo "== run $run, $provider"
        "target/$provider/release/tls-provider-bench" "$MIB"
    done
done

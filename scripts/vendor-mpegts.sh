#!/usr/bin/env bash
# Refreshes the vendored mpegts.js that the status page's "watch" buttons play streams with
# (served by the binary at /mpegts.js, compiled in with include_bytes!).
#
#   scripts/vendor-mpegts.sh            # the pinned version below
#   scripts/vendor-mpegts.sh 1.8.3      # another version: pin it here too, then run the
#                                       # browser test (tests/http_flv_browser.rs)
#
# Takes the package from the npm registry with `npm pack` (no install, no scripts run),
# checks that its licence is still Apache-2.0, and copies the built file, its licence and
# the bundled licence notices to src/relay/http/vendor/.
set -euo pipefail

VERSION=${1:-1.8.2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENDOR=$ROOT/src/relay/http/vendor
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

cd "$WORK"
npm pack --silent "mpegts.js@$VERSION" >/dev/null
tar xzf "mpegts.js-$VERSION.tgz"
license=$(python3 -c 'import json; print(json.load(open("package/package.json"))["license"])')
[ "$license" = "Apache-2.0" ] || { echo "mpegts.js $VERSION is licensed $license, not Apache-2.0: check before vendoring" >&2; exit 1; }
mkdir -p "$VENDOR"
cp package/dist/mpegts.js "$VENDOR/mpegts.js"
cp package/LICENSE "$VENDOR/LICENSE-mpegts.js"
cp package/dist/mpegts.js.LICENSE.txt "$VENDOR/mpegts.js.LICENSE.txt"
printf '%s' "$VERSION" >"$VENDOR/mpegts.version"
# The page asks for /mpegts.js?v=VERSION, which is cached for good: a new version, a new URL.
sed -i -E "s|/mpegts\.js\?v=[^\"]+\"|/mpegts.js?v=$VERSION\"|" "$ROOT/src/relay/http/status.html"
echo "vendored mpegts.js $VERSION ($(stat -c %s "$VENDOR/mpegts.js") bytes) into $VENDOR"

#!/usr/bin/env bash
# Builds swimnet-goref, the Go memberlist 0.2.2 reference program used by
# crates/swimnet-wire/tests/goref/, from Debian's memberlist source.
#
# Nothing is downloaded: GO111MODULE=off, GOPATH = a private tree under
# target/goref (holding a copy of the memberlist package plus our export shim)
# followed by Debian's /usr/share/gocode.
#
# Quiet on success; the last line on stdout is the binary's path. Skips the
# build when the binary is newer than every input.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GOCODE="${SWIMNET_GOCODE:-/usr/share/gocode}"
ML_SRC="$GOCODE/src/github.com/hashicorp/memberlist"
SRC_DIR="$ROOT/tools/goref"
OUT_DIR="$ROOT/target/goref"
BIN="$OUT_DIR/swimnet-goref"
PRIV="$OUT_DIR/gopath"
ML_DST="$PRIV/src/github.com/hashicorp/memberlist"
MAIN_DST="$PRIV/src/swimnet.invalid/goref"
INSTALL_HINT="install them with: apt-get update && apt-get install -y golang-go golang-github-hashicorp-memberlist-dev"

die() {
    echo "build-goref: $*" >&2
    exit 1
}

command -v go >/dev/null 2>&1 || die "the Go toolchain ('go') is not on PATH; $INSTALL_HINT"
[ -f "$ML_SRC/net.go" ] && [ -f "$ML_SRC/util.go" ] && [ -f "$ML_SRC/security.go" ] ||
    die "Debian's memberlist source is missing (expected $ML_SRC); $INSTALL_HINT"
[ -d "$GOCODE/src/github.com/hashicorp/go-msgpack/codec" ] ||
    die "go-msgpack source is missing under $GOCODE; $INSTALL_HINT"

# The reference is memberlist 0.2.2 (what serf 0.9.4 speaks). Another
# version still builds, but its bytes are not the ones we promise to match.
if [ -z "${SWIMNET_GOCODE:-}" ] && command -v dpkg-query >/dev/null 2>&1; then
    ml_version="$(dpkg-query -W -f='${Version}' golang-github-hashicorp-memberlist-dev 2>/dev/null || true)"
    case "$ml_version" in
        0.2.2-*) ;;
        *) echo "build-goref: warning: golang-github-hashicorp-memberlist-dev is '${ml_version:-not installed as a package}', not 0.2.2" >&2 ;;
    esac
fi

mkdir -p "$OUT_DIR"
# Serialize concurrent builds (parallel test processes).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$OUT_DIR/.lock"
    flock 9
fi

# Up to date? The binary must be newer than our sources, this script and the
# memberlist sources.
if [ -x "$BIN" ]; then
    newer="$(find "$SRC_DIR" "$ROOT/scripts/build-goref.sh" "$ML_SRC" -maxdepth 1 -type f -newer "$BIN" -print -quit 2>/dev/null || true)"
    if [ -z "$newer" ]; then
        echo "$BIN"
        exit 0
    fi
fi

# Fresh private copy of the memberlist package (no tests), plus our shim.
rm -rf "$PRIV"
mkdir -p "$ML_DST" "$MAIN_DST"
(
    cd "$ML_SRC"
    find . -type f -name '*.go' ! -name '*_test.go' -print0 |
        while IFS= read -r -d '' f; do
            mkdir -p "$ML_DST/$(dirname "$f")"
            cp "$f" "$ML_DST/$f"
        done
)
cp "$SRC_DIR/swimnet_export.go.in" "$ML_DST/zz_swimnet_export.go"
cp "$SRC_DIR"/*.go "$MAIN_DST/"

LOG="$OUT_DIR/build.log"
if ! (
    cd "$MAIN_DST" &&
        GO111MODULE=off GOFLAGS= GOPROXY=off GOPATH="$PRIV:$GOCODE" \
            GOCACHE="${GOCACHE:-$OUT_DIR/gocache}" \
            go build -o "$BIN.tmp" .
) >"$LOG" 2>&1; then
    cat "$LOG" >&2
    die "go build failed (log: $LOG)"
fi
mv -f "$BIN.tmp" "$BIN"
echo "$BIN"

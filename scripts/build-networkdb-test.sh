#!/usr/bin/env bash
# Builds Docker 20.10's `networkdb-test` (libnetwork/cmd/networkdb-test: one
# real NetworkDB node serving Docker's diagnostic HTTP API) from Debian
# bookworm's docker.io *source* package, with Debian's Go packages.
#
#   * Go library packages are apt-get installed when missing (only as root).
#   * The docker.io source package is fetched with a private deb-src sources
#     list (the machine's apt configuration is left alone) into target/ndb/.
#   * libnetwork's own vendor/ tree is kept: it holds Docker's patched
#     armon/go-radix (Debian's go-radix 1.0.0 makes NetworkDB crash with a nil
#     pointer in recursiveWalk when a node fails).
#   * Built with GO111MODULE=off and GOPATH=target/ndb/gop:/usr/share/gocode,
#     so nothing but Debian packages is downloaded.
#
# The libnetwork tree it leaves under target/ndb/gop/src/github.com/docker/
# libnetwork is also what tools/ndbref/build.sh compiles against.
#
# Idempotent: skips the build when the binary is newer than its sources and
# this script. Quiet on success apart from progress lines on stderr; the LAST
# line on stdout is the binary's path.
#
# Environment: SWIMNET_NDB_DIR overrides the work dir (default target/ndb).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
W="${SWIMNET_NDB_DIR:-$ROOT/target/ndb}"
GOCODE=/usr/share/gocode
GOP="$W/gop"
LIBNET="$GOP/src/github.com/docker/libnetwork"
BIN="$W/networkdb-test"
PACKAGES=(golang-go golang-github-docker-docker-dev golang-github-docker-go-events-dev
    golang-github-gogo-protobuf-dev golang-github-hashicorp-serf-dev
    golang-github-sirupsen-logrus-dev golang-github-armon-go-radix-dev
    golang-github-hashicorp-memberlist-dev)

die() {
    echo "build-networkdb-test: error: $*" >&2
    exit 1
}
note() { echo "build-networkdb-test: $*" >&2; }

mkdir -p "$W"
# Serialize concurrent runs (parallel tests, two shells).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$W/.lock"
    flock 9
fi

# ---- 1. Debian's Go packages -------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
    st="$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)"
    [ "$st" = "install ok installed" ] || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        die "missing Debian packages: ${missing[*]}; install them as root with: apt-get update && apt-get install -y ${missing[*]}"
    fi
    note "installing ${missing[*]}"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >"$W/apt-install.log" 2>&1; then
        note "apt-get install failed; running apt-get update and retrying"
        apt-get update -q >>"$W/apt-install.log" 2>&1 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >>"$W/apt-install.log" 2>&1 ||
            { cat "$W/apt-install.log" >&2; die "apt-get install ${missing[*]} failed (log: $W/apt-install.log)"; }
    fi
fi
command -v go >/dev/null 2>&1 || die "the Go toolchain ('go') is not on PATH even though golang-go is installed"

# ---- 2. Up to date? ----------------------------------------------------------
if [ -x "$BIN" ] && [ -f "$LIBNET/networkdb/networkdb.proto" ]; then
    newer="$(find "$LIBNET/networkdb" "$LIBNET/cmd/networkdb-test" "$LIBNET/diagnostic" \
        "$ROOT/scripts/build-networkdb-test.sh" -type f -newer "$BIN" -print -quit 2>/dev/null || true)"
    if [ -z "$newer" ]; then
        echo "$BIN"
        exit 0
    fi
    note "rebuilding: $newer is newer than $BIN"
fi

# ---- 3. docker.io source package ---------------------------------------------
if [ ! -f "$LIBNET/networkdb/networkdb.proto" ]; then
    SYS_SOURCES=/etc/apt/sources.list.d/debian.sources
    [ -f "$SYS_SOURCES" ] ||
        die "$SYS_SOURCES not found: this recipe expects a Debian 12 (bookworm) machine with deb822 apt sources"
    mkdir -p "$W/apt/lists/partial" "$W/src"
    sed 's/^Types: deb$/Types: deb-src/' "$SYS_SOURCES" >"$W/apt/src.sources"
    APT_OPTS=(-o "Dir::Etc::SourceList=$W/apt/src.sources" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$W/apt/lists")
    if ! ls "$W"/src/docker.io_*.orig-libnetwork.tar.* >/dev/null 2>&1; then
        note "fetching the docker.io source package (deb-src) into $W/src"
        apt-get "${APT_OPTS[@]}" update -q >"$W/apt-src.log" 2>&1 ||
            { cat "$W/apt-src.log" >&2; die "apt-get update of the private deb-src list failed (log: $W/apt-src.log)"; }
        (cd "$W/src" && apt-get "${APT_OPTS[@]}" source --download-only docker.io) >>"$W/apt-src.log" 2>&1 ||
            { cat "$W/apt-src.log" >&2; die "apt-get source --download-only docker.io failed (log: $W/apt-src.log)"; }
    fi
    tarball="$(ls "$W"/src/docker.io_*.orig-libnetwork.tar.* 2>/dev/null | head -n1)"
    [ -n "$tarball" ] || die "no docker.io_*.orig-libnetwork.tar.* in $W/src after apt-get source"
    note "extracting $(basename "$tarball")"
    rm -rf "$LIBNET" "$W/extract"
    mkdir -p "$W/extract" "$(dirname "$LIBNET")"
    tar -xf "$tarball" -C "$W/extract"
    # The tarball has one top-level directory (libnetwork or similar).
    top="$(find "$W/extract" -mindepth 1 -maxdepth 1 -type d | head -n1)"
    [ -n "$top" ] && [ -f "$top/networkdb/networkdb.proto" ] ||
        die "unexpected layout of $tarball (no networkdb/networkdb.proto under its top directory)"
    mv "$top" "$LIBNET"
    rm -rf "$W/extract"
    [ -d "$LIBNET/vendor" ] || die "$LIBNET/vendor is missing; the patched go-radix lives there"
fi

# ---- 4. Build ------------------------------------------------------------------
note "building $BIN"
LOG="$W/build.log"
if ! (
    cd "$LIBNET/cmd/networkdb-test" &&
        GO111MODULE=off GOFLAGS= GOPROXY=off GOPATH="$GOP:$GOCODE" \
            GOCACHE="${GOCACHE:-$W/gocache}" \
            go build -o "$BIN.tmp" .
) >"$LOG" 2>&1; then
    cat "$LOG" >&2
    die "go build of networkdb-test failed (log: $LOG)"
fi
mv -f "$BIN.tmp" "$BIN"
echo "$BIN"

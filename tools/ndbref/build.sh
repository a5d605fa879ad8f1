#!/usr/bin/env bash
# Builds ndbref (tools/ndbref/main.go), the reference program behind
# crates/swimnet-networkdb/tests/data/networkdb-20.10.24-vectors.txt and the
# ignored interop test in crates/swimnet-networkdb/tests/go_interop.rs.
#
# It compiles against Docker's own NetworkDB protobuf types: the libnetwork
# tree that scripts/build-networkdb-test.sh fetches (Debian bookworm's
# docker.io 20.10.24 source package) plus Debian's Go packages under
# /usr/share/gocode, with GO111MODULE=off. Nothing else is downloaded.
#
# Regenerate the golden vectors with:
#   "$(tools/ndbref/build.sh | tail -n1)" vectors   # then paste below the header
#
# The last line on stdout is the binary's path. Skips the build when the
# binary is newer than main.go and this script.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
W="${SWIMNET_NDB_DIR:-$ROOT/target/ndb}"
BIN="$W/ndbref"

die() {
    echo "ndbref/build.sh: error: $*" >&2
    exit 1
}

# Fetches and unpacks libnetwork (and builds networkdb-test) if needed.
"$ROOT/scripts/build-networkdb-test.sh" >/dev/null ||
    die "scripts/build-networkdb-test.sh failed; see its messages above"
GOP="$W/gop"
[ -f "$GOP/src/github.com/docker/libnetwork/networkdb/networkdb.pb.go" ] ||
    die "libnetwork source not found under $GOP"

# shellcheck source=../../scripts/lib/gobuild.sh
. "$ROOT/scripts/lib/gobuild.sh"
go_build_offline ndbref "$ROOT/tools/ndbref" "$GOP" "$BIN" "$W/ndbref-build.log" ||
    die "see the build log above"
echo "$BIN"

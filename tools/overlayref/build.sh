#!/usr/bin/env bash
# Builds overlayref (tools/overlayref/main.go), the reference program behind
# the golden vectors of crates/swimnet-overlay/tests/records_golden.rs and the
# decoder used by crates/swimnet/tests/interop_overlay_records.rs.
#
# It compiles against Docker's own generated protobuf code: overlay.pb.go
# (drivers/overlay) and agent.pb.go (libnetwork) from the libnetwork tree that
# scripts/build-networkdb-test.sh fetches (Debian bookworm's docker.io 20.10.24
# source). Their own packages pull in far more than Debian ships, so the two
# generated files are symlinked, unchanged, into a private GOPATH under
# target/ndb/overlayref-gop (packages dockerpb/overlay, dockerpb/libnetwork);
# gogo-protobuf comes from Debian's /usr/share/gocode. GO111MODULE=off; nothing
# is downloaded.
#
# Regenerate the golden vectors with:
#   "$(tools/overlayref/build.sh | tail -n1)" encode
#
# The last line on stdout is the binary's path. Skips the build when the
# binary is newer than main.go and this script.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
W="${SWIMNET_NDB_DIR:-$ROOT/target/ndb}"
BIN="$W/overlayref"
PB="$W/overlayref-gop/src/dockerpb"

die() {
    echo "overlayref/build.sh: error: $*" >&2
    exit 1
}

# Fetches and unpacks libnetwork (and builds networkdb-test) if needed.
"$ROOT/scripts/build-networkdb-test.sh" >/dev/null ||
    die "scripts/build-networkdb-test.sh failed; see its messages above"
LIBNET="$W/gop/src/github.com/docker/libnetwork"
for f in drivers/overlay/overlay.pb.go agent.pb.go; do
    [ -f "$LIBNET/$f" ] || die "$LIBNET/$f not found"
done

mkdir -p "$PB/overlay" "$PB/libnetwork"
ln -sfn "$LIBNET/drivers/overlay/overlay.pb.go" "$PB/overlay/overlay.pb.go"
ln -sfn "$LIBNET/agent.pb.go" "$PB/libnetwork/agent.pb.go"

# shellcheck source=../../scripts/lib/gobuild.sh
. "$ROOT/scripts/lib/gobuild.sh"
go_build_offline overlayref "$ROOT/tools/overlayref" "$W/overlayref-gop" "$BIN" \
    "$W/overlayref-build.log" || die "see the build log above"
echo "$BIN"

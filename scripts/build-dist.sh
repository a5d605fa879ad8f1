#!/usr/bin/env bash
# Builds the deployment binary: the `dist` profile (fat LTO, opt-level s,
# one codegen unit, panic=abort, stripped) linked statically against glibc
# (static-pie), so one self-contained file runs on any x86_64 Linux and its
# resident memory holds only the code it uses (no shared libc/libm pages).
# The agent binary leaves out `swimnet sim` (feature `sim`: the simulator
# and its report and chart dependencies); run the simulator from a normal
# build. Prints the path of the binary on its last line.
#
# Environment: CARGO_TARGET_DIR (default target), TARGET (default the host
# triple, which must be a *-linux-gnu one).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${TARGET:-$(rustc -vV | sed -n 's/^host: //p')}
case "$TARGET" in *-linux-gnu) ;; *) echo "build-dist.sh: $TARGET: only *-linux-gnu targets" >&2; exit 1 ;; esac
# --target keeps RUSTFLAGS off build scripts and proc macros (which must
# stay dynamic); crt-static applies to the swimnet binary only.
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build -q --profile dist -p swimnet --no-default-features --target "$TARGET" >&2
BIN=$(cd "${CARGO_TARGET_DIR:-target}/$TARGET/dist" && pwd)/swimnet
[ -x "$BIN" ] || { echo "build-dist.sh: no $BIN after the build" >&2; exit 1; }
echo "$BIN"

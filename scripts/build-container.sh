#!/usr/bin/env bash
# Builds the swimnet container image (packaging/Containerfile) around the
# static binary from scripts/build-dist.sh. The build context is a fresh
# directory holding only that binary and an empty state/ directory (not the
# repository, whose target/ is gigabytes).
#
# Usage: scripts/build-container.sh [--context DIR]
#   --context DIR  only assemble the build context in DIR (no image build)
# Environment: SWIMNET_BIN (a static binary to use instead of building one),
# CONTAINER_TOOL (default: podman if installed, else docker), IMAGE (default
# swimnet:latest).
set -euo pipefail
cd "$(dirname "$0")/.."

context=
if [ "${1:-}" = --context ]; then
  context=${2:?"--context needs a directory"}
elif [ $# -gt 0 ]; then
  echo "usage: scripts/build-container.sh [--context DIR]" >&2; exit 2
fi

bin=${SWIMNET_BIN:-$(scripts/build-dist.sh | tail -1)}
[ -x "$bin" ] || { echo "build-container.sh: $bin is not an executable" >&2; exit 1; }
# An image FROM scratch has no dynamic loader: refuse a dynamically linked binary.
if readelf -l "$bin" | grep -q 'Requesting program interpreter'; then
  echo "build-container.sh: $bin is dynamically linked; the image needs the static one from scripts/build-dist.sh" >&2
  exit 1
fi

keep=$context
[ -n "$context" ] || context=$(mktemp -d)
mkdir -p "$context/state"
install -m 755 "$bin" "$context/swimnet"
cp packaging/Containerfile "$context/Containerfile"
if [ -n "$keep" ]; then
  echo "build-container.sh: build context in $context"
  exit 0
fi
tool=${CONTAINER_TOOL:-$(command -v podman >/dev/null 2>&1 && echo podman || echo docker)}
"$tool" build -t "${IMAGE:-swimnet:latest}" -f "$context/Containerfile" "$context"
rm -rf "$context"

#!/usr/bin/env bash
# Checks that the library crates can be published: `cargo package` succeeds
# for each (metadata, versions on path dependencies, file list), every
# package carries the MPL-2.0 LICENSE it declares, and no manifest holds a
# placeholder URL.
#
# Usage: scripts/package-check.sh [--verify]
#   default   package without building (fast: metadata and file lists)
#   --verify  also build each packaged crate on its own, from its .crate,
#             as a publish would (minutes)
set -euo pipefail
cd "$(dirname "$0")/.."

crates=(swimnet-wire swimnet-core swimnet-serf swimnet-networkdb swimnet-overlay swimnet-sim)
verify=--no-verify
[ "${1:-}" = --verify ] && verify=

fail() { echo "package-check: $*" >&2; exit 1; }

if grep -rn --include=Cargo.toml -E 'example\.(invalid|com|org)' Cargo.toml crates; then
  fail "a manifest holds a placeholder URL"
fi
head -1 LICENSE | grep -qx 'Mozilla Public License Version 2.0' || fail "LICENSE is not the MPL-2.0 text"
grep -qx 'license = "MPL-2.0"' Cargo.toml || fail "the workspace does not declare MPL-2.0"

pkg_args=()
for c in "${crates[@]}"; do pkg_args+=(-p "$c"); done
# Offline first (the dependencies are in the local cache once anything was
# built); fall back to the registry when the cache lacks something.
# --allow-dirty: check the working tree as it is, committed or not.
cargo package --offline --allow-dirty $verify "${pkg_args[@]}" \
  || cargo package --allow-dirty $verify "${pkg_args[@]}"

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
for c in "${crates[@]}"; do
  crate_file="target/package/$c-$version.crate"
  [ -f "$crate_file" ] || fail "$crate_file was not written"
  listing=$(tar -tzf "$crate_file")
  for f in LICENSE README.md Cargo.toml src/lib.rs; do
    grep -qx "$c-$version/$f" <<<"$listing" || fail "$crate_file lacks $f"
  done
  tar -xzOf "$crate_file" "$c-$version/LICENSE" | cmp -s - LICENSE || fail "$crate_file: LICENSE differs"
done
how="packaged, not built (--verify builds them)"
[ -z "$verify" ] && how="packaged and built from their .crate files"
echo "package-check: ${#crates[@]} crates $how, each with the MPL-2.0 LICENSE"

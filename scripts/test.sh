#!/usr/bin/env bash
# Runs every swimnet test: formatting and lint checks, unit and property
# tests, the deterministic multi-node harness, the Go reference comparisons,
# interop tests against real Go peers, and a bounded fuzz smoke run.
#
# On a fresh Debian 12 machine it first installs what the tests need (the Go
# toolchain and Debian's memberlist 0.2.2 source, used to build the reference
# program) when it runs as root. Set SWIMNET_FUZZ_SECONDS to change the time
# each fuzz target runs (default 20; 0 skips the fuzz smoke).
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v go >/dev/null 2>&1 || need_pkgs+=(golang-go)
[ -d /usr/share/gocode/src/github.com/hashicorp/memberlist ] || need_pkgs+=(golang-github-hashicorp-memberlist-dev)
command -v serf >/dev/null 2>&1 || need_pkgs+=(serf)
# The systemd unit's test runs systemd-analyze verify, which runs man.
command -v systemd-analyze >/dev/null 2>&1 || need_pkgs+=(systemd)
command -v man >/dev/null 2>&1 || need_pkgs+=(man-db)
# The dashboard's browser test (crates/swimnet/tests/ui_browser.rs) drives it.
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)
# The overlay end-to-end tests ping between endpoint namespaces.
command -v ping >/dev/null 2>&1 || need_pkgs+=(iputils-ping)
# Namespaces, links, neighbour and FDB checks in the overlay tests; the
# scripts' HTTP calls.
command -v bridge >/dev/null 2>&1 || need_pkgs+=(iproute2)
command -v curl >/dev/null 2>&1 || need_pkgs+=(curl)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "== installing ${need_pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  else
    echo "missing packages: ${need_pkgs[*]} (run as root, or: sudo apt-get install ${need_pkgs[*]})" >&2
    exit 1
  fi
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== sizes: no file over 1,200 lines, no function over 120"
python3 scripts/check-size.py

echo "== publishable crates (cargo package)"
scripts/package-check.sh

echo "== Go reference programs and Docker's networkdb-test"
scripts/build-goref.sh >/dev/null
scripts/build-networkdb-test.sh >/dev/null
tools/ndbref/build.sh >/dev/null
tools/overlayref/build.sh >/dev/null

echo "== cargo test (unit, property, harness, Go reference)"
cargo test --workspace --release --no-fail-fast 2>&1 | tee target/test-output.txt | grep -E '^(test result|running|test .*FAILED|failures:|---- )' || true
if grep -qE 'test result: FAILED|error(\[E[0-9]+\])?:' target/test-output.txt; then
  echo "cargo test failed; full output in target/test-output.txt" >&2
  grep -E -A30 '^failures:$' target/test-output.txt | head -200 >&2 || true
  # The panic line and the message under it say what failed; a test's
  # captured output (agent logs) can run to hundreds of lines before it, so
  # they come last, without the backtrace frames.
  echo "== why each failing test failed" >&2
  grep -E -A8 "^thread '.*' (\([0-9]+\) )?panicked at" target/test-output.txt \
    | grep -vE '^ +[0-9]+: |^ +at ' | head -120 >&2 || true
  exit 1
fi
passed=$(grep -oE '[0-9]+ passed' target/test-output.txt | awk '{s+=$1} END {print s+0}')
failed=$(grep -oE '[0-9]+ failed' target/test-output.txt | awk '{s+=$1} END {print s+0}')

fuzz_seconds=${SWIMNET_FUZZ_SECONDS:-20}
if [ "$fuzz_seconds" != 0 ]; then
  echo "== fuzz smoke (${fuzz_seconds}s per target)"
  scripts/fuzz-smoke.sh "$fuzz_seconds"
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]

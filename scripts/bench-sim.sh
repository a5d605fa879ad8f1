#!/usr/bin/env bash
# Runs the simulator benchmarks (scenarios/*.toml at 1k-10k nodes) in
# release mode, each under /usr/bin/time -v, and collects reports, charts
# and wall/peak-memory figures under bench-out/ (or $1).
#
#   scripts/bench-sim.sh [OUT_DIR] [SCENARIO...]
#
# With no scenario names it runs the benchmark set of docs/BENCHMARKS.md.
# These are benchmarks, not tests: nothing here asserts timings.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench-out}
shift || true
scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then
  # partition-1k (NetworkDB tables, about 20 minutes) is left out: see
  # docs/BENCHMARKS.md. dissemination-10k needs about 12 GiB of memory.
  scenarios=(dissemination-1k detection-1k-loss0 detection-1k-loss10
             detection-1k-loss30 stalls-1k partition-1k-membership
             partition-tables-200 regions-churn join-2k dissemination-5k
             dissemination-10k)
fi
cargo build --release -p swimnet --quiet
bin=${CARGO_TARGET_DIR:-target}/release/swimnet
mkdir -p "$out"
printf '%-22s %10s %12s %s\n' scenario wall_s peak_MiB status
for s in "${scenarios[@]}"; do
  dir="$out/$s"
  mkdir -p "$dir"
  status=ok
  /usr/bin/time -v "$bin" sim "scenarios/$s.toml" --quiet --out "$dir" >"$dir/stdout.txt" 2>"$dir/time.txt" || status=FAILED
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$dir/time.txt")
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$dir/time.txt")
  printf '%-22s %10s %12s %s\n' "$s" "$wall" "$rss" "$status"
done

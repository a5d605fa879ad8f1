#!/usr/bin/env bash
# Topology-awareness benchmark (docs/BENCHMARKS.md, "Topology awareness"):
# runs each scenarios/<name>-{off,on}.toml pair with the same seeds, one
# run at a time, and prints the on/off table from the report.json files.
#
#   scripts/bench-topology.sh [OUT_DIR] [SEED...]
#
# Default seeds: 1 2 3. Scenario pairs: topology-4x250 (1,000 memberlist
# nodes) and topology-tables-4x100 (400 NetworkDB nodes with table writes).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench-out/topology}
shift || true
seeds=("$@")
[ ${#seeds[@]} -eq 0 ] && seeds=(1 2 3)
cargo build --release -p swimnet --quiet
bin=${SWIMNET_BIN:-${CARGO_TARGET_DIR:-target}/release/swimnet}
mkdir -p "$out"
for pair in topology-4x250 topology-tables-4x100; do
  for seed in "${seeds[@]}"; do
    for v in off on; do
      dir="$out/$pair-$v-$seed"
      /usr/bin/time -f "%e s wall, %M KiB peak" "$bin" sim "scenarios/$pair-$v.toml" \
        --seed "$seed" --quiet --out "$dir" >"$dir.stdout.txt" 2>"$dir.time.txt" ||
        echo "$pair-$v seed $seed: FAILED (see $dir/summary.txt)"
    done
  done
  echo "## $pair"
  python3 scripts/topology-table.py "$out" "$pair" "${seeds[@]}"
done

#!/usr/bin/env python3
"""Prints the on/off comparison table of docs/BENCHMARKS.md ("Topology
awareness") from report.json files written by scripts/bench-topology.sh.

    scripts/topology-table.py OUT_DIR SCENARIO_PREFIX SEED...
"""
import json
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def row(r):
    t = r["traffic"]
    c = t.get("cross_region") or {}
    kinds = c.get("bytes_out_by_kind", {})
    probe = sum(kinds.get(k, 0.0) for k in ("ping", "ack", "nack"))
    co = r.get("coordinates") or {}
    d999 = r["dissemination_t999"]
    d100 = r["dissemination_t100"]
    dd = r["detection_dead"]
    tables = r.get("tables") or {}
    wc = tables.get("write_convergence") or {}
    return {
        "cross_MB": c.get("bytes", 0) / 1e6,
        "cross_kpkt": c.get("packets", 0) / 1e3,
        "cross_Bps": c.get("bytes_out_mean", 0.0),
        "nonprobe_Bps": c.get("bytes_out_mean", 0.0) - probe,
        "share": c.get("share_of_bytes", 0.0),
        "t999_p50": d999["p50"], "t999_max": d999["max"],
        "t100_p50": d100["p50"], "t100_max": d100["max"],
        "det_p50": dd["p50"], "det_max": dd["max"],
        "fp": r["false_positives"], "fsusp": r["false_suspicions"],
        "coord": co.get("median_rel_error", float("nan")),
        "w100_p50": wc.get("p50", float("nan")), "w100_max": wc.get("max", float("nan")),
        "failures": len(r["failures"]),
        "choices": r.get("topology_choices", 0),
    }


def main():
    out, prefix, seeds = sys.argv[1], sys.argv[2], sys.argv[3:]
    cols = ["cross_MB", "cross_kpkt", "cross_Bps", "nonprobe_Bps", "share", "t999_p50",
            "t999_max", "t100_p50", "t100_max", "det_p50", "det_max", "fp", "fsusp",
            "coord", "w100_p50", "w100_max", "failures", "choices"]
    print("| seed | topology | " + " | ".join(cols) + " |")
    print("|" + "---|" * (len(cols) + 2))
    for s in seeds:
        rows = {}
        for v in ("off", "on"):
            rows[v] = row(load(f"{out}/{prefix}-{v}-{s}/report.json"))
            cells = []
            for k in cols:
                x = rows[v][k]
                cells.append(f"{x:.3f}" if isinstance(x, float) else str(x))
            print(f"| {s} | {v} | " + " | ".join(cells) + " |")
        off, on = rows["off"], rows["on"]
        print(f"| {s} | on/off | cross bytes {on['cross_MB'] / off['cross_MB'] - 1:+.1%}, "
              f"packets {on['cross_kpkt'] / off['cross_kpkt'] - 1:+.1%}, "
              f"non-probe bytes {on['nonprobe_Bps'] / max(off['nonprobe_Bps'], 1e-9) - 1:+.1%}, "
              f"t99.9 p50 {on['t999_p50'] / off['t999_p50'] - 1:+.1%}, "
              f"t100 max {on['t100_max'] / off['t100_max'] - 1:+.1%} |" + " |" * (len(cols) - 1))


if __name__ == "__main__":
    main()

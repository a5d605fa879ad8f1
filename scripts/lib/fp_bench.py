#!/usr/bin/env python3
"""Driver and analyzer of scripts/bench-false-positives.sh (Python 3, stdlib only).

`run`: waits until both clusters have converged, then stops one agent per
side (same index on both sides, rotating) every --stall-every seconds for
--stall-seconds, and records the schedule in DIR/meta.json. It never kills
an agent; it fails when one is found not running.

`analyze`: reads the member-failed lines the event handlers wrote
(DIR/events/*.txt: `EPOCH OBSERVER EVENT ACCUSED`) of one or more rounds and
reports, per side, observer verdicts, accusations (verdicts about one member
less than --merge seconds apart form one accusation), per-window counts,
exact Poisson intervals and the conditional binomial test of equal rates.
"""

import argparse
import csv
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

SIDES = ("serf", "swimnet")
PREFIX = {"serf": "s", "swimnet": "w"}
NETNS = {"serf": "fpA", "swimnet": "fpB"}


def fail(msg):
    sys.exit(f"error: {msg}")


# ---------------------------------------------------------------- run


def read_pids(path):
    with open(path) as f:
        return [int(x) for x in f.read().split()]


def running(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rindex(")") + 2:].split()[0] != "Z"


def check_running(d, pids):
    for side in SIDES:
        for i, pid in enumerate(pids[side], 1):
            if not running(pid):
                log = os.path.join(d, "logs", f"{PREFIX[side]}{i}.log")
                try:
                    with open(log, errors="replace") as f:
                        tail = f.read()[-1500:]
                except OSError:
                    tail = ""
                fail(f"{side} agent {i} (pid {pid}) is not running; end of its log:\n{tail}")


def members(args, side, i):
    ns = f"{NETNS[side]}-{i}"
    if side == "serf":
        cmd = [args.serf, "members", "-format=json", "-rpc-addr=127.0.0.1:7373"]
    else:
        cmd = [args.swimnet, "members", "--api", "127.0.0.1:7380", "--format", "json"]
    try:
        out = subprocess.run(["ip", "netns", "exec", ns] + cmd, capture_output=True, timeout=10)
    except subprocess.TimeoutExpired:
        return None
    if out.returncode != 0:
        return None
    try:
        return {m["name"]: m["status"].lower() for m in json.loads(out.stdout)["members"]}
    except (ValueError, KeyError, AttributeError):
        return None


def converged(args, side):
    want = {f"{PREFIX[side]}{i}" for i in range(1, args.agents + 1)}
    for i in range(1, args.agents + 1):
        m = members(args, side, i)
        if m is None or {k for k, v in m.items() if v == "alive"} != want:
            return False
    return True


def wait_converged(args, pids):
    t0 = time.time()
    done = {s: None for s in SIDES}
    while None in done.values():
        check_running(args.dir, pids)
        for side in SIDES:
            if done[side] is None and converged(args, side):
                done[side] = round(time.time() - t0, 1)
        if time.time() - t0 > 180:
            fail(f"the clusters did not converge within 180 s (seconds to converge: {done})")
        time.sleep(0.5)
    return done


def scrape_metrics(d, agents):
    """Saves each swimnet agent's /metrics (counters for the report)."""
    os.makedirs(os.path.join(d, "metrics"), exist_ok=True)
    code = ("import urllib.request,sys;"
            "sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:7380/metrics',timeout=5)"
            ".read().decode())")
    for i in range(1, agents + 1):
        out = subprocess.run(["ip", "netns", "exec", f"fpB-{i}", sys.executable, "-c", code],
                             capture_output=True, timeout=20)
        with open(os.path.join(d, "metrics", f"w{i}.prom"), "wb") as f:
            f.write(out.stdout)


def stall_loop(args, pids, t0, stalls):
    k = 0
    while True:
        at = t0 + k * args.stall_every
        if at + args.stall_seconds > t0 + args.duration:
            return
        time.sleep(max(0.0, at - time.time()))
        check_running(args.dir, pids)
        idx = k % args.agents
        victims = [pids[s][idx] for s in SIDES]
        # Alternate which side is stopped first; both within microseconds.
        order = victims if k % 2 == 0 else victims[::-1]
        for p in order:
            os.kill(p, signal.SIGSTOP)
        t_stop = time.time()
        time.sleep(max(0.0, t_stop + args.stall_seconds - time.time()))
        for p in order:
            os.kill(p, signal.SIGCONT)
        stalls.append({"k": k, "agent": idx + 1, "stop": t_stop, "cont": time.time()})
        k += 1


def cmd_run(args):
    d = args.dir
    pids = {s: read_pids(os.path.join(d, f"{s}.pids")) for s in SIDES}
    for s in SIDES:
        if len(pids[s]) != args.agents:
            fail(f"{s}.pids holds {len(pids[s])} PIDs, expected {args.agents}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    stalls = []
    meta = {"agents": args.agents, "loss": args.loss, "duration": args.duration,
            "stall_seconds": args.stall_seconds, "stall_every": args.stall_every,
            "grace": args.grace, "stalls": stalls}
    try:
        meta["converged_after"] = wait_converged(args, pids)
        print(f"== converged (s after start): {meta['converged_after']}", flush=True)
        t0 = time.time()
        meta["t0"] = t0
        meta["t_end"] = t0 + args.duration
        print(f"== stalls: one agent per side every {args.stall_every} s for "
              f"{args.stall_seconds} s, {args.duration} s", flush=True)
        stall_loop(args, pids, t0, stalls)
        time.sleep(max(0.0, t0 + args.duration - time.time()))
        print(f"== {len(stalls)} stalls done; {args.grace} s for late verdicts", flush=True)
        time.sleep(args.grace)
        check_running(d, pids)
        meta["complete"] = True
        scrape_metrics(d, args.agents)
    finally:
        for s in SIDES:
            for p in pids[s]:
                try:
                    os.kill(p, signal.SIGCONT)
                except OSError:
                    pass
        with open(os.path.join(d, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1)


# ---------------------------------------------------------------- statistics


def poisson_cdf(k, mu):
    """P(X <= k) for X ~ Poisson(mu)."""
    if k < 0:
        return 0.0
    if mu == 0:
        return 1.0
    term = math.exp(-mu)
    total = term
    for i in range(1, k + 1):
        term *= mu / i
        total += term
    if term == 0.0:  # exp(-mu) underflowed: use logs
        total = sum(math.exp(i * math.log(mu) - mu - math.lgamma(i + 1)) for i in range(k + 1))
    return min(1.0, total)


def bisect(f, lo, hi, iters=200):
    """Root of a function increasing on [lo, hi]."""
    for _ in range(iters):
        mid = (lo + hi) / 2
        if f(mid) > 0:
            hi = mid
        else:
            lo = mid
    return (lo + hi) / 2


def poisson_ci(k, level=0.95):
    """Exact (Garwood) interval for the mean of a Poisson count k."""
    a = (1 - level) / 2
    hi_bound = 10.0 * (k + 10)
    lower = 0.0 if k == 0 else bisect(lambda mu: (1 - poisson_cdf(k - 1, mu)) - a, 0.0, hi_bound)
    upper = bisect(lambda mu: a - poisson_cdf(k, mu), 0.0, hi_bound)
    return lower, upper


def binom_pmf(i, n, p):
    if p in (0.0, 1.0):
        return float(i == (0 if p == 0.0 else n))
    return math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                    + i * math.log(p) + (n - i) * math.log(1 - p))


def binom_test(x, n, p=0.5):
    """One-sided P(X >= x) and two-sided p-value (sum of outcomes no likelier than x)."""
    if n == 0:
        return 1.0, 1.0
    pm = [binom_pmf(i, n, p) for i in range(n + 1)]
    upper = min(1.0, sum(pm[x:]))
    two = min(1.0, sum(q for q in pm if q <= pm[x] * (1 + 1e-7)))
    return upper, two


def clopper_pearson(x, n, level=0.95):
    a = (1 - level) / 2

    def cdf(k, p):
        return sum(binom_pmf(i, n, p) for i in range(0, k + 1)) if k >= 0 else 0.0

    lower = 0.0 if x == 0 else bisect(lambda p: (1 - cdf(x - 1, p)) - a, 0.0, 1.0, 100)
    upper = 1.0 if x == n else bisect(lambda p: a - cdf(x, p), 0.0, 1.0, 100)
    return lower, upper


def mean_sd(xs):
    if not xs:
        return 0.0, 0.0
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, 0.0
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


# ---------------------------------------------------------------- analysis


SERIES = ("serf/handler", "serf/log", "swimnet/handler", "swimnet/log")
SERF_FAILED = re.compile(r"^\s*(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) \[INFO\] serf: EventMemberFailed: (\S+)")
SWIM_FAILED = re.compile(r"member failed node=\"?([^\s\"]+)")


def log_verdicts(d, name):
    """(time, accused) of every failed verdict an agent's log shows (serf logs them
    before its agent coalesces member events for the handlers; to the second)."""
    out = []
    with open(os.path.join(d, "logs", name), errors="replace") as f:
        for line in f:
            if name.startswith("s"):
                m = SERF_FAILED.match(line)
                if m:
                    t = time.mktime(time.strptime(m.group(1), "%Y/%m/%d %H:%M:%S")) + 0.5
                    out.append((t, m.group(2)))
            else:
                m = SWIM_FAILED.search(line)
                t = log_time(line) if m else None
                if t is not None:
                    out.append((t, m.group(1)))
    return out


def load_round(d):
    with open(os.path.join(d, "meta.json")) as f:
        meta = json.load(f)
    if not meta.get("complete"):
        fail(f"{d}: the round did not complete (meta.json has no 'complete'); not analysed")
    raw = {k: [] for k in SERIES}
    ev = os.path.join(d, "events")
    for name in sorted(os.listdir(ev)):
        side = "serf" if name.startswith("s") else "swimnet"
        with open(os.path.join(ev, name)) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 4 and parts[2] == "member-failed":
                    raw[f"{side}/handler"].append((float(parts[0]), parts[1], parts[3]))
    for name in sorted(os.listdir(os.path.join(d, "logs"))):
        side = "serf" if name.startswith("s") else "swimnet"
        for t, accused in log_verdicts(d, name):
            raw[f"{side}/log"].append((t, name[:-4], accused))
    verdicts = {k: [] for k in SERIES}
    before = {k: 0 for k in SERIES}
    for k, vs in raw.items():
        for t, observer, accused in vs:
            if t < meta["t0"]:
                before[k] += 1
            elif t <= meta["t_end"] + meta["grace"]:
                verdicts[k].append({"t": t, "observer": observer, "accused": accused})
    return meta, verdicts, before


def episodes_of(verdicts, merge, meta):
    """Accusations: verdicts about one member, each less than `merge` s after the previous."""
    by_accused = {}
    for v in sorted(verdicts, key=lambda v: v["t"]):
        by_accused.setdefault(v["accused"], []).append(v)
    eps = []
    for accused, vs in by_accused.items():
        cur = None
        for v in vs:
            if cur is None or v["t"] - cur["end"] > merge:
                cur = {"accused": accused, "start": v["t"], "end": v["t"], "verdicts": 0,
                       "observers": set()}
                eps.append(cur)
            cur["end"] = v["t"]
            cur["verdicts"] += 1
            cur["observers"].add(v["observer"])
    for e in eps:
        e["stall"] = stall_before(meta, e)
    return sorted(eps, key=lambda e: e["start"])


def stall_before(meta, ep):
    """Seconds from the accused's last stall start to the accusation, or None."""
    idx = int(re.sub(r"\D", "", ep["accused"]) or 0)
    best = None
    for s in meta["stalls"]:
        if s["agent"] == idx and s["stop"] <= ep["start"]:
            best = ep["start"] - s["stop"]
    return best


def window_counts(meta, items, key, window):
    n = max(1, math.ceil(meta["duration"] / window))
    counts = [0] * n
    for it in items:
        i = int((it[key] - meta["t0"]) // window)
        counts[min(max(i, 0), n - 1)] += 1
    return counts


def side_stats(count, hours, windows):
    lo, hi = poisson_ci(count)
    m, sd = mean_sd(windows)
    return {"count": count, "per_hour": count / hours, "ci95_per_hour": [lo / hours, hi / hours],
            "window_mean": m, "window_sd": sd,
            "dispersion": (sd * sd / m) if m > 0 else None}


def compare(a_serf, b_swim, t_serf, t_swim):
    """Conditional test: given n = a + b, b ~ Binomial(n, t_swim / (t_serf + t_swim))."""
    n = a_serf + b_swim
    p = t_swim / (t_serf + t_swim)
    one, two = binom_test(b_swim, n, p)
    res = {"n": n, "p_swimnet_higher": one, "p_two_sided": two, "rate_ratio": None,
           "rate_ratio_ci95": None}
    if n:
        lo, hi = clopper_pearson(b_swim, n)
        k = t_serf / t_swim

        def ratio(q):
            return None if q >= 1 else q / (1 - q) * k

        res["rate_ratio"] = None if a_serf == 0 else (b_swim / a_serf) * k
        res["rate_ratio_ci95"] = [ratio(lo), ratio(hi)]
    return res


def metric_sums(d):
    """Sums of swimnet's counters over a round's agents."""
    tot = {}
    mdir = os.path.join(d, "metrics")
    if not os.path.isdir(mdir):
        return tot
    for name in os.listdir(mdir):
        with open(os.path.join(mdir, name)) as f:
            for line in f:
                m = re.match(r"^swimnet_(suspicions|refutations|dead_verdicts|final_checks"
                             r"|final_checks_answered)(?:_total)?\s+([0-9.e+]+)$", line.strip())
                if m:
                    tot[m.group(1)] = tot.get(m.group(1), 0) + float(m.group(2))
    return tot


def serf_log_counts(d):
    """Lines of serf's memberlist about its own failed probes and its dead verdicts."""
    c = {"suspect_no_acks": 0, "marked_failed": 0}
    logs = os.path.join(d, "logs")
    for name in os.listdir(logs):
        if not name.startswith("s"):
            continue
        with open(os.path.join(logs, name), errors="replace") as f:
            for line in f:
                if "has failed, no acks received" in line:
                    c["suspect_no_acks"] += 1
                elif "as failed, suspect timeout reached" in line:
                    c["marked_failed"] += 1
    return c


LOG_TS = re.compile(r"^\S*?(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)Z?")


def log_time(line):
    m = LOG_TS.match(re.sub(r"\x1b\[[0-9;]*m", "", line))
    if not m:
        return None
    return datetime.fromisoformat(m.group(1)).replace(tzinfo=timezone.utc).timestamp()


def swimnet_excerpts(d, eps, limit=12):
    """Log lines of every swimnet agent about an accused member around its accusation."""
    out = []
    logs = {}
    for name in sorted(os.listdir(os.path.join(d, "logs"))):
        if name.startswith("w"):
            with open(os.path.join(d, "logs", name), errors="replace") as f:
                logs[name[:-4]] = f.readlines()
    for e in eps[:limit]:
        out.append(f"-- {d}: {e['accused']} accused at +{e['rel']:.1f} s by "
                   f"{','.join(sorted(e['observers']))} (its last stall began "
                   f"{'%.1f s' % e['stall'] if e['stall'] is not None else 'never'} before)")
        lo, hi = e["start"] - 30, e["end"] + 10
        for agent, lines in logs.items():
            for line in lines:
                t = log_time(line)
                if t is None or not lo <= t <= hi:
                    continue
                mine = agent == e["accused"] and "refuted" in line
                if mine or f"node={e['accused']}" in line or f"node=\"{e['accused']}\"" in line:
                    out.append(f"   [{agent}] {line.rstrip()}")
    return out


def analyze_rounds(dirs, window, merge):
    res = {k: {"verdicts": [], "episodes": [], "win_acc": [], "win_ver": [], "before": 0,
               "observer": {}, "accused": {}, "seconds": 0.0} for k in SERIES}
    rounds, excerpts, metrics, serf_logs = [], [], {}, {}
    for d in dirs:
        meta, verdicts, before = load_round(d)
        row = {"dir": d, "duration": meta["duration"], "stalls": len(meta["stalls"]),
               "converged_after": meta.get("converged_after")}
        for k in SERIES:
            r = res[k]
            eps = episodes_of(verdicts[k], merge, meta)
            for e in eps:
                e["round"], e["rel"] = d, e["start"] - meta["t0"]
                r["accused"][e["accused"]] = r["accused"].get(e["accused"], 0) + 1
            for v in verdicts[k]:
                v["round"], v["rel"] = d, v["t"] - meta["t0"]
                r["observer"][v["observer"]] = r["observer"].get(v["observer"], 0) + 1
            r["verdicts"] += verdicts[k]
            r["episodes"] += eps
            r["win_acc"] += window_counts(meta, eps, "start", window)
            r["win_ver"] += window_counts(meta, verdicts[k], "t", window)
            r["before"] += before[k]
            r["seconds"] += meta["duration"]
            row[k] = {"accusations": len(eps), "verdicts": len(verdicts[k])}
            if k == "swimnet/handler":
                excerpts += swimnet_excerpts(d, eps)
        for k, v in metric_sums(d).items():
            metrics[k] = metrics.get(k, 0) + v
        for k, v in serf_log_counts(d).items():
            serf_logs[k] = serf_logs.get(k, 0) + v
        rounds.append(row)
    return res, rounds, excerpts, metrics, serf_logs


def write_files(out, res, summary, excerpts):
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    with open(os.path.join(out, "windows.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["window"] + [f"{k} accusations" for k in SERIES]
                   + [f"{k} verdicts" for k in SERIES])
        for i in range(len(res[SERIES[0]]["win_acc"])):
            w.writerow([i] + [res[k]["win_acc"][i] for k in SERIES]
                       + [res[k]["win_ver"][i] for k in SERIES])
    with open(os.path.join(out, "verdicts.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["series", "round", "seconds_after_t0", "observer", "accused"])
        for k in SERIES:
            for v in res[k]["verdicts"]:
                w.writerow([k, v["round"], f"{v['rel']:.3f}", v["observer"], v["accused"]])
    with open(os.path.join(out, "accusations.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["series", "round", "seconds_after_t0", "accused", "verdicts", "observers",
                    "seconds_since_its_stall_began"])
        for k in SERIES:
            for e in res[k]["episodes"]:
                st = "" if e["stall"] is None else f"{e['stall']:.1f}"
                w.writerow([k, e["round"], f"{e['rel']:.1f}", e["accused"], e["verdicts"],
                            " ".join(sorted(e["observers"])), st])
    with open(os.path.join(out, "swimnet-accusations.log"), "w") as f:
        f.write("\n".join(excerpts) + ("\n" if excerpts else ""))


def fmt_p(p):
    return f"{p:.1e}" if p < 0.001 else f"{p:.4f}"


def fmt_ci(ci):
    return f"[{ci[0]:.1f}, {ci[1]:.1f}]"


def print_table(summary, window):
    print(f"{'':32}" + "".join(f"{k:>17}" for k in SERIES))
    rows = [("accusations (cluster episodes)", "accusations", "count", "{:d}"),
            ("  per hour", "accusations", "per_hour", "{:.1f}"),
            ("  per hour, exact 95 % CI", "accusations", "ci95_per_hour", None),
            (f"  per {window:g} s window, mean", "accusations", "window_mean", "{:.2f}"),
            (f"  per {window:g} s window, sd", "accusations", "window_sd", "{:.2f}"),
            ("observer verdicts", "verdicts", "count", "{:d}"),
            ("  per hour", "verdicts", "per_hour", "{:.1f}"),
            (f"  per {window:g} s window, mean", "verdicts", "window_mean", "{:.2f}"),
            (f"  per {window:g} s window, sd", "verdicts", "window_sd", "{:.2f}")]
    for label, grp, key, fmt in rows:
        cells = []
        for k in SERIES:
            v = summary[k][grp][key]
            cells.append(fmt_ci(v) if fmt is None else fmt.format(v))
        print(f"{label:32}" + "".join(f"{c:>17}" for c in cells))


def print_report(summary, window):
    p = summary["params"]
    print()
    print(f"false positives: {p['rounds']} round(s), {p['seconds']:.0f} s measured per side, "
          f"{p['agents']} agents per side, loss {p['loss']} % inbound UDP, "
          f"stall {p['stall_seconds']:g} s every {p['stall_every']:g} s")
    print("(handler: what member-failed handlers were run for; serf's agent coalesces member\n"
          " events, so a failure refuted within about a second never reaches them. log: every\n"
          " failed verdict, from the agents' own log lines)")
    print_table(summary, window)
    for i, row in enumerate(summary["rounds"], 1):
        print(f"round {i} (converged after {row['converged_after']} s), accusations/verdicts: "
              + ", ".join(f"{k} {row[k]['accusations']}/{row[k]['verdicts']}" for k in SERIES))
    for k in SERIES:
        print(f"{k}: accused {summary[k]['by_accused']}; observers {summary[k]['by_observer']}; "
              f"accusations about a member stalled <= 30 s before: {summary[k]['after_own_stall']} "
              f"of {summary[k]['accusations']['count']}")
    for name, c in summary["comparison"].items():
        rr, ci = c["rate_ratio"], c["rate_ratio_ci95"]
        rr_s = "n/a" if rr is None else f"{rr:.2f}"
        ci_s = "n/a" if not ci else "[" + ", ".join("inf" if x is None else f"{x:.2f}"
                                                    for x in ci) + "]"
        print(f"{name}: swimnet/serf rate ratio {rr_s} (95 % CI {ci_s}); given n = {c['n']}: "
              f"one-sided p (swimnet higher) = {fmt_p(c['p_swimnet_higher'])}, "
              f"two-sided p = {fmt_p(c['p_two_sided'])}")
    print("(observer verdicts are not independent of one another: their test is indicative only)")
    if summary["swimnet_metrics"]:
        print(f"swimnet counters (all agents): {summary['swimnet_metrics']}")
    print(f"serf log lines (all agents): {summary['serf_log_lines']}")


def cmd_analyze(args):
    res, rounds, excerpts, metrics, serf_logs = analyze_rounds(args.dirs, args.window, args.merge)
    with open(os.path.join(args.dirs[0], "meta.json")) as f:
        m0 = json.load(f)
    summary = {"params": {"rounds": len(args.dirs), "seconds": res[SERIES[0]]["seconds"],
                          "agents": m0["agents"], "loss": m0["loss"],
                          "stall_seconds": m0["stall_seconds"], "stall_every": m0["stall_every"],
                          "window": args.window, "merge": args.merge},
               "rounds": rounds, "comparison": {}, "swimnet_metrics": metrics,
               "serf_log_lines": serf_logs}
    for k in SERIES:
        r = res[k]
        hours = r["seconds"] / 3600
        summary[k] = {
            "accusations": side_stats(len(r["episodes"]), hours, r["win_acc"]),
            "verdicts": side_stats(len(r["verdicts"]), hours, r["win_ver"]),
            "windows_accusations": r["win_acc"], "windows_verdicts": r["win_ver"],
            "by_observer": dict(sorted(r["observer"].items())),
            "by_accused": dict(sorted(r["accused"].items())),
            "after_own_stall": sum(1 for e in r["episodes"]
                                   if e["stall"] is not None and e["stall"] <= 30),
            "verdicts_before_t0": r["before"],
        }
    for src in ("log", "handler"):
        a, b = res[f"serf/{src}"], res[f"swimnet/{src}"]
        for grp, key in (("accusations", "episodes"), ("verdicts", "verdicts")):
            summary["comparison"][f"{grp} ({src})"] = compare(
                len(a[key]), len(b[key]), a["seconds"], b["seconds"])
    os.makedirs(args.out, exist_ok=True)
    write_files(args.out, res, summary, excerpts)
    print_report(summary, args.window)
    print(f"\nfiles: {args.out}/summary.json windows.csv accusations.csv verdicts.csv "
          f"swimnet-accusations.log")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--dir", required=True)
    r.add_argument("--serf", required=True)
    r.add_argument("--swimnet", required=True)
    r.add_argument("--agents", type=int, required=True)
    r.add_argument("--loss", type=int, required=True)
    r.add_argument("--duration", type=float, required=True)
    r.add_argument("--stall-seconds", type=float, required=True)
    r.add_argument("--stall-every", type=float, required=True)
    r.add_argument("--grace", type=float, required=True)
    a = sub.add_parser("analyze")
    a.add_argument("--window", type=float, default=60)
    a.add_argument("--merge", type=float, default=10)
    a.add_argument("--out", required=True)
    a.add_argument("dirs", nargs="+")
    args = ap.parse_args()
    if args.cmd == "run":
        cmd_run(args)
    else:
        cmd_analyze(args)


if __name__ == "__main__":
    main()

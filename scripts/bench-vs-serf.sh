#!/usr/bin/env bash
# Side-by-side benchmark: N serf agents and N swimnet agents on loopback, each
# side its own cluster with the same memberlist profile, measured in the same
# run. Reports, as ratios swimnet/serf:
#
#   * resident memory per agent (VmRSS, mean over agents and samples)   target <= 0.33
#     also PSS (shared binary/library pages split among the agents) and the
#     private anonymous part (Pss_Anon), since VmRSS counts the shared binary
#     of every agent in full
#   * CPU seconds per agent over the idle window (utime+stime)          target <= 0.5
#   * time from kill -9 of one member to every other member showing it
#     `failed` (polled with `serf members` / `swimnet members` every
#     100 ms per observer)                                              target <= 1.0
#
# Usage: scripts/bench-vs-serf.sh [--idle-seconds S] [--profile lan|wan|local] [--agents N]
# Environment (same meaning; flags win):
#   IDLE_SECONDS   idle window in seconds (default 300)
#   PROFILE        memberlist profile for both sides (default lan)
#   AGENTS         agents per side (default 16)
#   ENCRYPT=1      run both clusters with the same -encrypt key (default off)
#   SAMPLE_SECONDS RSS sampling period during the idle window (default 10)
#   SERF_NET / SWIM_NET  the /24 each side uses (default 127.0.210 / 127.0.211);
#                  agent i gets <net>.i, gossip port 7946, serf RPC 7373,
#                  swimnet API 7380 -- loopback only
#   KILLS          members killed one after another per side; the detection
#                  time reported is their mean (default 1: one kill per side)
#   KEEP=1         keep the work directory (logs) after the run
#   STRICT=1       exit 1 when a target is missed (default: report only)
#   SWIMNET_BIN    swimnet binary to run (default: build the deployment
#                  binary with scripts/build-dist.sh)
#
# Needs: serf (Debian package `serf`), cargo, python3. Every process it
# starts is tracked by PID and killed on exit (trap), and started with a
# parent-death signal when setpriv is available.
set -euo pipefail
cd "$(dirname "$0")/.."

IDLE_SECONDS=${IDLE_SECONDS:-300}
PROFILE=${PROFILE:-lan}
AGENTS=${AGENTS:-16}
ENCRYPT=${ENCRYPT:-0}
SAMPLE_SECONDS=${SAMPLE_SECONDS:-10}
SERF_NET=${SERF_NET:-127.0.210}
SWIM_NET=${SWIM_NET:-127.0.211}
KEEP=${KEEP:-0}
STRICT=${STRICT:-0}
KILLS=${KILLS:-1}

while [ $# -gt 0 ]; do
  case "$1" in
    --idle-seconds) IDLE_SECONDS=$2; shift 2 ;;
    --profile) PROFILE=$2; shift 2 ;;
    --agents) AGENTS=$2; shift 2 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
case "$PROFILE" in lan|wan|local) ;; *) echo "PROFILE must be lan, wan or local" >&2; exit 2 ;; esac
case "$SERF_NET$SWIM_NET" in 127.*127.*) ;; *) echo "SERF_NET/SWIM_NET must be in 127.0.0.0/8" >&2; exit 2 ;; esac
[ "$AGENTS" -ge 3 ] && [ "$AGENTS" -le 250 ] || { echo "AGENTS must be 3..250" >&2; exit 2; }
[ "$KILLS" -ge 1 ] && [ "$KILLS" -le $((AGENTS - 2)) ] || { echo "KILLS must be 1..AGENTS-2" >&2; exit 2; }

SERF=${SERF_BIN:-$(command -v serf || true)}
if [ -z "$SERF" ] || ! "$SERF" version >/dev/null 2>&1; then
  echo "serf not found: install the Debian package (apt-get install -y serf)" >&2
  exit 1
fi
command -v python3 >/dev/null || { echo "python3 is needed" >&2; exit 1; }

if [ -n "${SWIMNET_BIN:-}" ]; then
  SWIMNET=$SWIMNET_BIN
else
  echo "== building swimnet (deployment build: scripts/build-dist.sh)"
  SWIMNET=$(scripts/build-dist.sh | tail -n 1)
fi
[ -x "$SWIMNET" ] || { echo "no swimnet binary at $SWIMNET" >&2; exit 1; }

WORK=$(mktemp -d /tmp/bench-vs-serf.XXXXXX)
PIDS=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # The agents are disowned (no job notices); kill each by its PID.
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  if [ "$KEEP" = 1 ]; then echo "logs kept in $WORK"; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PDEATH=()
if command -v setpriv >/dev/null && setpriv --pdeathsig KILL -- true 2>/dev/null; then
  PDEATH=(setpriv --pdeathsig KILL --)
fi

# Refuse to start when an address is already taken (an earlier run?).
python3 - "$SERF_NET" "$SWIM_NET" "$AGENTS" <<'EOF'
import socket, sys
for net in sys.argv[1:3]:
    for i in range(1, int(sys.argv[3]) + 1):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((f"{net}.{i}", 7946))
        except OSError as e:
            sys.exit(f"{net}.{i}:7946 is in use ({e}); is an earlier run still going?")
        finally:
            s.close()
EOF

KEY_ARGS_SERF=()
KEY_ARGS_SWIM=()
if [ "$ENCRYPT" = 1 ]; then
  KEY=$("$SERF" keygen)
  KEY_ARGS_SERF=(-encrypt="$KEY")
  KEY_ARGS_SWIM=(--encrypt "$KEY")
fi

echo "== starting $AGENTS serf agents on $SERF_NET.1-$AGENTS and $AGENTS swimnet agents on $SWIM_NET.1-$AGENTS (profile $PROFILE, encrypt=$ENCRYPT)"
SERF_PIDS=()
SWIM_PIDS=()
for i in $(seq 1 "$AGENTS"); do
  ip=$SERF_NET.$i
  join=()
  [ "$i" -gt 1 ] && join=(-join="$SERF_NET.1:7946")
  "${PDEATH[@]}" "$SERF" agent -node="s$i" -bind="$ip:7946" -rpc-addr="$ip:7373" \
    -profile="$PROFILE" -log-level=info "${KEY_ARGS_SERF[@]}" "${join[@]}" \
    >"$WORK/s$i.log" 2>&1 </dev/null &
  PIDS+=($!); SERF_PIDS+=($!); disown $!

  ip=$SWIM_NET.$i
  join=()
  [ "$i" -gt 1 ] && join=(--join "$SWIM_NET.1:7946")
  "${PDEATH[@]}" "$SWIMNET" agent --node "w$i" --bind "$ip:7946" --api "$ip:7380" \
    --profile "$PROFILE" --protocol serf --log-level info "${KEY_ARGS_SWIM[@]}" "${join[@]}" \
    >"$WORK/w$i.log" 2>&1 </dev/null &
  PIDS+=($!); SWIM_PIDS+=($!); disown $!
  # serf agents exit when their -join fails: give the seed a moment first.
  [ "$i" = 1 ] && sleep 1
done

python3 - "$WORK" "$SERF" "$SWIMNET" "$SERF_NET" "$SWIM_NET" "$AGENTS" "$IDLE_SECONDS" \
  "$SAMPLE_SECONDS" "$PROFILE" "$STRICT" "$KILLS" "${SERF_PIDS[*]}" "${SWIM_PIDS[*]}" <<'EOF'
import json, os, signal, subprocess, sys, threading, time

(work, serf, swimnet, serf_net, swim_net, n, idle, sample, profile, strict, kills,
 serf_pids, swim_pids) = sys.argv[1:]
n, idle, sample, kills = int(n), float(idle), float(sample), int(kills)
settle = {"local": 5, "lan": 10, "wan": 30}[profile]
serf_pids = [int(p) for p in serf_pids.split()]
swim_pids = [int(p) for p in swim_pids.split()]
CLK = os.sysconf("SC_CLK_TCK")

def members(side, i):
    if side == "serf":
        cmd = [serf, "members", "-format=json", f"-rpc-addr={serf_net}.{i}:7373"]
    else:
        cmd = [swimnet, "members", "--api", f"{swim_net}.{i}:7380", "--format", "json"]
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=10)
    except subprocess.TimeoutExpired:
        return None
    if out.returncode != 0:
        return None
    try:
        return {m["name"]: m["status"] for m in json.loads(out.stdout)["members"]}
    except (ValueError, KeyError):
        return None

def names(side):
    p = "s" if side == "serf" else "w"
    return [f"{p}{i}" for i in range(1, n + 1)]

def check_running():
    for side, pids in (("serf", serf_pids), ("swimnet", swim_pids)):
        for i, pid in enumerate(pids, 1):
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            if not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z":
                log = "s" if side == "serf" else "w"
                tail = open(f"{work}/{log}{i}.log", errors="replace").read()[-2000:]
                sys.exit(f"{side} agent {i} (pid {pid}) is not running:\n{tail}")

def converged(side):
    want = set(names(side))
    for i in range(1, n + 1):
        m = members(side, i)
        if m is None or {k for k, v in m.items() if v == "alive"} != want:
            return False
    return True

# 1. convergence
t0 = time.time()
done = {"serf": None, "swimnet": None}
while None in done.values():
    check_running()
    for side in done:
        if done[side] is None and converged(side):
            done[side] = time.time() - t0
    if time.time() - t0 > 180:
        sys.exit(f"clusters did not converge within 180 s: {done}")
    time.sleep(0.5)
print(f"== converged: serf {done['serf']:.1f} s, swimnet {done['swimnet']:.1f} s after start")

# 2. idle window: RSS samples and CPU time, no queries to the agents
def rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0

# RSS counts pages shared by all agents of a side (the binary, libc) in full
# for each agent; PSS divides them among the processes that map them, and
# Pss_Anon is the agent's own heap and stacks.
def smaps_kb(pid, key):
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0

def cpu_s(pid):
    st = open(f"/proc/{pid}/stat").read()
    f = st[st.rindex(")") + 2:].split()
    return (int(f[11]) + int(f[12])) / CLK   # utime, stime (fields 14, 15)

print(f"== idle window {idle:.0f} s (RSS sampled every {sample:.0f} s)")
cpu0 = {p: cpu_s(p) for p in serf_pids + swim_pids}
rss = {p: [] for p in serf_pids + swim_pids}
pss = {p: [] for p in serf_pids + swim_pids}
anon = {p: [] for p in serf_pids + swim_pids}
start = time.time()
while True:
    for p in rss:
        rss[p].append(rss_kb(p))
        pss[p].append(smaps_kb(p, "Pss"))
        anon[p].append(smaps_kb(p, "Pss_Anon"))
    left = idle - (time.time() - start)
    if left <= 0:
        break
    time.sleep(min(sample, left))
check_running()
cpu1 = {p: cpu_s(p) for p in serf_pids + swim_pids}
elapsed = time.time() - start

def mean(xs):
    return sum(xs) / len(xs)

res = {}
for side, pids in (("serf", serf_pids), ("swimnet", swim_pids)):
    per_agent_rss = [mean(rss[p]) / 1024 for p in pids]
    per_agent_cpu = [cpu1[p] - cpu0[p] for p in pids]
    res[side] = {
        "rss": mean(per_agent_rss), "rss_max": max(max(rss[p]) for p in pids) / 1024,
        "pss": mean([mean(pss[p]) / 1024 for p in pids]),
        "anon": mean([mean(anon[p]) / 1024 for p in pids]),
        "cpu": mean(per_agent_cpu), "cpu_max": max(per_agent_cpu),
    }

# 3. kill -9 one member per side (one side at a time, so the pollers of one
#    side do not load the other), poll every other member every 100 ms
def detect(side, pids, victim_i):
    """kill -9 agent victim_i; seconds until every other live agent shows it failed."""
    victim = names(side)[victim_i - 1]
    observers = range(1, victim_i)   # the agents above victim_i were killed in earlier rounds
    first_failed = {}
    stop = threading.Event()
    def watch(i):
        while not stop.is_set():
            m = members(side, i)
            if m is not None and m.get(victim) == "failed":
                first_failed[i] = time.time()
                return
            time.sleep(0.1)
    threads = [threading.Thread(target=watch, args=(i,), daemon=True) for i in observers]
    os.kill(pids[victim_i - 1], signal.SIGKILL)
    t_kill = time.time()
    for t in threads:
        t.start()
    deadline = t_kill + 180
    while len(first_failed) < len(observers) and time.time() < deadline:
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(timeout=15)
    if len(first_failed) < len(observers):
        missing = [names(side)[i - 1] for i in observers if i not in first_failed]
        print(f"   {side}: {missing} never showed {victim} failed within 180 s")
        return None, None
    times = sorted(first_failed[i] - t_kill for i in observers)
    print(f"== {side}: kill -9 {victim} -> first member shows failed after {times[0]:.2f} s, "
          f"all {len(observers)} after {times[-1]:.2f} s")
    return times[-1], times[0]

for side, pids in (("serf", serf_pids), ("swimnet", swim_pids)):
    alls = []
    for k in range(kills):
        all_, _ = detect(side, pids, n - k)
        if all_ is None:
            alls = None
            break
        alls.append(all_)
        if k + 1 < kills:
            time.sleep(settle)   # let the previous failure settle before the next kill
    res[side]["detect"] = mean(alls) if alls else None

# 4. report
def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b

rows = [
    ("RSS per agent, MB (mean)", "rss", 0.33, "{:.1f}"),
    ("PSS per agent, MB (shared pages split)", "pss", 0.33, "{:.1f}"),
    ("private heap+stack per agent, MB (Pss_Anon)", "anon", 0.33, "{:.1f}"),
    (f"CPU s per agent / {elapsed:.0f} s idle", "cpu", 0.5, "{:.2f}"),
    (f"kill -9 -> all marked failed, s{' (mean of %d)' % kills if kills > 1 else ''}", "detect", 1.0, "{:.2f}"),
]
print()
print(f"agents per side: {n}, profile: {profile}, idle window: {elapsed:.0f} s")
print(f"{'metric':<46} {'serf':>10} {'swimnet':>10} {'ratio':>8} {'target':>8}  result")
missed = False
for label, key, target, fmt in rows:
    a, b = res["serf"][key], res["swimnet"][key]
    r = ratio(b, a)
    ok = r is not None and r <= target
    missed |= not ok
    sa = fmt.format(a) if a is not None else "n/a"
    sb = fmt.format(b) if b is not None else "n/a"
    sr = f"{r:.2f}" if r is not None else "n/a"
    print(f"{label:<46} {sa:>10} {sb:>10} {sr:>8} {'<= ' + str(target):>8}  {'ok' if ok else 'MISSED'}")
print(f"{'(max RSS MB / max CPU s per agent)':<46} "
      f"{res['serf']['rss_max']:>5.1f}/{res['serf']['cpu_max']:<4.2f} "
      f"{res['swimnet']['rss_max']:>5.1f}/{res['swimnet']['cpu_max']:<4.2f}")
print()
for label, key, _, _ in rows:
    r = ratio(res["swimnet"][key], res["serf"][key])
    print(f"ratio swimnet/serf {key:<7} = {r:.3f}" if r is not None else f"ratio swimnet/serf {key:<7} = n/a")
if missed and strict == "1":
    sys.exit(1)
EOF

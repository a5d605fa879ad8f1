#!/usr/bin/env bash
# Soak: restart without loss under churn, with real agents.
#
# Starts AGENTS swimnet agents (NetworkDB mode, profile local, loopback
# addresses NET.1 .. NET.AGENTS, each with its own --data-dir under a
# temporary directory), attaches them all to one network, and for DURATION
# seconds:
#   * writes table entries throughout: every second, WRITERS agents (round
#     robin) each put one of their own KEYS keys (named after the agent);
#     the value each owner wrote last is remembered (only writes the API
#     acknowledged);
#   * restarts one agent every RESTART_EVERY seconds, round robin,
#     alternating kill -9 and SIGTERM (graceful leave), with the same data
#     dir and no --join. Writes to the next victim pause QUIESCE seconds
#     before a kill -9 (a write acknowledged less than the snapshot interval
#     before a crash, and not yet gossiped, is not expected to survive it).
# Then it stops the churn and checks, within SETTLE seconds:
#   * every agent lists every agent alive;
#   * every agent's table is the same;
#   * every entry each owner wrote last is there, with that value;
#   * VmRSS of each agent at RSS_AT seconds (default 300, or DURATION/3 for
#     short runs) and at the end are within RSS_TOLERANCE percent.
# Prints a summary; exits 1 when a check fails.
#
# Usage: scripts/soak-restart.sh
# Environment:
#   DURATION       seconds of churn (default 1800)
#   AGENTS         agents (default 16)
#   RESTART_EVERY  seconds between restarts (default 30)
#   WRITERS        agents written per second (default 4)
#   KEYS           keys per agent (default 20)
#   QUIESCE        seconds without writes to an agent before its kill -9 (default 2)
#   SETTLE         seconds allowed for convergence at the end (default 90)
#   RSS_AT         when to take the first RSS sample (seconds)
#   RSS_TOLERANCE  allowed RSS change in percent (default 10)
#   SOAK_NET       the /24 used (default 127.0.225), loopback only
#   SWIMNET_BIN    binary (default target/release/swimnet, built if missing)
#   KEEP=1         keep the work directory (logs, data dirs)
#
# Every process it starts is tracked by PID and killed on exit (trap).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-1800}
AGENTS=${AGENTS:-16}
RESTART_EVERY=${RESTART_EVERY:-30}
WRITERS=${WRITERS:-4}
KEYS=${KEYS:-20}
QUIESCE=${QUIESCE:-2}
SETTLE=${SETTLE:-90}
RSS_TOLERANCE=${RSS_TOLERANCE:-10}
SOAK_NET=${SOAK_NET:-127.0.225}
KEEP=${KEEP:-0}
if [ -z "${RSS_AT:-}" ]; then
  RSS_AT=300
  [ "$DURATION" -ge 600 ] || RSS_AT=$((DURATION / 3))
fi
case "$SOAK_NET" in 127.*) ;; *) echo "SOAK_NET must be in 127.0.0.0/8" >&2; exit 2 ;; esac
[ "$AGENTS" -ge 3 ] && [ "$AGENTS" -le 250 ] || { echo "AGENTS must be 3..250" >&2; exit 2; }
for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 2; }
done

BIN=${SWIMNET_BIN:-target/release/swimnet}
if [ ! -x "$BIN" ]; then
  echo "building $BIN ..."
  cargo build --release -p swimnet --bin swimnet >/dev/null
fi
BIN=$(realpath "$BIN")

WORK=$(mktemp -d /tmp/swimnet-soak.XXXXXX)
NETWORK=soak
TABLE=entries
declare -a PIDS
declare -A LAST
declare -a RSS_FIRST RSS_LAST RESTARTED

cleanup() {
  for pid in "${PIDS[@]}"; do
    if [ -n "$pid" ] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q "swimnet agent"; then
      kill -9 "$pid" 2>/dev/null || true
      { wait "$pid"; } 2>/dev/null || true
    fi
  done
  if [ "$KEEP" = 1 ]; then echo "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

name() { printf 'soak-%02d' "$1"; }
api() { echo "$SOAK_NET.$1:7380"; }

# start_agent I [JOIN]: starts agent I (same data dir every time) and waits
# for its API.
start_agent() {
  local i=$1 join=${2:-}
  local args=(agent --node "$(name "$i")" --bind "$SOAK_NET.$i:7946" --api "$(api "$i")"
    --profile local --protocol networkdb --log-level info --data-dir "$WORK/data-$i")
  [ -n "$join" ] && args+=(--join "$join")
  if command -v setpriv >/dev/null; then
    setpriv --pdeathsig KILL -- "$BIN" "${args[@]}" >>"$WORK/agent-$i.log" 2>&1 &
  else
    "$BIN" "${args[@]}" >>"$WORK/agent-$i.log" 2>&1 &
  fi
  PIDS[$i]=$!
  for _ in $(seq 200); do
    kill -0 "${PIDS[$i]}" 2>/dev/null || break
    # Up when its own API lists it (not some other process on that address).
    members=$(curl -sf "http://$(api "$i")/v1/members" 2>/dev/null || true)
    [[ $members == *"\"name\":\"$(name "$i")\""* ]] && return 0
    sleep 0.1
  done
  echo "agent $i did not start; last log lines:" >&2
  tail -20 "$WORK/agent-$i.log" >&2
  exit 1
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# stop_agent I kill9|term: stops agent I by its PID and waits for it.
stop_agent() {
  local i=$1 how=$2 pid=${PIDS[$1]}
  if [ "$how" = kill9 ]; then kill -9 "$pid"; else kill -TERM "$pid"; fi
  for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "agent $i did not stop after $how; killing it" >&2
    kill -9 "$pid"
  fi
  { wait "$pid"; } 2>/dev/null || true
}

echo "soak: $AGENTS agents on $SOAK_NET.0/24, ${DURATION}s, a restart every ${RESTART_EVERY}s, work dir $WORK"
start_agent 1
curl -sf -X POST -H "Content-Type: application/json" "http://$(api 1)/v1/networks/$NETWORK/join" >/dev/null
for i in $(seq 2 "$AGENTS"); do
  start_agent "$i" "$SOAK_NET.1:7946"
  curl -sf -X POST -H "Content-Type: application/json" "http://$(api "$i")/v1/networks/$NETWORK/join" >/dev/null
done

writes_ok=0 writes_failed=0 kills=0 terms=0 seq=0 writer=0 victim=0
start=$(date +%s)
next_restart=$((start + RESTART_EVERY))
mode=kill9
rss_taken=0
last_rss_log=0
echo 'elapsed_s,agent,pid,rss_kib' >"$WORK/rss.csv"
while :; do
  now=$(date +%s)
  elapsed=$((now - start))
  [ "$elapsed" -lt "$DURATION" ] || break
  next_victim=$((victim % AGENTS + 1))
  # Writes: WRITERS agents, round robin, one key each.
  for _ in $(seq "$WRITERS"); do
    writer=$((writer % AGENTS + 1))
    if [ "$mode" = kill9 ] && [ "$writer" = "$next_victim" ] && [ $((next_restart - now)) -le "$QUIESCE" ]; then
      continue
    fi
    seq=$((seq + 1))
    key="$(name "$writer")-k$((seq % KEYS))"
    value="$(name "$writer")-$seq"
    if curl -sf -m 5 -X PUT -H 'Content-Type: application/octet-stream' --data-binary "$value" \
      "http://$(api "$writer")/v1/tables/$NETWORK/$TABLE/$key" >/dev/null 2>&1; then
      LAST["$(name "$writer") $key"]=$value
      writes_ok=$((writes_ok + 1))
    else
      writes_failed=$((writes_failed + 1))
    fi
  done
  if [ "$rss_taken" = 0 ] && [ "$elapsed" -ge "$RSS_AT" ]; then
    for i in $(seq "$AGENTS"); do RSS_FIRST[$i]=$(rss_kib "${PIDS[$i]}"); RESTARTED[$i]=no; done
    rss_taken=1
    echo "[$elapsed s] RSS sampled (first)"
  fi
  if [ $((elapsed - last_rss_log)) -ge 30 ]; then
    for i in $(seq "$AGENTS"); do echo "$elapsed,$(name "$i"),${PIDS[$i]},$(rss_kib "${PIDS[$i]}")"; done >>"$WORK/rss.csv"
    last_rss_log=$elapsed
  fi
  if [ "$now" -ge "$next_restart" ]; then
    victim=$next_victim
    stop_agent "$victim" "$mode"
    start_agent "$victim"
    [ "$rss_taken" = 1 ] && RESTARTED[$victim]=yes
    if [ "$mode" = kill9 ]; then kills=$((kills + 1)); mode=term; else terms=$((terms + 1)); mode=kill9; fi
    echo "[$elapsed s] restarted $(name "$victim") (kill -9: $kills, SIGTERM: $terms; writes ok $writes_ok)"
    next_restart=$((next_restart + RESTART_EVERY))
  fi
  sleep 1
done
churn_end=$(date +%s)

# What each owner wrote last.
for k in "${!LAST[@]}"; do printf '%s %s\n' "$k" "${LAST[$k]}"; done >"$WORK/expected.txt"

cat >"$WORK/check.py" <<'PYEOF'
# Checks the tables and members fetched into WORK: every agent sees every
# agent alive, all tables are equal, and each owner's last writes are there.
import base64, json, sys
work, agents, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
problems = []
names = ["soak-%02d" % i for i in range(1, agents + 1)]
tables = []
for i in range(1, agents + 1):
    try:
        t = json.load(open(f"{work}/table-{i}.json"))
        m = json.load(open(f"{work}/members-{i}.json"))
    except Exception as e:
        problems.append(f"agent {i}: unreadable answer ({e})")
        continue
    alive = {x["name"] for x in m.get("members", []) if x.get("status") == "alive"}
    missing = [n for n in names if n not in alive]
    if missing:
        problems.append(f"agent {i}: not alive there: {missing[:4]}")
    entries = {e["key"]: (e["owner"], base64.b64decode(e["value"]).decode("utf-8", "replace"))
               for e in t.get("entries", [])}
    tables.append((i, entries))
expected = {}
for line in open(f"{work}/expected.txt"):
    owner, key, value = line.split()
    expected[key] = (owner, value)
if tables:
    first_i, first = tables[0]
    for i, t in tables[1:]:
        if t != first:
            diff = sorted(set(t.items()) ^ set(first.items()))[:4]
            problems.append(f"agent {i} disagrees with agent {first_i}: {diff}")
    lost = [k for k, want in expected.items() if first.get(k) != want]
    for k in lost[:4]:
        problems.append(f"{k}: want {expected[k]}, agent {first_i} has {first.get(k)}")
    if lost:
        problems.append(f"{len(lost)} of {len(expected)} entries not as their owner wrote them last")
if mode != "quiet":
    n = len(tables[0][1]) if tables else 0
    print(f"tables: {len(tables)} agents read, {n} entries each, {len(expected)} expected")
    for p in problems:
        print("PROBLEM:", p)
sys.exit(1 if problems else 0)
PYEOF

fetch_all() {
  for i in $(seq "$AGENTS"); do
    curl -sf -m 5 "http://$(api "$i")/v1/tables/$NETWORK/$TABLE" >"$WORK/table-$i.json" 2>/dev/null || echo '{}' >"$WORK/table-$i.json"
    curl -sf -m 5 "http://$(api "$i")/v1/members" >"$WORK/members-$i.json" 2>/dev/null || echo '{}' >"$WORK/members-$i.json"
  done
}

echo "churn over; waiting up to ${SETTLE}s for every agent to agree"
settled=-1
while [ $(( $(date +%s) - churn_end )) -le "$SETTLE" ]; do
  fetch_all
  if python3 "$WORK/check.py" "$WORK" "$AGENTS" quiet; then
    settled=$(( $(date +%s) - churn_end ))
    break
  fi
  sleep 2
done
python3 "$WORK/check.py" "$WORK" "$AGENTS" verbose && tables_ok=1 || tables_ok=0

# Where each agent's memory is, for a look after a run with KEEP=1.
for i in $(seq "$AGENTS"); do
  cat "/proc/${PIDS[$i]}/smaps" >"$WORK/smaps-$i.txt" 2>/dev/null || true
done

rss_ok=1
echo "RSS per agent (KiB): first sample at ${RSS_AT}s, last at the end"
for i in $(seq "$AGENTS"); do
  RSS_LAST[$i]=$(rss_kib "${PIDS[$i]}")
  first=${RSS_FIRST[$i]:-0}
  last=${RSS_LAST[$i]}
  if [ "$first" -gt 0 ]; then
    change=$(( (last - first) * 100 / first ))
  else
    change=999
  fi
  verdict=ok
  if [ "${change#-}" -gt "$RSS_TOLERANCE" ]; then verdict=OVER; rss_ok=0; fi
  printf '  %s  first %7s  last %7s  change %+4d%%  restarted since: %-3s %s\n' \
    "$(name "$i")" "$first" "$last" "$change" "${RESTARTED[$i]:-?}" "$verdict"
done

echo "summary: ${DURATION}s, $AGENTS agents, restarts: $kills kill -9 + $terms SIGTERM, writes: $writes_ok ok, $writes_failed failed"
if [ "$settled" -ge 0 ]; then echo "  tables agreed and complete ${settled}s after the churn"; else echo "  tables did NOT agree within ${SETTLE}s"; fi
if [ "$tables_ok" = 1 ] && [ "$rss_ok" = 1 ] && [ "$settled" -ge 0 ]; then
  echo "RESULT: PASS"
  exit 0
fi
echo "RESULT: FAIL (tables ok: $tables_ok, rss ok: $rss_ok)"
exit 1

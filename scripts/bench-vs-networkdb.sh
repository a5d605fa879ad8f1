#!/usr/bin/env bash
# Side-by-side benchmark against Docker's real NetworkDB (networkdb-test built
# from Debian's docker.io 20.10.24 source, scripts/build-networkdb-test.sh):
# NODES Docker nodes and NODES swimnet nodes (`--protocol networkdb --profile
# lan`), each side its own cluster, measured in the same run. On each side all
# nodes join one network, ENTRIES entries are written on node 1 through the
# diagnostic API (/createentry, one keep-alive HTTP connection), and the script
# measures
#
#   * convergence: time from the first write until every node's
#     /networkstats?nid= shows ENTRIES entries (polled every 200 ms inside each
#     node's namespace; bounded by DEADLINE)          target swimnet/docker <= 0.5
#   * bytes sent per node: eth0 tx_bytes of every node namespace, before the
#     first write and after convergence                target swimnet/docker <= 1.0
#   * memory of one swimnet node (own namespace, own network) before and after
#     writing MEM_ENTRIES entries: VmRSS and Pss_Anon (smaps_rollup)
#
# Network layout: every node is its own network
# namespace with an `eth0` veth whose peer sits on a bridge living in a
# namespace of its own; Docker nodes use 10.80.0.<i>/24, swimnet nodes
# 10.81.0.<i>/24, the memory node 10.82.0.1/24. These addresses exist only
# inside the namespaces this script creates; nothing touches the root
# namespace. Every process is tracked by PID and killed, and every namespace
# deleted, on exit (trap).
#
# Environment:
#   NODES        nodes per side (default 8)
#   ENTRIES      entries written per side (default 10000)
#   MEM_ENTRIES  entries for the memory measurement (default 100000; 0 skips it)
#   DEADLINE     seconds to wait for convergence (default 600)
#   NDB_BIN      Docker's networkdb-test (default: last stdout line of
#                scripts/build-networkdb-test.sh)
#   SWIMNET_BIN  the agent binary (default target/release/swimnet)
#   NO_BUILD=1   do not run `cargo build --release` for target/release/swimnet
#   KEEP=1       keep the work directory (logs) under target/bench-vs-networkdb
#   STRICT=1     exit 1 when a target is missed (default: report only)
#
# Needs: root, iproute2 with `ip netns`, python3, cargo (unless NO_BUILD=1).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/netns.sh
. scripts/lib/netns.sh
ROOT=$PWD

NODES=${NODES:-8}
ENTRIES=${ENTRIES:-10000}
MEM_ENTRIES=${MEM_ENTRIES:-100000}
DEADLINE=${DEADLINE:-600}
KEEP=${KEEP:-0}
STRICT=${STRICT:-0}
NO_BUILD=${NO_BUILD:-0}
NID=benchnet
TNAME=benchtable
API=8000

die() { echo "bench-vs-networkdb: $*" >&2; exit 1; }
note() { echo "== $*" >&2; }

case "${1:-}" in -h|--help) sed -n '2,38p' "$0"; exit 0 ;; esac
[ $# -eq 0 ] || die "no arguments accepted (use environment variables; see --help)"
for v in NODES ENTRIES MEM_ENTRIES DEADLINE; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer"
done
[ "$NODES" -ge 2 ] && [ "$NODES" -le 200 ] || die "NODES must be 2..200"
[ "$ENTRIES" -ge 1 ] || die "ENTRIES must be >= 1"

# ---- preflight -----------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "must run as root (it creates network namespaces)"
command -v ip >/dev/null 2>&1 || die "'ip' (iproute2) is missing: apt-get install iproute2"
ip netns list >/dev/null 2>&1 || die "'ip netns' is unavailable (no iproute2 netns support or no permission)"
command -v python3 >/dev/null 2>&1 || die "python3 is missing"

if [ -z "${NDB_BIN:-}" ]; then
    note "locating Docker's networkdb-test (scripts/build-networkdb-test.sh)"
    NDB_BIN=$(scripts/build-networkdb-test.sh | tail -n1) ||
        die "scripts/build-networkdb-test.sh failed"
fi
[ -x "$NDB_BIN" ] || die "Docker's networkdb-test not found at '$NDB_BIN'"

SWIM_BIN=${SWIMNET_BIN:-$ROOT/target/release/swimnet}
if [ "$NO_BUILD" != 1 ]; then
    note "cargo build --release -p swimnet"
    cargo build --release -q -p swimnet --bin swimnet || die "cargo build failed"
fi
[ -x "$SWIM_BIN" ] || die "$SWIM_BIN not found (cargo build --release -p swimnet)"

W=$ROOT/target/bench-vs-networkdb/run-$$
mkdir -p "$W"
PFX="bvn$$-"
NSS=()    # namespaces created, in order
PIDS=()   # processes started

cleanup() {
    local rc=$?
    set +e
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    local i
    for ((i = ${#NSS[@]} - 1; i >= 0; i--)); do ip netns del "${NSS[$i]}" 2>/dev/null; done
    if [ "$KEEP" = 1 ]; then echo "work directory kept: $W" >&2; else rm -rf "$W"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

add_ns() { ip netns add "$1"; NSS+=("$1"); }

# bridge <side>: the bridge namespace of one side
bridge() {
    local br="${PFX}$1br"
    add_ns "$br"
    ip -n "$br" link add br0 type bridge
    ip -n "$br" link set br0 up
}

# host <side> <i> <ip>: namespace ${PFX}<side><i> with eth0=<ip>/24 on <side>'s bridge
host() {
    local side=$1 i=$2 addr=$3 ns="${PFX}$1$2" br="${PFX}$1br"
    add_ns "$ns"
    netns_plug "$br" "$i" "$ns" "$addr/24"
}

# ---- python helper (runs inside a namespace, talks to 127.0.0.1:API) ------------
PY=$W/ndbbench.py
cat >"$PY" <<'EOF'
import base64, http.client, json, re, sys, time, urllib.parse

PORT = 8000

class Api:
    def __init__(self):
        self.c = None
    def get(self, path, timeout=10):
        for attempt in range(3):
            try:
                if self.c is None:
                    self.c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=timeout)
                self.c.request("GET", path)
                r = self.c.getresponse()
                body = r.read().decode("utf-8", "replace")
                if r.will_close:
                    self.c.close(); self.c = None
                return body
            except (OSError, http.client.HTTPException):
                if self.c is not None:
                    self.c.close()
                self.c = None
                if attempt == 2:
                    raise
                time.sleep(0.05)

def q(s):
    return urllib.parse.quote(s, safe="")

def count(api, path):
    """Length of details.entries of a ?json answer, -1 on failure."""
    sep = "&" if "?" in path else "?"
    try:
        v = json.loads(api.get(path + sep + "json"))
    except Exception:
        return -1
    if v.get("message") != "OK":
        return -1
    d = v.get("details") or {}
    e = d.get("entries")
    if isinstance(e, list):
        return len(e)
    return -1

def stats(api, nid):
    """Entry count of /networkstats (json, or the text form)."""
    try:
        body = api.get("/networkstats?nid=%s&json" % q(nid))
        v = json.loads(body)
        n = (v.get("details") or {}).get("entries")
        if isinstance(n, int):
            return n
    except Exception:
        pass
    try:
        m = re.search(r"entries:\s*(-?\d+)", api.get("/networkstats?nid=%s" % q(nid)))
        return int(m.group(1)) if m else -1
    except Exception:
        return -1

def main():
    cmd = sys.argv[1]
    api = Api()
    if cmd == "ready":               # ready <timeout>
        end = time.time() + float(sys.argv[2])
        while time.time() < end:
            try:
                if api.get("/ready", timeout=2).lstrip().startswith("OK"):
                    return 0
            except Exception:
                pass
            time.sleep(0.1)
        print("not ready", file=sys.stderr); return 1
    if cmd == "ok":                  # ok <path>: call, fail unless the answer is OK
        body = api.get(sys.argv[2])
        if not body.lstrip().startswith("OK"):
            print("%s: %s" % (sys.argv[2], body.strip()), file=sys.stderr); return 1
        return 0
    if cmd == "waitcount":           # waitcount <path> <n> <timeout>
        path, n, end = sys.argv[2], int(sys.argv[3]), time.time() + float(sys.argv[4])
        c = -1
        while time.time() < end:
            c = count(api, path)
            if c >= n:
                return 0
            time.sleep(0.2)
        print("%s: %d of %d" % (path, c, n), file=sys.stderr); return 1
    if cmd == "count":               # count <path>
        print(count(api, sys.argv[2])); return 0
    if cmd == "write":               # write <nid> <tname> <n> <prefix>
        nid, tname, n, pfx = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
        t0 = time.time()
        print("start %.6f" % t0, flush=True)
        bad = 0
        for i in range(n):
            key = "%s-%06d" % (pfx, i)
            val = base64.b64encode(("value-%s-%06d" % (pfx, i)).encode()).decode()
            body = api.get("/createentry?tname=%s&nid=%s&key=%s&value=%s"
                           % (q(tname), q(nid), q(key), q(val)))
            if not body.lstrip().startswith("OK"):
                bad += 1
                if bad <= 3:
                    print("createentry %s: %s" % (key, body.strip()), file=sys.stderr)
        print("end %.6f" % time.time(), flush=True)
        print("failed %d" % bad, flush=True)
        return 1 if bad else 0
    if cmd == "poll":                # poll <nid> <n> <deadline-epoch>: prints reach time
        nid, n, end = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
        c = -1
        while time.time() < end:
            c = stats(api, nid)
            if c >= n:
                print("reached %.6f %d" % (time.time(), c), flush=True); return 0
            time.sleep(0.2)
        print("timeout %.6f %d" % (time.time(), c), flush=True); return 1
    print("unknown command", cmd, file=sys.stderr); return 2

sys.exit(main())
EOF

nx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
pyns() { local ns=$1; shift; ip netns exec "$ns" python3 "$PY" "$@"; }

# start <side> <i> <label>: starts the side's node process in its namespace
start_node() {
    local side=$1 i=$2 ns="${PFX}$1$2" addr=$3
    if [ "$side" = d ]; then
        TASK_ID="dock$i" ip netns exec "$ns" "$NDB_BIN" server "$API" \
            </dev/null >"$W/d$i.log" 2>&1 &
    else
        ip netns exec "$ns" "$SWIM_BIN" agent --node "swim$i" --bind "$addr:7946" \
            --api 127.0.0.1:7380 --diagnostic-addr "127.0.0.1:$API" --protocol networkdb --profile lan \
            </dev/null >"$W/$side$i.log" 2>&1 &
    fi
    PIDS+=($!)   # `ip netns exec` execs: $! is the node's own PID
    pyns "$ns" ready 20 || { tail -n 20 "$W/$side$i.log" >&2; die "$side$i did not become ready"; }
}

tx() { nx "$1" cat /sys/class/net/eth0/statistics/tx_bytes; }

# run_side <side> <net> <label>: sets CONV, WRITE_S, BYTES_MEAN, BYTES_WRITER, BYTES_MAXOTHER
run_side() {
    local side=$1 net=$2 label=$3 i
    note "$label: $NODES nodes on $net.0/24"
    bridge "$side"
    for ((i = 1; i <= NODES; i++)); do
        host "$side" "$i" "$net.$i"
        start_node "$side" "$i" "$net.$i"
    done
    for ((i = 2; i <= NODES; i++)); do
        pyns "${PFX}${side}$i" ok "/join?members=$net.1" || die "$label node $i: join failed"
    done
    for ((i = 1; i <= NODES; i++)); do
        pyns "${PFX}${side}$i" waitcount /clusterpeers "$NODES" 60 ||
            die "$label node $i: cluster did not form within 60 s"
    done
    for ((i = 1; i <= NODES; i++)); do
        pyns "${PFX}${side}$i" ok "/joinnetwork?nid=$NID" || die "$label node $i: joinnetwork failed"
    done
    for ((i = 1; i <= NODES; i++)); do
        pyns "${PFX}${side}$i" waitcount "/networkpeers?nid=$NID" "$NODES" 60 ||
            die "$label node $i: network peers incomplete within 60 s"
    done
    sleep 2   # let join/network gossip settle before measuring bytes

    local before=() after=()
    for ((i = 1; i <= NODES; i++)); do before[i]=$(tx "${PFX}${side}$i"); done
    local dl poll_pids=()
    dl=$(python3 -c "import time; print(time.time() + $DEADLINE)")
    for ((i = 1; i <= NODES; i++)); do
        # a plain command (not the pyns function), so $! is the poller's own PID
        ip netns exec "${PFX}${side}$i" python3 "$PY" poll "$NID" "$ENTRIES" "$dl" \
            >"$W/$side-poll$i.out" 2>&1 &
        poll_pids+=($!)
        PIDS+=($!)
    done
    note "$label: writing $ENTRIES entries on node 1"
    pyns "${PFX}${side}1" write "$NID" "$TNAME" "$ENTRIES" "$side" >"$W/$side-write.out" ||
        { cat "$W/$side-write.out" >&2; die "$label: writing failed"; }
    local failed=0
    for p in "${poll_pids[@]}"; do wait "$p" || failed=1; done
    for ((i = 1; i <= NODES; i++)); do after[i]=$(tx "${PFX}${side}$i"); done
    if [ "$failed" = 1 ]; then
        for ((i = 1; i <= NODES; i++)); do echo "  node $i: $(cat "$W/$side-poll$i.out")" >&2; done
        die "$label: not every node reached $ENTRIES entries within ${DEADLINE} s"
    fi
    # cross-check with /gettable on every node
    for ((i = 1; i <= NODES; i++)); do
        local n
        n=$(pyns "${PFX}${side}$i" count "/gettable?nid=$NID&tname=$TNAME")
        [ "$n" = "$ENTRIES" ] || echo "warning: $label node $i /gettable holds $n entries, expected $ENTRIES" >&2
    done
    local start end last
    start=$(awk '/^start/ {print $2}' "$W/$side-write.out")
    end=$(awk '/^end/ {print $2}' "$W/$side-write.out")
    last=$(cat "$W"/"$side"-poll*.out | awk '/^reached/ {if ($2 > m) m = $2} END {printf "%.6f", m}')
    CONV=$(awk -v a="$start" -v b="$last" 'BEGIN {printf "%.3f", b - a}')
    WRITE_S=$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.3f", b - a}')
    local sum=0 maxo=0 d
    for ((i = 1; i <= NODES; i++)); do
        d=$((after[i] - before[i]))
        sum=$((sum + d))
        if [ "$i" -gt 1 ] && [ "$d" -gt "$maxo" ]; then maxo=$d; fi
        echo "$label node $i: tx $d bytes, $(cat "$W/$side-poll$i.out")" >>"$W/detail.txt"
    done
    BYTES_MEAN=$((sum / NODES))
    BYTES_WRITER=$((after[1] - before[1]))
    BYTES_MAXOTHER=$maxo
    note "$label: converged in ${CONV} s (writes took ${WRITE_S} s), mean tx/node $BYTES_MEAN B"
}

# kill_side <side>: stops a side's node processes (frees CPU for the other side)
kill_side() {
    local i p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
}

run_side d 10.80.0 docker
D_CONV=$CONV D_WRITE=$WRITE_S D_MEAN=$BYTES_MEAN D_WRITER=$BYTES_WRITER D_MAXO=$BYTES_MAXOTHER
kill_side d
run_side s 10.81.0 swimnet
S_CONV=$CONV S_WRITE=$WRITE_S S_MEAN=$BYTES_MEAN S_WRITER=$BYTES_WRITER S_MAXO=$BYTES_MAXOTHER
kill_side s

# ---- memory of one swimnet node ------------------------------------------------------
mem() { # mem <pid>: "VmRSS_kB Pss_Anon_kB"
    local rss pss
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$1/status")
    pss=$(awk '/^Pss_Anon:/ {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || true)
    echo "$rss ${pss:-NA}"
}
M_BEFORE="" M_AFTER="" M_WRITE=""
if [ "$MEM_ENTRIES" -gt 0 ]; then
    note "memory: one swimnet node, $MEM_ENTRIES entries"
    bridge m
    host m 1 10.82.0.1
    start_node m 1 10.82.0.1
    MPID=${PIDS[-1]}
    pyns "${PFX}m1" ok "/joinnetwork?nid=$NID" || die "memory node: joinnetwork failed"
    sleep 1
    M_BEFORE=$(mem "$MPID")
    pyns "${PFX}m1" write "$NID" "$TNAME" "$MEM_ENTRIES" m >"$W/m-write.out" ||
        { cat "$W/m-write.out" >&2; die "memory node: writing failed"; }
    n=$(pyns "${PFX}m1" count "/gettable?nid=$NID&tname=$TNAME")
    [ "$n" = "$MEM_ENTRIES" ] || echo "warning: memory node /gettable holds $n entries, expected $MEM_ENTRIES" >&2
    sleep 2
    M_AFTER=$(mem "$MPID")
    kill_side m
fi

# ---- report ----------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
R_CONV=$(ratio "$S_CONV" "$D_CONV")
R_BYTES=$(ratio "$S_MEAN" "$D_MEAN")
echo
echo "swimnet vs Docker NetworkDB: $NODES nodes per side, $ENTRIES entries written on node 1, profile lan"
printf '%-34s %16s %16s %10s\n' "metric" "docker" "swimnet" "ratio s/d"
printf '%-34s %16s %16s %10s\n' "convergence (s)" "$D_CONV" "$S_CONV" "$R_CONV"
printf '%-34s %16s %16s %10s\n' "write phase on node 1 (s)" "$D_WRITE" "$S_WRITE" "$(ratio "$S_WRITE" "$D_WRITE")"
printf '%-34s %16s %16s %10s\n' "tx bytes per node (mean)" "$D_MEAN" "$S_MEAN" "$R_BYTES"
printf '%-34s %16s %16s %10s\n' "tx bytes, writer node" "$D_WRITER" "$S_WRITER" "$(ratio "$S_WRITER" "$D_WRITER")"
printf '%-34s %16s %16s %10s\n' "tx bytes, max other node" "$D_MAXO" "$S_MAXO" "$(ratio "$S_MAXO" "$D_MAXO")"
if [ -n "$M_BEFORE" ]; then
    read -r rb pb <<<"$M_BEFORE"
    read -r ra pa <<<"$M_AFTER"
    echo
    echo "swimnet memory, one node, $MEM_ENTRIES entries ($(awk '/^start/{s=$2} /^end/{e=$2} END{printf "%.1f", e-s}' "$W/m-write.out") s to write):"
    printf '  %-10s %10s kB before %10s kB after\n' VmRSS "$rb" "$ra"
    printf '  %-10s %10s kB before %10s kB after\n' Pss_Anon "$pb" "$pa"
    [ "$pb" != NA ] && [ "$pa" != NA ] &&
        printf '  Pss_Anon growth: %d kB (%.0f bytes/entry)\n' $((pa - pb)) "$(awk -v a="$pa" -v b="$pb" -v n="$MEM_ENTRIES" 'BEGIN{print (a-b)*1024/n}')"
fi
echo
echo "per-node detail:"
sed 's/^/  /' "$W/detail.txt"
echo
miss=0
awk -v r="$R_CONV" 'BEGIN { exit !(r != "n/a" && r <= 0.5) }' &&
    echo "target convergence swimnet/docker <= 0.5: met ($R_CONV)" ||
    { echo "target convergence swimnet/docker <= 0.5: MISSED ($R_CONV)"; miss=1; }
awk -v r="$R_BYTES" 'BEGIN { exit !(r != "n/a" && r <= 1.0) }' &&
    echo "target bytes/node swimnet/docker <= 1.0: met ($R_BYTES)" ||
    { echo "target bytes/node swimnet/docker <= 1.0: MISSED ($R_BYTES)"; miss=1; }
if [ "$STRICT" = 1 ] && [ "$miss" = 1 ]; then exit 1; fi
exit 0

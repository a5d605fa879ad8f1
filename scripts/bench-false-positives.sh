#!/usr/bin/env bash
# False positives side by side: 8 serf agents and 8 swimnet agents, each in
# its own network namespace, under the same inbound UDP loss and the same
# rotating SIGSTOP stalls, in the same run. No agent is ever killed, so every
# "failed" verdict about any member is a false one. Counts them two ways:
# from member-failed event handlers (one timestamped line per event and
# observer), and from the agents' own log lines of each verdict (serf's
# agent coalesces member events before its handlers, so a failure refuted
# within about a second never reaches them; the logs show every verdict).
# Reports per side: observer verdicts, accusations (a member declared failed
# by anyone, verdicts about it less than MERGE s apart merged), per-window
# counts with mean and standard deviation, the exact Poisson 95 % interval of
# the rate, and the conditional binomial test of equal rates.
#
# Usage: sudo scripts/bench-false-positives.sh
# Environment:
#   LOSS           inbound UDP loss per host, percent (default 20)
#   STALL_SECONDS  how long each stall lasts (default 5)
#   STALL_EVERY    a stall starts every this many seconds (default 15)
#   DURATION       measured seconds per round (default 600)
#   ROUNDS         rounds, each with fresh clusters; figures are pooled (default 1)
#   AGENTS         agents per side (default 8)
#   WINDOW         window length for the per-window counts, s (default 60)
#   MERGE          verdicts about one member closer than this are one accusation, s (default 10)
#   GRACE          seconds after the last stall during which late verdicts still count (default 30)
#   OUT            output directory (default target/bench-false-positives/<UTC time>)
#   SWIMNET_BIN    swimnet binary (default target/release/swimnet)
#   SERF_BIN       serf binary (default: serf on PATH)
#
# Network: namespace fpA-br (serf side) and fpB-br (swimnet side) each hold a
# bridge; agent i of a side lives in namespace fpA-i / fpB-i with eth0 =
# 10.231.1.i/24 (serf) or 10.231.2.i/24 (swimnet), the other end of its veth
# on the side's bridge. The loss is applied on that bridge-side veth end, on
# egress, i.e. to everything the bridge delivers to host i: an htb root whose
# UDP-only class, picked at random by a classic-BPF classifier with
# probability LOSS %, ends in a zero-length pfifo (dropped). (The kernel here
# has no netem; this drops without delaying, which is all loss needs.) Only
# UDP is dropped; TCP (push/pull, TCP fallback probes) and ARP pass. Nothing
# is added to the root namespace, and no traffic leaves the namespaces.
#
# Stalls: every STALL_EVERY s, agent k mod AGENTS (k = 0, 1, ...) of both
# sides is stopped with SIGSTOP for STALL_SECONDS, then continued.
#
# Every process started is tracked by PID; the EXIT/INT/TERM trap continues
# and then kills them, and deletes every namespace (and with it every veth
# and qdisc) this script made.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/netns.sh
. scripts/lib/netns.sh

LOSS=${LOSS:-20}
STALL_SECONDS=${STALL_SECONDS:-5}
STALL_EVERY=${STALL_EVERY:-15}
DURATION=${DURATION:-600}
ROUNDS=${ROUNDS:-1}
AGENTS=${AGENTS:-8}
WINDOW=${WINDOW:-60}
MERGE=${MERGE:-10}
GRACE=${GRACE:-30}
OUT=${OUT:-target/bench-false-positives/$(date -u +%Y%m%dT%H%M%SZ)}
SWIMNET=${SWIMNET_BIN:-target/release/swimnet}
SERF=${SERF_BIN:-$(command -v serf || true)}
LIB=scripts/lib/fp_bench.py

die() {
    echo "error: $*" >&2
    exit 1
}

case "${1:-}" in -h | --help) sed -n '2,46p' "$0"; exit 0 ;; esac
[ $# -eq 0 ] || die "no arguments are taken (settings are environment variables; see --help)"
[ "$(id -u)" = 0 ] || die "run as root (network namespaces and traffic control)"
for t in ip tc setpriv python3; do
    command -v "$t" >/dev/null 2>&1 || die "$t is missing (apt-get install iproute2 util-linux python3)"
done
[ -n "$SERF" ] && "$SERF" version >/dev/null 2>&1 || die "serf is missing (apt-get install serf, or set SERF_BIN)"
[ -x "$SWIMNET" ] || die "no swimnet binary at $SWIMNET (cargo build --release -p swimnet --bin swimnet, or set SWIMNET_BIN)"
for v in LOSS STALL_SECONDS STALL_EVERY DURATION ROUNDS AGENTS WINDOW MERGE GRACE; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number (got '${!v}')"
done
[ "$LOSS" -le 100 ] || die "LOSS is a percentage, 0..100"
[ "$AGENTS" -ge 3 ] && [ "$AGENTS" -le 50 ] || die "AGENTS must be 3..50"
[ "$STALL_SECONDS" -lt "$STALL_EVERY" ] || die "STALL_SECONDS must be less than STALL_EVERY"
[ "$DURATION" -ge "$STALL_EVERY" ] || die "DURATION must be at least STALL_EVERY"
[ "$ROUNDS" -ge 1 ] || die "ROUNDS must be at least 1"
stale=$(ip netns list | awk '{print $1}' | grep -E '^fp[AB]-' || true)
[ -z "$stale" ] || die "namespaces fpA-*/fpB-* exist (a run still going, or an interrupted one): $(echo $stale); remove them with ip netns del NAME"

NAMESPACES=()
PIDS=()
cleanup_round() {
    local p i
    # A stopped agent would not die of SIGKILL any later, but it would not
    # be reaped either; continue them all first.
    for p in "${PIDS[@]}"; do kill -CONT "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
    for ((i = ${#NAMESPACES[@]} - 1; i >= 0; i--)); do
        ip netns del "${NAMESPACES[$i]}" 2>/dev/null || true
    done
    NAMESPACES=()
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    cleanup_round
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

add_ns() {
    ip netns add "$1" || die "ip netns add $1 failed"
    NAMESPACES+=("$1")
}

# Classic BPF for cls_bpf: IPv4 + UDP, then a random draw; returns -1 (the
# filter's flowid, the dropping class) for LOSS % of those, 0 otherwise.
loss_bytecode() {
    local thresh=$(((LOSS * 4294967296) / 100 - 1))
    # ldh [12]; jeq #0x800; ldb [23]; jeq #17; ld rand; jgt #thresh; ret #-1; ret #0
    echo "8,40 0 0 12,21 0 5 2048,48 0 0 23,21 0 3 17,32 0 0 4294963256,37 1 0 $thresh,6 0 0 4294967295,6 0 0 0"
}

# side_net PREFIX SUBNET: bridge namespace PREFIX-br and hosts PREFIX-1..N.
side_net() {
    local pfx=$1 net=$2 br="$1-br" i
    add_ns "$br"
    ip -n "$br" link add br0 type bridge
    ip -n "$br" link set br0 up
    for i in $(seq 1 "$AGENTS"); do
        add_ns "$pfx-$i"
        netns_plug "$br" "$i" "$pfx-$i" "$net.$i/24"
        [ "$LOSS" = 0 ] && continue
        tc -n "$br" qdisc add dev "v$i" root handle 1: htb default 1 r2q 100000
        tc -n "$br" class add dev "v$i" parent 1: classid 1:1 htb rate 10gbit
        tc -n "$br" class add dev "v$i" parent 1: classid 1:2 htb rate 10gbit
        tc -n "$br" qdisc add dev "v$i" parent 1:2 handle 20: pfifo limit 0
        tc -n "$br" filter add dev "v$i" parent 1: protocol all prio 1 \
            bpf bytecode "$(loss_bytecode)" flowid 1:2 ||
            die "cannot install the loss filter (kernel without cls_bpf?)"
    done
}

# The handler appends "EPOCH OBSERVER EVENT ACCUSED" per member line on stdin
# (serf may hand several members to one run).
write_handler() {
    cat >"$1" <<'EOF'
#!/bin/sh
now=$(date +%s.%N)
while IFS= read -r line || [ -n "$line" ]; do
    printf '%s %s %s %s\n' "$now" "${SERF_SELF_NAME:-?}" "${SERF_EVENT:-?}" "${line%%	*}" >>"$FP_EVENTS"
done
EOF
    chmod +x "$1"
}

start_agent() { # start_agent SIDE I ROUNDDIR
    local side=$1 i=$2 dir=$3 ns
    if [ "$side" = serf ]; then
        ns=fpA-$i
        local join=()
        [ "$i" = 1 ] || join=(-join=10.231.1.1:7946)
        FP_EVENTS="$dir/events/s$i.txt" setpriv --pdeathsig KILL -- ip netns exec "$ns" \
            "$SERF" agent -node="s$i" -bind="10.231.1.$i:7946" -rpc-addr=127.0.0.1:7373 \
            -profile=lan -log-level=info -event-handler="member-failed=$dir/handler.sh" "${join[@]}" \
            >"$dir/logs/s$i.log" 2>&1 </dev/null &
    else
        ns=fpB-$i
        local join=()
        [ "$i" = 1 ] || join=(--join 10.231.2.1:7946)
        FP_EVENTS="$dir/events/w$i.txt" setpriv --pdeathsig KILL -- ip netns exec "$ns" \
            "$SWIMNET" agent --node "w$i" --bind "10.231.2.$i:7946" --api 127.0.0.1:7380 \
            --profile lan --protocol serf --log-level info \
            --event-handler "member-failed=$dir/handler.sh" "${join[@]}" \
            >"$dir/logs/w$i.log" 2>&1 </dev/null &
    fi
    PIDS+=($!)
    echo $! >>"$dir/$side.pids"
}

run_round() { # run_round N
    local dir="$OUT/round-$1" i
    mkdir -p "$dir/logs" "$dir/events"
    dir=$(cd "$dir" && pwd)
    : >"$dir/serf.pids"
    : >"$dir/swimnet.pids"
    write_handler "$dir/handler.sh"
    echo "== round $1/$ROUNDS: networks (loss $LOSS % inbound UDP per host)"
    side_net fpA 10.231.1
    side_net fpB 10.231.2
    echo "== round $1/$ROUNDS: $AGENTS serf and $AGENTS swimnet agents"
    for i in $(seq 1 "$AGENTS"); do
        start_agent serf "$i" "$dir"
        start_agent swimnet "$i" "$dir"
        # serf exits when its -join fails: let the seeds come up first.
        [ "$i" = 1 ] && sleep 1
    done
    python3 "$LIB" run --dir "$dir" --serf "$SERF" --swimnet "$SWIMNET" --agents "$AGENTS" \
        --loss "$LOSS" --duration "$DURATION" --stall-seconds "$STALL_SECONDS" \
        --stall-every "$STALL_EVERY" --grace "$GRACE"
    cleanup_round
}

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
echo "== output in $OUT (swimnet: $SWIMNET; serf: $SERF)"
"$SWIMNET" --version >"$OUT/versions.txt" 2>&1 || true
"$SERF" version >>"$OUT/versions.txt" 2>&1 || true
for r in $(seq 1 "$ROUNDS"); do
    run_round "$r"
done
python3 "$LIB" analyze --window "$WINDOW" --merge "$MERGE" --out "$OUT" "$OUT"/round-*

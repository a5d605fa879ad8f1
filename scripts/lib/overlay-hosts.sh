# Shared by scripts/overlay-demo.sh and scripts/bench-overlay.sh (sourced,
# not run): simulated hosts in network namespaces on an underlay bridge, one
# `swimnet agent --protocol networkdb` per host, and cleanup.
#
# Before sourcing, set:
#   OVH_PREFIX  namespace prefix, at most 6 characters (e.g. swe-dm)
#   OVH_LOGS    directory for the agents' logs
#   SWIMNET     path of the swimnet binary
# Layout: ${OVH_PREFIX}u holds bridge br0; host N is ${OVH_PREFIX}hN with
# eth0 = 10.203.0.N/24 on it; its agent binds 10.203.0.N:7946 (that is also
# its VTEP) and serves its API on 127.0.0.1:7380 inside the namespace.
# Endpoint namespaces are ${OVH_PREFIX}hNeM. Nothing touches the root
# namespace: every veth is created inside the underlay namespace.
# ovh_cleanup (call it from an EXIT trap) kills the agents by PID and
# deletes every namespace made here, with /etc/netns/<name>.
# shellcheck source=scripts/lib/netns.sh
. "$(dirname "${BASH_SOURCE[0]}")/netns.sh"

OVH_API=127.0.0.1:7380
OVH_NAMESPACES=()
declare -A OVH_AGENT_PID=()

ovh_die() {
    echo "error: $*" >&2
    exit 1
}

# Fails unless we are root and have the tools.
ovh_preflight() {
    [ "$(id -u)" = 0 ] || ovh_die "run as root (network namespaces, VXLAN)"
    for t in ip bridge ping getent setpriv python3; do
        command -v "$t" >/dev/null 2>&1 ||
            ovh_die "$t is missing (apt-get install iproute2 iputils-ping util-linux python3)"
    done
    [ -x "$SWIMNET" ] || ovh_die "no swimnet binary at $SWIMNET (cargo build --release -p swimnet)"
    mkdir -p "$OVH_LOGS"
}

ovh_add_ns() {
    ip netns add "$1" || ovh_die "ip netns add $1 failed"
    OVH_NAMESPACES+=("$1")
}

# Removes namespaces an earlier, interrupted run with the same prefix left.
ovh_remove_stale() {
    local ns
    for ns in $(ip netns list | awk '{print $1}' | grep "^${OVH_PREFIX}[uh]" | sort -r); do
        echo "removing stale namespace $ns" >&2
        ip netns del "$ns" 2>/dev/null || true
        rm -rf "/etc/netns/$ns"
    done
}

ovh_underlay() {
    ovh_remove_stale
    ovh_add_ns "${OVH_PREFIX}u"
    ip -n "${OVH_PREFIX}u" link add br0 type bridge
    ip -n "${OVH_PREFIX}u" link set br0 up
}

# ovh_host N: host namespace N with eth0 = 10.203.0.N/24 on the underlay.
ovh_host() {
    local n=$1 ns="${OVH_PREFIX}h$1" u="${OVH_PREFIX}u"
    ovh_add_ns "$ns"
    netns_plug "$u" "$n" "$ns" "10.203.0.$n/24" || ovh_die "plugging $ns into the underlay failed"
}

# ovh_agent N [FLAGS...]: starts host N's agent (hosts other than 1 join
# host 1) and waits until its API answers.
ovh_agent() {
    local n=$1
    shift
    local join=()
    [ "$n" = 1 ] || join=(--join 10.203.0.1:7946)
    setpriv --pdeathsig KILL -- ip netns exec "${OVH_PREFIX}h$n" "$SWIMNET" agent \
        --node "h$n" --bind "10.203.0.$n:7946" --api "$OVH_API" \
        --protocol networkdb "${join[@]}" "$@" >>"$OVH_LOGS/h$n.log" 2>&1 &
    OVH_AGENT_PID[$n]=$!
    local i
    for i in $(seq 1 200); do
        ovh_cli "$n" members >/dev/null 2>&1 && return 0
        kill -0 "${OVH_AGENT_PID[$n]}" 2>/dev/null ||
            ovh_die "agent h$n exited; see $OVH_LOGS/h$n.log"
        sleep 0.1
    done
    ovh_die "agent h$n did not answer within 20 s; see $OVH_LOGS/h$n.log"
}

# ovh_cli N ARGS...: the swimnet CLI inside host N against its agent
# (`overlay OP` takes --api after OP).
ovh_cli() {
    local n=$1
    shift
    if [ "$1" = overlay ]; then
        local op=$2
        shift 2
        ip netns exec "${OVH_PREFIX}h$n" "$SWIMNET" overlay "$op" --api "$OVH_API" "$@"
    else
        local sub=$1
        shift
        ip netns exec "${OVH_PREFIX}h$n" "$SWIMNET" "$sub" --api "$OVH_API" "$@"
    fi
}

# ovh_wait_members N COUNT: until host N's agent lists COUNT alive members.
ovh_wait_members() {
    local n=$1 want=$2 i got
    for i in $(seq 1 300); do
        got=$(ovh_cli "$n" members --format json 2>/dev/null | python3 -c '
import json, sys
print(sum(1 for m in json.load(sys.stdin)["members"] if m["status"].lower() == "alive"))' 2>/dev/null)
        [ "$got" = "$want" ] && return 0
        sleep 0.1
    done
    ovh_die "h$n does not see $want alive members (got ${got:-none})"
}

# ovh_endpoint_ns N M: creates endpoint namespace ${OVH_PREFIX}hNeM.
ovh_endpoint_ns() {
    ovh_add_ns "${OVH_PREFIX}h$1e$2"
}

ovh_cleanup() {
    local n ns i
    for n in "${!OVH_AGENT_PID[@]}"; do
        kill -KILL "${OVH_AGENT_PID[$n]}" 2>/dev/null || true
    done
    for n in "${!OVH_AGENT_PID[@]}"; do
        wait "${OVH_AGENT_PID[$n]}" 2>/dev/null || true
    done
    for ((i = ${#OVH_NAMESPACES[@]} - 1; i >= 0; i--)); do
        ns=${OVH_NAMESPACES[$i]}
        ip netns del "$ns" 2>/dev/null || true
        rm -rf "/etc/netns/$ns"
    done
}

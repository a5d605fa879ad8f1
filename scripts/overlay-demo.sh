#!/usr/bin/env bash
# swimnet overlay networks, live: three hosts (network namespaces on an
# underlay bridge, 10.203.0.1-3), one swimnet agent each, an overlay defined
# on one host and used from all three, endpoints that ping each other by
# name. Everything is removed at the end (also on Ctrl-C or an error).
#
# Run as root: scripts/overlay-demo.sh   (SWIMNET=path overrides the binary;
# without it the release binary is built if missing).
# It creates only namespaces named swe-dm*, and sends traffic only inside them.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OVH_PREFIX=swe-dm
OVH_LOGS="${OVH_LOGS:-$ROOT/target/overlay-demo}"
if [ -z "${SWIMNET:-}" ]; then
    SWIMNET="$ROOT/target/release/swimnet"
    [ -x "$SWIMNET" ] || (cd "$ROOT" && cargo build --release -p swimnet)
fi
# shellcheck source=scripts/lib/overlay-hosts.sh
. "$ROOT/scripts/lib/overlay-hosts.sh"

VNI=4200
VX=$(printf 'swvx-%06x' $VNI)
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() {
    printf '\033[2m$ %s\033[0m\n' "$*"
    "$@"
}
# in NS CMD...: a command inside endpoint or host namespace NS.
in_ns() { show ip netns exec "$@"; }
# until N GREP CMD...: polls CMD (up to 10 s) until its output has N lines matching GREP.
until_lines() {
    local n=$1 pat=$2 i
    shift 2
    for i in $(seq 1 100); do
        [ "$("$@" 2>/dev/null | grep -c -- "$pat")" -ge "$n" ] && return 0
        sleep 0.1
    done
    ovh_die "gave up waiting for $n lines matching $pat from: $*"
}

ovh_preflight
trap ovh_cleanup EXIT
rm -f "$OVH_LOGS"/h*.log

step "1. Three hosts on an underlay bridge, one agent each (logs in $OVH_LOGS)"
ovh_underlay
for n in 1 2 3; do
    ovh_host "$n"
    ovh_agent "$n" --profile local
    echo "host h$n: namespace ${OVH_PREFIX}h$n, underlay 10.203.0.$n, agent pid ${OVH_AGENT_PID[$n]}"
done
ovh_wait_members 1 3
show ovh_cli 1 members

step "2. Define an overlay on h1; every host learns it (no central store)"
show ovh_cli 1 overlay create demo --subnet 10.70.0.0/24 --vni $VNI
until_lines 1 '^demo ' ovh_cli 3 overlay list
show ovh_cli 3 overlay list

step "3. Attach one endpoint (a network namespace) per host"
ovh_endpoint_ns 1 1
ovh_endpoint_ns 2 1
ovh_endpoint_ns 3 1
show ovh_cli 1 overlay attach demo --netns ${OVH_PREFIX}h1e1 --name web
show ovh_cli 2 overlay attach demo --netns ${OVH_PREFIX}h2e1 --name db
show ovh_cli 3 overlay attach demo --netns ${OVH_PREFIX}h3e1 --name cache
until_lines 3 ' 10\.203\.0\.' ovh_cli 1 overlay endpoints demo
until_lines 2 PERMANENT ip -n ${OVH_PREFIX}h1 neigh show dev "$VX"
show ovh_cli 1 overlay endpoints demo

step "4. What the agent on h1 programmed: VXLAN device, neighbour and FDB entries"
show ip -n ${OVH_PREFIX}h1 -d link show "$VX"
show ip -n ${OVH_PREFIX}h1 neigh show dev "$VX"
show bridge -n ${OVH_PREFIX}h1 fdb show dev "$VX"
in_ns ${OVH_PREFIX}h1e1 ip addr show eth0

step "5. Names resolve through the agent's DNS at 127.0.0.11 inside each endpoint"
in_ns ${OVH_PREFIX}h1e1 cat /etc/resolv.conf
in_ns ${OVH_PREFIX}h1e1 getent hosts db
in_ns ${OVH_PREFIX}h2e1 getent hosts cache.demo
in_ns ${OVH_PREFIX}h3e1 getent hosts web

step "6. Endpoints ping each other across hosts, by name"
in_ns ${OVH_PREFIX}h1e1 ping -c 2 -W 1 db
in_ns ${OVH_PREFIX}h2e1 ping -c 2 -W 1 cache
in_ns ${OVH_PREFIX}h3e1 ping -c 2 -W 1 web
echo "a full-MTU packet with don't-fragment (endpoint MTU = underlay 1500 - 50):"
in_ns ${OVH_PREFIX}h1e1 ping -c 1 -W 1 -M do -s 1422 cache

step "7. Detach db: its entries leave every host and it is unreachable"
DB_IP=$(ip netns exec ${OVH_PREFIX}h1e1 getent hosts db | awk '{print $1}')
show ovh_cli 2 overlay detach demo --netns ${OVH_PREFIX}h2e1
for i in $(seq 1 100); do
    ip -n ${OVH_PREFIX}h1 neigh show dev "$VX" | grep -q "^$DB_IP " || break
    sleep 0.1
done
show ip -n ${OVH_PREFIX}h1 neigh show dev "$VX"
if ip netns exec ${OVH_PREFIX}h1e1 ping -c 1 -W 1 "$DB_IP" >/dev/null 2>&1; then
    ovh_die "db ($DB_IP) still answers after detach"
fi
echo "ping $DB_IP from web: no answer (as expected)"

step "8. Cleanup: agents stopped, namespaces deleted"

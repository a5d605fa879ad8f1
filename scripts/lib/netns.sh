# Shared by the scripts that build test hosts in network namespaces
# (bench-false-positives.sh, bench-vs-networkdb.sh, lib/overlay-hosts.sh).

# netns_plug BRIDGE_NS I HOST_NS ADDR/PREFIX: plugs namespace HOST_NS into
# the bridge br0 of namespace BRIDGE_NS with a veth pair (vI on the bridge
# side, eth0 with ADDR/PREFIX on the host side) and brings up both ends and
# the host's loopback. Both namespaces and br0 must exist; fails (non-zero)
# when a link cannot be made, e.g. vI is taken.
netns_plug() {
    local br=$1 i=$2 ns=$3 addr=$4
    ip -n "$br" link add "v$i" type veth peer name eth0 netns "$ns" &&
        ip -n "$br" link set "v$i" master br0 &&
        ip -n "$br" link set "v$i" up &&
        ip -n "$ns" addr add "$addr" dev eth0 &&
        ip -n "$ns" link set eth0 up &&
        ip -n "$ns" link set lo up
}

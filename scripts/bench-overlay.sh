#!/usr/bin/env bash
# Overlay data-plane benchmark (run as root, on an otherwise idle machine):
# HOSTS simulated hosts (network namespaces on an underlay bridge, one
# swimnet agent each, default timers) x PER_HOST endpoints attached in one
# burst (every `overlay attach` launched at once). Measures, by polling the
# kernel's neighbour tables of every host's VXLAN device:
#   - programming latency: for every (host, remote endpoint) pair, the time
#     from that endpoint's `attach` command (and from its answer) to its
#     neighbour entry appearing on that host (p50, p99, max), and the time
#     until every host has every remote entry;
#   - attach-to-ping: a fresh endpoint is attached (with --ip, so a remote
#     endpoint can ping it from the first moment) while a remote endpoint
#     pings it every 50 ms; the time from attach to the first reply;
#   - agent memory per endpoint: (RSS with PER_HOST endpoints - RSS idle) /
#     PER_HOST, per agent.
# Prints a result block. Namespaces swe-bn*; all traffic stays inside them;
# everything is removed at the end. Env: HOSTS (8), PER_HOST (25),
# PING_SAMPLES (8), SWIMNET (binary; default target/release/swimnet, built
# if missing).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
HOSTS=${HOSTS:-8}
PER_HOST=${PER_HOST:-25}
PING_SAMPLES=${PING_SAMPLES:-8}
OVH_PREFIX=swe-bn
OVH_LOGS="${OVH_LOGS:-$ROOT/target/bench-overlay}"
if [ -z "${SWIMNET:-}" ]; then
    SWIMNET="$ROOT/target/release/swimnet"
    [ -x "$SWIMNET" ] || (cd "$ROOT" && cargo build --release -p swimnet)
fi
# shellcheck source=scripts/lib/overlay-hosts.sh
. "$ROOT/scripts/lib/overlay-hosts.sh"
[ "$HOSTS" -ge 2 ] && [ "$HOSTS" -le 50 ] || ovh_die "HOSTS must be 2..50"
[ "$PER_HOST" -ge 1 ] && [ "$PER_HOST" -le 99 ] || ovh_die "PER_HOST must be 1..99"
[ $((HOSTS * PER_HOST)) -le 900 ] || ovh_die "at most 900 endpoints (subnet /22)"

VNI=4300
VX=$(printf 'swvx-%06x' $VNI)
ovh_preflight
trap ovh_cleanup EXIT
rm -f "$OVH_LOGS"/h*.log

echo "== $HOSTS hosts, agents starting (logs in $OVH_LOGS)" >&2
ovh_underlay
for n in $(seq 1 "$HOSTS"); do
    ovh_host "$n"
    # A burst on a loaded machine can take longer than the default 30 s
    # request timeout; the bench measures, it should not cut requests off.
    ovh_agent "$n" --api-request-timeout 180s
done
for n in $(seq 1 "$HOSTS"); do ovh_wait_members "$n" "$HOSTS"; done

ovh_cli 1 overlay create bench --subnet 10.80.0.0/22 --vni $VNI >&2
for n in $(seq 1 "$HOSTS"); do
    for i in $(seq 1 100); do
        ovh_cli "$n" overlay list 2>/dev/null | grep -q '^bench ' && break
        [ "$i" = 100 ] && ovh_die "h$n does not know overlay bench"
        sleep 0.1
    done
done
for n in $(seq 1 "$HOSTS"); do
    for m in $(seq 1 "$PER_HOST"); do ovh_endpoint_ns "$n" "$m"; done
done
for k in $(seq 1 "$PING_SAMPLES"); do
    ovh_endpoint_ns $(((k - 1) % HOSTS + 1)) $((100 + k))
done
sleep 2
AGENT_PIDS=""
for n in $(seq 1 "$HOSTS"); do AGENT_PIDS+="${OVH_AGENT_PID[$n]} "; done

echo "== burst: $((HOSTS * PER_HOST)) attaches at once, then $PING_SAMPLES attach-to-ping samples" >&2
export SWIMNET OVH_PREFIX OVH_API HOSTS PER_HOST PING_SAMPLES VX AGENT_PIDS
python3 "$ROOT/scripts/lib/bench_overlay_measure.py" >"$OVH_LOGS/result.json"

python3 - "$OVH_LOGS/result.json" <<'EOF'
import json, os, sys
result = json.load(open(sys.argv[1]))
burst, ping = result["burst"], result["ping"]
idle, loaded = result["rss_idle_kib"], result["rss_loaded_kib"]
per = int(os.environ["PER_HOST"])
per_ep = [(l - i) / per for i, l in zip(idle, loaded)]
ms = lambda s: "%.0f ms" % (s * 1000)
print("== bench-overlay result")
print("hosts x endpoints:          %s x %d (%d remote entries per host)"
      % (os.environ["HOSTS"], per, burst["entries_per_host"]))
print("attach command (burst):     p50 %s  p99 %s  max %s"
      % tuple(ms(burst["attach"][k]) for k in ("p50", "p99", "max")))
print("attaches retried:           %d (lost every round of concurrent address claims)"
      % burst["retries"])
print("entry programmed after its attach started (%d host/entry pairs):" % burst["pairs"])
print("                            p50 %s  p99 %s  max %s"
      % tuple(ms(burst["program"][k]) for k in ("p50", "p99", "max")))
print("entry programmed after its attach returned (negative: before the CLI saw the answer):")
print("                            p50 %s  p99 %s  max %s"
      % tuple(ms(burst["after_return"][k]) for k in ("p50", "p99", "max")))
print("every host has every entry: %s after the burst started" % ms(burst["all_programmed"]))
print("attach -> first ping reply from a remote endpoint (%d samples):" % len(ping["samples"]))
print("                            p50 %s  max %s" % (ms(ping["p50"]), ms(ping["max"])))
print("agent RSS idle:             %.1f MiB (mean of %d agents)" % (sum(idle) / len(idle) / 1024, len(idle)))
print("agent RSS per endpoint:     %.1f KiB mean, %.1f KiB max (own + remote entries; %d local endpoints per agent)"
      % (sum(per_ep) / len(per_ep), max(per_ep), per))
print("machine:                    %s cores, load average %s" % (os.cpu_count(), open("/proc/loadavg").read().split()[0]))
EOF

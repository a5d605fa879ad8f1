#!/usr/bin/env bash
# Fuzz smoke run: every cargo-fuzz target of fuzz/ for a few seconds each.
#
#   scripts/fuzz-smoke.sh [SECONDS_PER_TARGET]     (default 20)
#
# Installs cargo-fuzz if it is missing. cargo-fuzz passes nightly-only -Z
# flags (sanitizers, coverage instrumentation); the project only has a stable
# toolchain, so RUSTC_BOOTSTRAP=1 lets stable rustc accept them. Seeds each
# target's corpus (fuzz/corpus/<target>, gitignored) with the golden vectors
# of spec Appendix A. Exits non-zero if any target crashes, hangs (more than
# 10 s on one input) or fails to build; the crashing input is left in
# fuzz/artifacts/<target>/.
#
# FUZZ_TARGETS="packet lzw" limits the run to some targets.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-20}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# Writes the bytes of a hex string to a file.
seed() { # seed TARGET NAME HEX
  local dir="fuzz/corpus/$1"
  mkdir -p "$dir"
  printf '%b' "$(printf '%s' "$3" | tr -d ' \n' | sed 's/../\\x&/g')" >"$dir/golden-$2"
}

ping=0085a44e6f6465a26e32a55365714e6f07aa536f7572636541646472a47f000001aa536f757263654e6f6465a26e31aa536f75726365506f7274cd1f0a
indirect=0188a44e61636bc3a44e6f6465a26e33a4506f7274cd1f0ba55365714e6f07aa536f7572636541646472a47f000001aa536f757263654e6f6465a26e31aa536f75726365506f7274cd1f0aa6546172676574a47f000001
ack=0282a75061796c6f6164a20102a55365714e6f07
nack=0b81a55365714e6fce00011170
suspect=0383a446726f6da26e31ab496e6361726e6174696f6e01a44e6f6465a26e32
dead=0583a446726f6da26e31ab496e6361726e6174696f6e01a44e6f6465a26e31
alive=0486a441646472a47f000001ab496e6361726e6174696f6e01a44d657461a2ff80a44e6f6465a26e31a4506f7274cd1f0aa356736ea6010502020505
err=0d81a54572726f72a4626f6f6d
compound=070200020004048008010203
compress=0982a4416c676f00a3427566b200d19461c3e60d0881040d222c787060c180
crc=0c0449eb300486a441646472a47f000001ab496e6361726e6174696f6e01a44d657461c0a44e6f6465a26e31a4506f7274cd1f0aa356736ea6010502020505
enc=01000000000000000000000000030d7e800fd2c6309d1a67ea14c3b017f03ff9c43c393a46b699ed8d30f4c1e021a8424e3b01f7bf6ee6d2c972fd9a4a9a22d76b72eb7912090a71a3c3a58c0fc3c7c6062e389296932146ce6a
enc_label=f4036c626c01000000000000000000000000030d7e800fd2c6309d1a67ea14c3b017f03ff9c43c393a46b699ed8d30f4c1e021a8424e3b01f7bf6ee6d2c972fd9a4a9a22d76b72eb7912090a71a3c3f2db12eb2c9acffb017fcea0b8199ee4
enc_stream="0a0000002f0100000000000000000000000001 0a7d9e01cfcffd924c021c22d78f369892121a8ca86629191f1170a10d8be9bfe8"
push_pull="0683a44a6f696ec3a54e6f64657301ac5573657253746174654c656e03 87a441646472a47f000001ab496e6361726e6174696f6e03a44d657461c0a44e616d65a26e31a4506f7274cd1f0aa5537461746500a356736ea6010502020505 757372"
user_stream=0881aa557365724d73674c656e03616263

for v in ping indirect ack nack suspect dead alive err compound compress; do
  seed msgpack "$v" "${!v}"
  seed packet "$v" "${!v}"
done
for v in crc enc enc_label; do seed packet "$v" "${!v}"; done
for v in enc enc_label; do seed decrypt "$v" "${!v}"; done
seed decrypt enc_stream_body "${enc_stream:10}"
for v in enc_stream push_pull user_stream ping ack err compress; do seed stream "$v" "${!v}"; done
seed lzw hello 00d19461c3e60d0881040d222c787060c180
seed lzw compress_body "${compress:2}"
# Serf ack payloads (tools/goref-coordinate): the starting coordinate and a mixed one.
seed coordinate origin 0184aa41646a7573746d656e74cb0000000000000000a54572726f72cb3ff8000000000000a6486569676874cb3ee4f8b588e368f1a356656398cb0000000000000000cb0000000000000000cb0000000000000000cb0000000000000000cb0000000000000000cb0000000000000000cb0000000000000000cb0000000000000000
seed coordinate mixed 0184aa41646a7573746d656e74cbbf201f31f46ed246a54572726f72cb3fd165a208d0747ca6486569676874cb3f3b866e43aa79bca356656398cb3f50624dd2f1a9fccbbf647ae147ae147bcb3e112e0be826d695cb0000000000000000cb3fc0000000000000cbc00c000000000000cb3f12599ed7c6fbd2cb3fa10cb295e9e1b1

# Overlay DNS queries: A for `web`, and A for `many.front` with an EDNS record.
seed overlay_dns a_web 424201000001000000000000037765620000010001
seed overlay_dns edns_many_front 424301000001000000000001046d616e790566726f6e74000001000100002910000000000000
# Docker overlay records (tools/overlayref encode): a peer and a service endpoint.
seed overlay_records peer_basic 0a0b31302e302e312e352f3234121130323a34323a30613a30303a30313a30351a0c3139322e3136382e312e3130
seed overlay_records endpoint_service 0a097376632e312e61626312037376631a06713177326533220831302e302e312e322a0831302e302e312e37320b0a0468747470185020903f3204100118353a097376632d616c6961733a056f74686572420a7461736b2d616c6961734801
# swimnet's overlay table values: a definition, an address claim, an endpoint alias.
seed overlay_tables definition 7b226e616d65223a22626c7565222c226964223a2261616161616161616161616161616161616161616161616161616161616161616161616161616161616161616161616161616161616161616161616161616161222c227375626e6574223a2231302e302e312e302f3234222c22766e69223a343039362c22637265617465645f6d73223a313736343830303030303030302c2263726561746f72223a226831222c2264656c65746564223a66616c73657d
seed overlay_tables claim 7b226970223a2231302e302e312e35222c22656e64706f696e74223a2262626262626262626262626262626262626262626262626262626262626262626262626262626262626262626262626262626262626262626262626262626262222c22686f7374223a226831222c22726571756573746564223a66616c73652c2261745f6d73223a313736343830303030303030307d
seed overlay_tables alias 7b226964223a2230303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030222c226e616d65223a22776562222c226e73223a22657031222c226970223a2231302e302e312e35222c226c656e223a32342c22646576223a2265746830222c226d7475223a313435307d

targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"
echo "== building fuzz targets"
cargo fuzz build >/dev/null 2>&1 || cargo fuzz build

failed=()
for t in $targets; do
  echo "== fuzz $t (${seconds}s)"
  if ! cargo fuzz run "$t" -- -max_total_time="$seconds" -timeout=10 -print_final_stats=0 \
      >"fuzz/$t.log" 2>&1; then
    failed+=("$t")
    echo "!! fuzz target $t failed; see fuzz/$t.log and fuzz/artifacts/$t/" >&2
    grep -E 'panicked|ERROR|SUMMARY|Test unit written' "fuzz/$t.log" | head -20 >&2 || true
  else
    grep -E '^Done [0-9]+ runs' "fuzz/$t.log" || true
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz smoke: FAILED (${failed[*]})" >&2
  exit 1
fi
echo "fuzz smoke: OK"

#!/bin/bash
# Generator rates into a veth, measured at the sink: namespaces A (sender) -> B (an nftables netdev
# ingress rule that counts and drops). Runs pktgen afxdp, afpacket and txring (MODES) and trafgen (if
# installed), each pinned to CPU 0, ROUNDS times interleaved. Everything it creates is deleted on exit.
#   cargo build --release -p pktgen
#   flock /tmp/vswitch-measure.lock bash tools/pktgen/bench.sh        # ROUNDS=3 DUR=4 by default
set -u
P=${PKTGEN:-$(dirname "$0")/../../target/release/pktgen}
A=pgbA$$; B=pgbB$$
CFG=$(mktemp /tmp/pktgen-trafgen.XXXXXX)
cleanup() { ip netns del $A 2>/dev/null; ip netns del $B 2>/dev/null; rm -f "$CFG"; }
trap cleanup EXIT
ip netns add $A; ip netns add $B
ip link add pgba$$ numtxqueues 2 numrxqueues 2 type veth peer name pgbb$$ numtxqueues 2 numrxqueues 2
ip link set pgba$$ netns $A; ip link set pgbb$$ netns $B
ip -n $A link set pgba$$ name eth0; ip -n $B link set pgbb$$ name eth0
for n in $A $B; do ip netns exec $n sysctl -qw net.ipv6.conf.all.disable_ipv6=1; ip -n $n link set eth0 up; done
ip netns exec $B nft add table netdev t
ip netns exec $B nft add chain netdev t c '{ type filter hook ingress device eth0 priority 0; }'
ip netns exec $B nft add rule netdev t c counter drop
cnt() { ip netns exec $B nft list chain netdev t c | sed -n 's/.*counter packets \([0-9]*\).*/\1/p'; }
now() { date +%s.%N; }
cat > "$CFG" <<'CFG'
{
  0x02, 0x00, 0x00, 0x00, 0x00, 0x02,
  0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
  0x08, 0x00,
  0x45, 0x00, 0x00, 0x2e, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00,
  198, 18, 0, 1, 198, 18, 0, 2,
  0x04, 0x00, 0x00, 0x09, 0x00, 0x1a, 0x00, 0x00,
  fill(0x00, 18)
}
CFG
run() { # label, command...
  local label=$1; shift
  local c0=$(cnt) t0=$(now)
  local out; out=$("$@" 2>&1 | tail -1)
  local t1=$(now) c1=$(cnt)
  python3 -c "import sys; d=$c1-$c0; s=$t1-$t0; print(f'{sys.argv[1]:10s} sink={d} in {s:.2f}s = {d/s/1e6:.3f} Mpps | {sys.argv[2]}')" "$label" "$out"
}
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-4}
MODES=${MODES:-afxdp afpacket txring}
for r in $(seq $ROUNDS); do
  for m in $MODES; do
    run $m taskset -c 0 ip netns exec $A $P tx --dev eth0 --mode $m --duration $DUR
  done
  command -v trafgen >/dev/null && run trafgen taskset -c 0 ip netns exec $A trafgen --dev eth0 --conf $CFG -n 2000000 -P 1 -C
done

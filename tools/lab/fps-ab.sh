#!/usr/bin/env bash
# Same-run A/B of vswitchd builds on the end-to-end harness's frame-rate placement, without the
# harness: two throwaway namespaces (fpg = generator, fps = sink) on veths with one queue each,
# vswitchd busy-polling on CPU 1, pktgen (AF_XDP) pinned to CPU 0 sending 64-byte frames as fast
# as it can, the sink dropping them in an nftables ingress rule. Variants alternate (A B A B …)
# so machine drift cancels. Prints per run: frames sent and delivered, and the worker's own
# account (frames per batch, switch core ns per frame, own ns per frame = busy - flush).
# With TCP=1 it measures iperf3 single-stream TCP instead (client on CPU 0; the server unpinned,
# or on CPU SERVER_CPU, e.g. SERVER_CPU=0 for the harness's placement).
# Needs root, iproute2, nftables, iperf3 (TCP=1), python3 and release binaries.
#   bash tools/lab/fps-ab.sh ROUNDS VARIANT...
# VARIANT is VSWITCHD_BINARY[:PORT_TYPE] (type afxdp by default, or afpacket/auto/tap; tap: the
# switch creates both taps and they are moved into the namespaces as their eth0), e.g.
#   bash tools/lab/fps-ab.sh 3 /tmp/base/vswitchd target/release/vswitchd
#   TCP=1 bash tools/lab/fps-ab.sh 2 target/release/vswitchd target/release/vswitchd:afpacket
# Environment: FLOWS (default 1), SECS (default 6), RATE (pktgen --rate; default as fast as it
# goes), GEN_MODE (pktgen --mode, default afxdp; xdplive turns GRO on at the generator's veth
# peer, which that mode needs), FLOW (a flow added after the ports, e.g. an exact 5-tuple rule
# no frame matches, which makes every megaflow exact on those fields: one per pktgen flow),
# FLOW_FILE (flows added after the ports with `vsctl add-flows`, e.g. the e2e harness's
# `--rule-per-flow`: one `udp,tp_src=N actions=output:fps0` per pktgen flow, ports 1024 up),
# CHURN (flow-mods a second sent during each frame-rate run, one publication each, by
# tools/lab/churn.py; they overlap no megaflow of the run), BIN_DIR (vsctl and pktgen; default target/release), KEEP_LOGS (a directory: each run's
# vswitchd log is kept there as ROUND-BINARY.log, e.g. a `pass-stamps` build's report, and
# `vsctl show` and `dump-ports` after each frame-rate run as ROUND-BINARY.show).
set -euo pipefail
ROUNDS=${1:?rounds}; shift
[ -n "${KEEP_LOGS:-}" ] && mkdir -p "$KEEP_LOGS"
[ $# -gt 0 ] || { echo "usage: fps-ab.sh ROUNDS VSWITCHD[:TYPE]..." >&2; exit 2; }
BIN_DIR=${BIN_DIR:-target/release}
FLOWS=${FLOWS:-1}; SECS=${SECS:-6}
SOCK=$(mktemp -u /tmp/fps-ab.XXXXXX.sock)
VSD_PID=""

down() {
  if [ -n "$VSD_PID" ]; then kill "$VSD_PID" 2>/dev/null || true; wait "$VSD_PID" 2>/dev/null || true; fi
  VSD_PID=""
  ip netns del fpg 2>/dev/null || true
  ip netns del fps 2>/dev/null || true
  ip link del fpg0 2>/dev/null || true
  ip link del fps0 2>/dev/null || true
}
trap down EXIT INT TERM

up() { # binary type
  ip netns add fpg; ip netns add fps
  if [ "$2" != tap ]; then
    ip link add fpg0 numrxqueues 1 numtxqueues 1 type veth peer name eth0 netns fpg numrxqueues 1 numtxqueues 1
    ip link add fps0 numrxqueues 1 numtxqueues 1 type veth peer name eth0 netns fps numrxqueues 1 numtxqueues 1
    ip link set fpg0 up; ip link set fps0 up
    [ "${GEN_MODE:-afxdp}" = xdplive ] && ethtool -K fpg0 gro on > /dev/null
  fi
  "$1" --socket "$SOCK" --cpus 1 --poll-mode busy > /tmp/fps-ab-vswitchd.log 2>&1 < /dev/null &
  VSD_PID=$!
  for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done
  # Every thread on CPU 1 (the worker pins itself there; the control thread follows).
  taskset -a -p -c 1 "$VSD_PID" > /dev/null
  local t=(); [ "$2" != auto ] && t=(--type "$2")
  "$BIN_DIR/vsctl" --socket "$SOCK" add-port fpg0 "${t[@]}" > /dev/null
  "$BIN_DIR/vsctl" --socket "$SOCK" add-port fps0 "${t[@]}" > /dev/null
  [ -n "${FLOW:-}" ] && "$BIN_DIR/vsctl" --socket "$SOCK" add-flow "$FLOW" > /dev/null
  [ -n "${FLOW_FILE:-}" ] && "$BIN_DIR/vsctl" --socket "$SOCK" add-flows "$FLOW_FILE" > /dev/null
  if [ "$2" = tap ]; then # the switch's taps become the containers' eth0
    ip link set fpg0 netns fpg; ip -n fpg link set fpg0 name eth0
    ip link set fps0 netns fps; ip -n fps link set fps0 name eth0
  fi
  ip -n fpg addr add 10.218.0.1/24 dev eth0; ip -n fps addr add 10.218.0.2/24 dev eth0
  for n in fpg fps; do ip -n $n link set eth0 up; ip -n $n link set lo up; done
  ip netns exec fps nft add table netdev t
  ip netns exec fps nft add chain netdev t c '{ type filter hook ingress device eth0 priority 0; }'
  ip netns exec fps nft add rule netdev t c udp dport 9 counter drop
  ip netns exec fpg ping -c 2 -i 0.2 -q 10.218.0.2 > /dev/null
}

worker() {
  "$BIN_DIR/vsctl" --socket "$SOCK" --json show | python3 -c "
import json, sys
w = json.load(sys.stdin)['switch']['worker_stats'][0]
f = max(1, w['frames'])
print('fpb=%.1f core_ns=%.0f own_ns=%.0f' % (w['frames'] / max(1, w['batches']),
      w['busy_ns'] / f, (w['busy_ns'] - w.get('flush_ns', 0)) / f))"
}

for r in $(seq "$ROUNDS"); do
  for v in "$@"; do
    bin=${v%%:*}; type=afxdp; [ "$bin" != "$v" ] && type=${v##*:}
    keep="${KEEP_LOGS:-}/$r-$(basename "$bin")" # what KEEP_LOGS keeps of this run
    up "$bin" "$type"
    if [ "${TCP:-0}" = 1 ]; then
      ${SERVER_CPU:+taskset -c "$SERVER_CPU"} ip netns exec fps iperf3 -s -D -1 > /dev/null 2>&1; sleep 0.3
      g=$(taskset -c 0 ip netns exec fpg iperf3 -c 10.218.0.2 -t "$SECS" -J |
        python3 -c "import json,sys; print('%.2f' % (json.load(sys.stdin)['end']['sum_received']['bits_per_second'] / 1e9))")
      echo "$r $v tcp_gbps=$g"
    else
      gm=$(ip netns exec fpg cat /sys/class/net/eth0/address); sm=$(ip netns exec fps cat /sys/class/net/eth0/address)
      sp=1024; [ "$FLOWS" -gt 1 ] && sp=1024-$((1023 + FLOWS))
      churn_pid=""
      if [ -n "${CHURN:-}" ]; then # flow-mods a second during the run (tools/lab/churn.py)
        taskset -c 0 python3 tools/lab/churn.py "$SOCK" "$CHURN" "$SECS" > /tmp/fps-ab-churn.out &
        churn_pid=$!
      fi
      out=$(taskset -c 0 ip netns exec fpg "$BIN_DIR/pktgen" tx --dev eth0 --mode "${GEN_MODE:-afxdp}" --duration "$SECS" --size 60 \
        --src-mac "$gm" --dst-mac "$sm" --src-ip 10.218.0.1 --dst-ip 10.218.0.2 --src-port "$sp" --dst-port 9 \
        --flows "$FLOWS" ${RATE:+--rate "$RATE"} | tail -1)
      sent=$(grep -o 'sent=[0-9]*' <<< "$out" | cut -d= -f2)
      del=$(ip netns exec fps nft list ruleset | grep -o 'packets [0-9]*' | cut -d' ' -f2)
      churn=""; [ -n "$churn_pid" ] && { wait "$churn_pid"; churn=" $(cat /tmp/fps-ab-churn.out)"; }
      echo "$r $v sent=$sent delivered=$del $(worker)$churn"
      if [ -n "${KEEP_LOGS:-}" ]; then
        { "$BIN_DIR/vsctl" --socket "$SOCK" show; "$BIN_DIR/vsctl" --socket "$SOCK" dump-ports; } > "$keep.show"
      fi
    fi
    down
    # The daemon's log (a `pass-stamps` build reports its stamps there at exit).
    [ -n "${KEEP_LOGS:-}" ] && cp /tmp/fps-ab-vswitchd.log "$keep.log"
    sleep 1
  done
done

#!/usr/bin/env bash
# Where a UDP round trip's time goes, round trip by round trip: the e2e harness's round-trip
# placement (sockperf ping-pong, 64-byte messages at MPS a second, client and server both on
# CPU 0, the switch on CPU 1) without the harness (tap: the switch creates both taps and they
# become the namespaces' eth0), recorded with `perf record -a` on both CPUs, then split by
# tools/lab/rtt-segments.py into: the switch's leg to the server (the client's send to the
# server's wake-up), the server's wake-up latency on CPU 0, the server's turn-around, the
# switch's leg back, and the client's wake-up latency; with what CPU 0 was doing when each end
# was woken, for all round trips, for the p99 band and for those of 500 µs or more.
# Needs root, iproute2, sockperf, linux-perf, python3 and release binaries.
#   bash tools/lab/rtt-trace.sh [afxdp|afpacket|tap|bridge]
# Environment: SECS (default 8), MPS (default 5000, the harness's), HALT_POLL_NS (sets
# /sys/module/haltpoll/parameters/guest_halt_poll_ns for the run and puts it back, as the
# harness's --guest-halt-poll-ns), PERF=0 (no trace: sockperf's figures only), OUT (a directory
# to keep perf.data, the trace and sockperf's full log in; default a fresh one under /tmp),
# BIN_DIR (vswitchd and vsctl; default target/release).
set -euo pipefail
TYPE=${1:-afxdp}
BIN_DIR=${BIN_DIR:-target/release}
SECS=${SECS:-8}; MPS=${MPS:-5000}
OUT=${OUT:-$(mktemp -d /tmp/rtt-trace.XXXXXX)}; mkdir -p "$OUT"
SOCK=$(mktemp -u /tmp/rtt-trace.XXXXXX.sock)
HERE=$(cd "$(dirname "$0")" && pwd)
HP=/sys/module/haltpoll/parameters/guest_halt_poll_ns
HP_OLD=""
VSD_PID=""; SRV_PID=""

down() {
  if [ -n "$SRV_PID" ]; then kill "$SRV_PID" 2>/dev/null || true; wait "$SRV_PID" 2>/dev/null || true; fi
  if [ -n "$VSD_PID" ]; then kill "$VSD_PID" 2>/dev/null || true; wait "$VSD_PID" 2>/dev/null || true; fi
  SRV_PID=""; VSD_PID=""
  ip netns del rtg 2>/dev/null || true
  ip netns del rts 2>/dev/null || true
  ip link del rtg0 2>/dev/null || true
  ip link del rts0 2>/dev/null || true
  ip link del rtbr0 2>/dev/null || true
  if [ -n "$HP_OLD" ]; then echo "$HP_OLD" > "$HP"; fi
}
trap down EXIT INT TERM

ip netns add rtg; ip netns add rts
if [ "$TYPE" != tap ]; then
  ip link add rtg0 numrxqueues 1 numtxqueues 1 type veth peer name eth0 netns rtg numrxqueues 1 numtxqueues 1
  ip link add rts0 numrxqueues 1 numtxqueues 1 type veth peer name eth0 netns rts numrxqueues 1 numtxqueues 1
  ip link set rtg0 up; ip link set rts0 up
fi
if [ "$TYPE" = bridge ]; then
  ip link add rtbr0 type bridge
  ip link set rtg0 master rtbr0; ip link set rts0 master rtbr0; ip link set rtbr0 up
else
  "$BIN_DIR/vswitchd" --socket "$SOCK" --cpus 1 --poll-mode busy > "$OUT/vswitchd.log" 2>&1 < /dev/null &
  VSD_PID=$!
  for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done
  taskset -a -p -c 1 "$VSD_PID" > /dev/null
  "$BIN_DIR/vsctl" --socket "$SOCK" add-port rtg0 --type "$TYPE" > /dev/null
  "$BIN_DIR/vsctl" --socket "$SOCK" add-port rts0 --type "$TYPE" > /dev/null
  if [ "$TYPE" = tap ]; then # the switch's taps become the containers' eth0
    ip link set rtg0 netns rtg; ip -n rtg link set rtg0 name eth0
    ip link set rts0 netns rts; ip -n rts link set rts0 name eth0
  fi
fi
ip -n rtg addr add 10.218.1.1/24 dev eth0; ip -n rts addr add 10.218.1.2/24 dev eth0
for n in rtg rts; do ip -n $n link set eth0 up; ip -n $n link set lo up; done
ip netns exec rtg ping -c 2 -i 0.2 -q 10.218.1.2 > /dev/null
if [ -n "${HALT_POLL_NS:-}" ]; then HP_OLD=$(cat "$HP"); echo "$HALT_POLL_NS" > "$HP"; fi
taskset -c 0 ip netns exec rts sockperf sr -i 10.218.1.2 -p 11111 > "$OUT/server.log" 2>&1 &
SRV_PID=$!
sleep 1
client=(taskset -c 0 ip netns exec rtg sockperf pp -i 10.218.1.2 -p 11111 -t "$SECS" -m 64
  --mps "$MPS" --full-rtt --full-log "$OUT/full.csv")
if [ "${PERF:-1}" = 1 ]; then
  perf record -q -a -k CLOCK_MONOTONIC -o "$OUT/perf.data" \
    -e sched:sched_switch,sched:sched_waking,syscalls:sys_enter_sendto,syscalls:sys_exit_recvfrom,power:cpu_idle \
    -- "${client[@]}" > "$OUT/client.log" 2>&1
else
  "${client[@]}" > "$OUT/client.log" 2>&1
fi
grep -E "avg-rtt|MAX|percentile 99|percentile 50" "$OUT/client.log" | sed 's/\x1b\[[0-9;]*m//g'
if [ "${PERF:-1}" = 1 ]; then
  perf script --ns -i "$OUT/perf.data" -F comm,pid,tid,cpu,time,event,trace 2> /dev/null > "$OUT/trace.txt"
  python3 "$HERE/rtt-segments.py" "$OUT"
fi
echo "kept in $OUT"

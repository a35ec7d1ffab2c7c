#!/usr/bin/env bash
# Order across a split AF_XDP port's two sockets, measured: one UDP flow of mixed frames — short
# datagrams (by AF_XDP) and UDP GSO pairs of 1,400-byte segments (frames above the MTU, by the
# AF_PACKET companion) in a fixed pattern, each datagram numbered — from namespace soa through
# vswitchd to namespace sob, which counts the datagrams that arrive after a higher-numbered one.
# Variants run one after the other per round (A B A B …) so machine drift cancels.
# Needs root, iproute2, python3 and release binaries.
#   bash tools/lab/split-order.sh ROUNDS VSWITCHD...
#   PACE=0.0001 bash tools/lab/split-order.sh 2 /tmp/base/vswitchd target/release/vswitchd
# Environment: PACE (seconds per 17-datagram pattern, 0 = as fast as python sends, the
# default; 0.0001 is ~170k datagrams/s, below this VM's switch limit), ITER (patterns, default
# 20000), TA/TB (port types of the sender's and receiver's veth, default afxdp), PORT_ARGS
# (more `vsctl add-port` arguments for both, e.g. --xdp-frags), BIN_DIR (vsctl; default
# target/release).
set -euo pipefail
ROUNDS=${1:?rounds}; shift
[ $# -gt 0 ] || { echo "usage: split-order.sh ROUNDS VSWITCHD..." >&2; exit 2; }
BIN_DIR=${BIN_DIR:-target/release}
PACE=${PACE:-0}; ITER=${ITER:-20000}
SOCK=$(mktemp -u /tmp/split-order.XXXXXX.sock)
WORK=$(mktemp -d /tmp/split-order.XXXXXX)
VSD_PID=""

down() {
  if [ -n "$VSD_PID" ]; then kill "$VSD_PID" 2>/dev/null || true; wait "$VSD_PID" 2>/dev/null || true; fi
  VSD_PID=""
  ip netns del soa 2>/dev/null || true
  ip netns del sob 2>/dev/null || true
  ip link del soa0 2>/dev/null || true
  ip link del sob0 2>/dev/null || true
  rm -f "$SOCK"
}
trap 'down; rm -rf "$WORK"' EXIT INT TERM

cat > "$WORK/send.py" <<'PY'
import socket, struct, sys, time
n, pace = int(sys.argv[1]), float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_UDP, 103, 1400)  # UDP_SEGMENT: a longer datagram leaves as GSO
pattern = [1, 2, 1, 1, 2, 1, 2, 2, 1, 1, 1, 2]  # 1: a 100-byte datagram, 2: a GSO pair
seq, t0 = 0, time.time()
for i in range(n):
    while pace and time.time() < t0 + i * pace:
        pass
    for p in pattern:
        if p == 1:
            s.sendto(struct.pack('!I', seq) + b'x' * 96, ('10.221.0.2', 9000))
            seq += 1
        else:
            b = b''.join(struct.pack('!I', seq + k) + b'y' * 1396 for k in range(2))
            s.sendto(b, ('10.221.0.2', 9000))
            seq += 2
print(seq, round(time.time() - t0, 2))
PY
cat > "$WORK/recv.py" <<'PY'
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
s.bind(('0.0.0.0', 9000))
s.settimeout(2.0)
got = late = 0
top = -1
open(sys.argv[1], 'w').close()
try:
    while True:
        q = struct.unpack('!I', s.recv(4096)[:4])[0]
        got += 1
        if q < top:
            late += 1
        else:
            top = q
except socket.timeout:
    pass
print(got, late)
PY

for r in $(seq "$ROUNDS"); do
  for bin in "$@"; do
    ip netns add soa; ip netns add sob
    ip link add soa0 type veth peer name eth0 netns soa
    ip link add sob0 type veth peer name eth0 netns sob
    ip -n soa addr add 10.221.0.1/24 dev eth0; ip -n sob addr add 10.221.0.2/24 dev eth0
    for n in soa sob; do ip -n $n link set eth0 up; ip -n $n link set lo up; done
    ip link set soa0 up; ip link set sob0 up
    "$bin" --socket "$SOCK" --cpus 1 --poll-mode busy > "$WORK/vswitchd.log" 2>&1 < /dev/null &
    VSD_PID=$!
    for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done
    "$BIN_DIR/vsctl" --socket "$SOCK" add-port soa0 --type "${TA:-afxdp}" ${PORT_ARGS:-} > /dev/null
    "$BIN_DIR/vsctl" --socket "$SOCK" add-port sob0 --type "${TB:-afxdp}" ${PORT_ARGS:-} > /dev/null
    ip netns exec soa ping -c 2 -i 0.2 -q 10.221.0.2 > /dev/null
    rm -f "$WORK/ready"
    ip netns exec sob python3 "$WORK/recv.py" "$WORK/ready" > "$WORK/recv.out" &
    rp=$!
    while [ ! -e "$WORK/ready" ]; do sleep 0.05; done
    read -r sent secs < <(ip netns exec soa taskset -c 0 python3 "$WORK/send.py" "$ITER" "$PACE")
    wait "$rp"
    read -r got late < "$WORK/recv.out"
    drops=$("$BIN_DIR/vsctl" --socket "$SOCK" dump-ports | awk '$2 == "soa0" { print $6 }')
    echo "$r $bin sent=$sent in ${secs}s received=$got late=$late ($(python3 -c "print(round(100 * $late / max(1, $got), 3))") %) switch_rx_drops=$drops"
    down
  done
done

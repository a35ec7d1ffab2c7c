#!/usr/bin/env bash
# Same-run comparison of single-stream TCP (iperf3, 5 s) and ping RTT between two throwaway
# namespaces joined by: the Linux bridge, and vswitchd with AF_XDP, AF_PACKET and tap ports.
# Rounds are interleaved (A B C D A B C D …) so machine drift cancels. Needs root, iperf3,
# and release binaries (cargo build --release --workspace --bins). Issue 4 replaces this with
# the full end-to-end harness.
#   bash tools/lab/tcp-compare.sh [ROUNDS] [BIN_DIR]
# Environment:
#   VARIANTS="bridge afxdp afpacket tap"   which paths to compare (bridge is the baseline);
#                                          KIND@DIR runs KIND with the binaries in DIR (e.g.
#                                          "bridge tap tap@/tmp/old" for a before/after);
#                                          KIND%POLL overrides POLL for that variant (e.g.
#                                          "tap%adaptive"); both may be combined (KIND@DIR%POLL)
#   POLL=busy|adaptive                     vswitchd --poll-mode (default busy)
#   PERF_DIR=DIR                           perf record -g vswitchd during each iperf3 run into
#                                          DIR/<variant>-<round>.data (cpu-clock)
#   PERF_ALL=1                             with PERF_DIR: record both CPUs (-a), not only vswitchd
#   PIN=CPU                                run both iperf3 ends on CPU only (taskset), e.g. PIN=0:
#                                          the bridge then gets the CPU budget the containers have
#                                          next to a busy-polling vswitchd on CPU 1
#   CC=NAME                                the sender's TCP congestion control (iperf3 -C, e.g.
#                                          cubic; default: the kernel's, BBR on these hosts)
#   DAEMON_LOG=FILE                        append vswitchd's log (stderr) to FILE
#   STREAMS=N                              parallel TCP streams (iperf3 -P N; default 1)
#   CLIENT_PIN=CPU                         run only the iperf3 client on CPU (the harness's
#                                          placement before 2026-12-05 18:07: CLIENT_PIN=0, the
#                                          server unpinned; since then PIN=0)
#   NSTAT=1                                print the containers' TCP/IP counters that moved (losses,
#                                          retransmits, reordering, drops) after each run
#   HOST_RPS=MASK                          afxdp/afpacket: rps_cpus of the switch's (host-side) veths,
#                                          e.g. 1: their receive, wherever the container sent
#                                          from, runs through CPU 0's backlog, in order;
#                                          KIND+rpsMASK does it for one variant (afpacket+rps2)
#   HOST_GRO=1                             afxdp/afpacket: GRO on for the switch's (host-side) veths,
#                                          which puts them in NAPI mode: one FIFO per veth receive
#                                          queue instead of the per-CPU backlogs; KIND+gro does it
#                                          for one variant (e.g. "bridge afpacket afpacket+gro")
#   KIND+tcdrop                            afxdp/afpacket: a tc ingress program on the switch's veths
#                                          that drops every frame after the packet sockets took it
#                                          (the host stack's own pass over it skipped)
#   CLIENT_RPS=MASK                        rps_cpus of the sending container's eth0, e.g. 1: the ACKs
#                                          it receives are processed on CPU 0, so its TCP transmits
#                                          from CPU 0 only; KIND+crpsMASK does it for one variant
#   SERVER_PIN=CPU                         run only the iperf3 server on CPU
#   OVERLAY=1                              TCP and ping over a VXLAN tunnel that the two
#                                          containers run themselves (vx0, VNI 42, 10.78.0.x):
#                                          their overlay TCP leaves as UDP-tunnel GSO frames
#   SS=1                                   print the sender's TCP state (ss -tin: cwnd, RTTs, the
#                                          congestion control's estimates, and how long it was
#                                          limited by the receive window or the send buffer) 1,
#                                          2, 3 and 4 s into each run, and the CPU the iperf3
#                                          server is on then, to tell a stream held back by its own
#                                          TCP from one held back by a core
#   HANDOFF=1                              print the cache-line hand-off between CPU 0 and CPU 1
#                                          before, once a second during, and after each run
#                                          (`e2e --probe-handoff` from BIN_DIR): ~25–75 ns when
#                                          the host has the two vCPUs on cores that share a
#                                          cache, ~160–450 ns when it has them apart, when every
#                                          switch path carries TCP slower (docs/e2e.md)
#   PRIO=0                                 do not raise the run's CPU priority (default: the script
#                                          re-runs itself in a new session whose autogroup gets
#                                          nice -20, so builds of other sessions barely disturb it;
#                                          plain `nice` does not help across autogroups)
# Besides Gbit/s it prints each CPU's busy share during the iperf3 run (from /proc/stat), so
# the switch's core and the containers' core can be told apart.
set -euo pipefail
if [ "${PRIO:-1}" = 1 ] && [ -z "${TCPCMP_SESSION:-}" ] && [ -w /proc/self/autogroup ]; then
    export TCPCMP_SESSION=1
    exec setsid -w bash -c 'echo -20 > /proc/self/autogroup && exec nice -n -20 bash "$0" "$@"' "$0" "$@"
fi
rounds=${1:-3}
bin0=${2:-target/release}
bin=$bin0
tag=$$
ns1=vsl${tag}a ns2=vsl${tag}b
dst=$([ -n "${OVERLAY:-}" ] && echo 10.78.0.2 || echo 10.77.0.2)
sock=/tmp/vsl${tag}.sock
daemon=""

cleanup() {
    [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
    daemon=""
    ip netns del "$ns1" 2>/dev/null || true
    ip netns del "$ns2" 2>/dev/null || true
    ip link del vl${tag}h1 2>/dev/null || true
    ip link del vl${tag}h2 2>/dev/null || true
    ip link del vl${tag}br 2>/dev/null || true
    ip link del vl${tag}t1 2>/dev/null || true
    ip link del vl${tag}t2 2>/dev/null || true
}
trap cleanup EXIT INT TERM

inside() { # ns index addr dev
    ip -n "$1" link set "$3" name eth0
    ip -n "$1" link set eth0 address 02:00:00:00:77:0"$2"
    ip -n "$1" addr add 10.77.0."$2"/24 dev eth0
    ip -n "$1" link set eth0 up
    ip -n "$1" link set lo up
}

veths() {
    ip netns add "$ns1"; ip netns add "$ns2"
    for i in 1 2; do
        ip link add vl${tag}h$i type veth peer name vl${tag}c$i
        echo 1 > /proc/sys/net/ipv6/conf/vl${tag}h$i/disable_ipv6
        ip link set vl${tag}h$i up
        ns=$([ $i = 1 ] && echo "$ns1" || echo "$ns2")
        ip link set vl${tag}c$i netns "$ns"
        inside "$ns" $i vl${tag}c$i
    done
}

start_daemon() {
    "$bin/vswitchd" --socket "$sock" --cpus 1 --poll-mode "${poll:-${POLL:-busy}}" 2>>"${DAEMON_LOG:-/dev/null}" &
    daemon=$!
    for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
}

setup() {
    bin=${2:-$bin0}
    case $1 in
    bridge)
        veths
        ip link add vl${tag}br type bridge
        ip link set vl${tag}br up
        ip link set vl${tag}h1 master vl${tag}br
        ip link set vl${tag}h2 master vl${tag}br ;;
    afxdp|afpacket)
        veths; start_daemon
        "$bin/vsctl" --socket "$sock" add-port vl${tag}h1 --type "$1" >/dev/null
        "$bin/vsctl" --socket "$sock" add-port vl${tag}h2 --type "$1" >/dev/null
        if [ -n "${rps:-${HOST_RPS:-}}" ]; then
            for i in 1 2; do echo "${rps:-$HOST_RPS}" > /sys/class/net/vl${tag}h$i/queues/rx-0/rps_cpus; done
        fi
        if [ -n "${tcdrop:-}" ]; then
            for i in 1 2; do
                tc qdisc add dev vl${tag}h$i clsact
                tc filter add dev vl${tag}h$i ingress bpf bytecode '1,6 0 0 2' da
            done
        fi
        if [ -n "${gro:-${HOST_GRO:-}}" ]; then
            for i in 1 2; do ethtool -K vl${tag}h$i gro on >/dev/null; done
        fi ;;
    tap)
        ip netns add "$ns1"; ip netns add "$ns2"; start_daemon
        for i in 1 2; do
            "$bin/vsctl" --socket "$sock" add-port vl${tag}t$i --type tap >/dev/null
            ns=$([ $i = 1 ] && echo "$ns1" || echo "$ns2")
            ip link set vl${tag}t$i netns "$ns"
            inside "$ns" $i vl${tag}t$i
        done ;;
    esac
    if [ -n "${crps:-${CLIENT_RPS:-}}" ]; then
        ip netns exec "$ns1" sh -c "echo ${crps:-$CLIENT_RPS} > /sys/class/net/eth0/queues/rx-0/rps_cpus"
    fi
    ip netns exec "$ns1" ping -c 3 -i 0.2 -W 2 -q 10.77.0.2 >/dev/null
    if [ -n "${OVERLAY:-}" ]; then
        for i in 1 2; do
            ns=$([ $i = 1 ] && echo "$ns1" || echo "$ns2")
            ip -n "$ns" link add vx0 type vxlan id 42 remote 10.77.0.$((3 - i)) dstport 4789 dev eth0
            ip -n "$ns" addr add 10.78.0.$i/24 dev vx0
            ip -n "$ns" link set vx0 up
        done
        ip netns exec "$ns1" ping -c 3 -i 0.2 -W 2 -q "$dst" >/dev/null
    fi
}

# "busy% per cpu" between two /proc/stat snapshots
cpustat() { grep '^cpu[0-9]' /proc/stat; }
busy() { # before after
    python3 - "$1" "$2" <<'PY'
import sys
def rd(s):
    out = {}
    for line in s.strip().splitlines():
        f = line.split(); v = list(map(int, f[1:]))
        out[f[0]] = (v[3] + v[4], sum(v[:8]))
    return out
a, b = rd(sys.argv[1]), rd(sys.argv[2])
print("/".join("%d" % (100 - 100 * (b[c][0] - a[c][0]) / max(1, b[c][1] - a[c][1])) for c in sorted(a)))
PY
}

measure() { # variant round
    # Not -D: a daemon would start a session (and autogroup) of its own.
    local pin=()
    [ -n "${PIN:-}" ] && pin=(taskset -c "$PIN")
    local cpin=("${pin[@]}")
    [ -n "${CLIENT_PIN:-}" ] && cpin=(taskset -c "$CLIENT_PIN")
    local spin=("${pin[@]}")
    [ -n "${SERVER_PIN:-}" ] && spin=(taskset -c "$SERVER_PIN")
    ip netns exec "$ns2" "${spin[@]}" iperf3 -s -1 >/dev/null 2>&1 &
    local srv=$!
    sleep 0.3
    local perf=""
    if [ -n "${PERF_DIR:-}" ] && { [ -n "$daemon" ] || [ -n "${PERF_ALL:-}" ]; }; then
        local who=(-p "$daemon")
        [ -n "${PERF_ALL:-}" ] && who=(-a)
        perf record -e cpu-clock -g -F 999 -o "$PERF_DIR/${1//\//_}-$2.data" "${who[@]}" -- sleep 4 >/dev/null 2>&1 &
        perf=$!
    fi
    local s0 s1 ss=""
    if [ -n "${SS:-}" ]; then
        (for _ in 1 2 3 4; do sleep 1; ip netns exec "$ns1" ss -tin state established dst "$dst" | python3 -c '
import re, sys
# one socket per "address" line and its indented info line; the data stream has sent the most
socks, cur = [], ""
for line in sys.stdin.read().splitlines()[1:]:
    if line[:1].isspace(): cur += line
    else:
        socks.append(cur); cur = line
socks.append(cur)
best = max(socks, key=lambda t: int((re.findall(r"bytes_sent:(\d+)", t) or ["0"])[0]))
# \b: not the tails of bytes_retrans: or minrtt:
keep = r"\bcwnd:\d+|\brtt:[\d./]+|minrtt:[\d.]+|bbr:\([^)]*\)|pacing_rate \S+|delivery_rate \S+|busy:\d+ms|rwnd_limited:\S+|sndbuf_limited:\S+|app_limited|unacked:\d+|\bretrans:\S+"
print("  ss:", " ".join(re.findall(keep, best)), end=" ")' >&2
            echo " server on CPU $(ps -o psr= -p "$srv")" >&2; done) &
        ss=$!
    fi
    local hop=""
    if [ -n "${HANDOFF:-}" ]; then
        echo "  hand-off before: $("$bin/e2e" --probe-handoff) ns" >&2
        (hs=""; for _ in 1 2 3 4; do sleep 1; hs+="$("$bin/e2e" --probe-handoff) "; done
            echo "  hand-off during: ${hs% } ns" >&2) &
        hop=$!
    fi
    s0=$(cpustat)
    read -r gbps retr < <(ip netns exec "$ns1" "${cpin[@]}" iperf3 -c "$dst" -t 5 -P "${STREAMS:-1}" ${CC:+-C "$CC"} -J | python3 -c \
        'import json,sys; e=json.load(sys.stdin)["end"]; print("%.2f %d" % (e["sum_received"]["bits_per_second"]/1e9, e["sum_sent"].get("retransmits", -1)))')
    s1=$(cpustat)
    if [ -n "$hop" ]; then
        wait "$hop" 2>/dev/null || true
        echo "  hand-off after: $("$bin/e2e" --probe-handoff) ns" >&2
    fi
    [ -n "$ss" ] && wait "$ss" 2>/dev/null || true
    if [ -n "${NSTAT:-}" ]; then # the containers' own TCP and IP counters that moved
        for n in "$ns1" "$ns2"; do
            echo "  nstat $([ "$n" = "$ns1" ] && echo sender || echo receiver): $(ip netns exec "$n" nstat -a 2>/dev/null \
                | awk 'NR>1 && $2>0 && $1 !~ /InSegs|OutSegs|InPkts|OutPkts|InOctets|OutOctets|InReceives|InDelivers|OutRequests|OutTransmits|InNoECT|ActiveOpens|PassiveOpens|CurrEstab|EstabResets|InECT|TCPHPHits|TCPPureAcks|TCPHPAcks|TCPOrigDataSent|TCPDelivered|TCPAutoCorking|TCPRcvCoalesce|DelayedACKs|TCPBacklogCoalesce|TCPToZeroWindowAdv|TCPFromZeroWindowAdv|TCPWantZeroWindowAdv|TCPHystart/ {printf "%s=%s ", $1, $2}')" >&2
        done
    fi
    [ -n "$perf" ] && wait "$perf" 2>/dev/null || true
    local avg="-"
    if [ -n "$daemon" ]; then # mean received frame size over both ports (GSO kept or not)
        avg=$("$bin/vsctl" --socket "$sock" --json dump-ports | python3 -c \
            'import json,sys; d=json.load(sys.stdin); d=d.get("ports",d) if isinstance(d,dict) else d; p=sum(x["rx_pkts"] for x in d); print("%d/%d" % (sum(x["rx_bytes"] for x in d)//max(1,p), sum(x["rx_dropped"]+x["tx_dropped"] for x in d)))')
    fi
    rtt=$(ip netns exec "$ns1" ping -c 50 -i 0.02 -q "$dst" | awk -F/ '/rtt/{print $5}')
    echo "$gbps $rtt $(busy "$s0" "$s1") $avg $retr"
}

read -r -a variants <<< "${VARIANTS:-bridge afxdp afpacket tap}"
declare -A tcp rtt
for r in $(seq "$rounds"); do
    for v in "${variants[@]}"; do
        gro=""; vv=${v/+gro/}; [ "$vv" != "$v" ] && gro=1
        tcdrop=""; vt=${vv/+tcdrop/}; [ "$vt" != "$vv" ] && tcdrop=1 && vv=$vt
        crps=""; [[ "$vv" =~ \+crps([0-9a-f]+) ]] && crps=${BASH_REMATCH[1]} && vv=${vv/+crps$crps/}
        rps=""; [[ "$vv" =~ \+rps([0-9a-f]+) ]] && rps=${BASH_REMATCH[1]} && vv=${vv/+rps$rps/}
        spec=${vv%%%*}
        poll=""; [ "$vv" != "${vv#*%}" ] && poll=${vv#*%}
        setup "${spec%%@*}" "$([ "$spec" != "${spec#*@}" ] && echo "${spec#*@}")"
        read -r g p c a t < <(measure "$v" "$r")
        tcp[$v]+="$g "; rtt[$v]+="$p "
        echo "round $r $v: ${g} Gbit/s, ping avg ${p} ms, cpu busy % ${c}, mean rx frame/switch drops ${a}, retransmits ${t}" >&2
        cleanup
    done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
base=$(echo "${tcp[bridge]:-}" | median || true) # empty without a bridge variant: no ratios
printf '\n| path | TCP %s stream(s) Gbit/s (median of %s; runs) | ratio to Linux bridge | ping avg ms (median) |\n|---|---|---|---|\n' "${STREAMS:-1}" "$rounds"
for v in "${variants[@]}"; do
    m=$(echo "${tcp[$v]}" | median)
    printf '| %s | %s (%s) | %.2f | %s |\n' "$v" "$m" "${tcp[$v]% }" "$([ -n "$base" ] && python3 -c "print($m/$base)" || echo nan)" "$(echo "${rtt[$v]}" | median)"
done

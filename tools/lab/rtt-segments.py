#!/usr/bin/env python3
"""Split each sockperf round trip of a tools/lab/rtt-trace.sh run into its legs.

Reads DIR/trace.txt (`perf script -F comm,pid,tid,cpu,time,event,trace` of sched_switch,
sched_waking, sendto entry, recvfrom exit and cpu_idle on all CPUs). A round trip here is the
client's sendto entry to its recvfrom exit in the trace, warm-up included and tracing's cost
too; sockperf's own percentiles, which rtt-trace.sh prints, leave out its warm-up.

Legs of one round trip (µs):
  to_srv   client's sendto → the server's wake-up is asked for (the switch's leg, or the
           bridge's, up to the sink's socket)
  srv_wake that wake-up → the server runs (CPU 0's latency: out of idle, or behind a task)
  srv      the server runs → its sendto
  to_cli   its sendto → the client's wake-up is asked for (the leg back; if the client was
           preempted, not asleep, as through the bridge: until it runs again)
  cli_wake that wake-up → the client runs (0 if it was not asleep)
Usage: rtt-segments.py DIR [TAIL_FROM_US]
"""
import bisect
import re
import statistics
import sys
from collections import Counter, defaultdict

LINE = re.compile(r'\s*(\S.*?)\s+(\d+)/(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s*(.*)')


def load(d):
    ev = []
    for line in open(d + '/trace.txt'):
        m = LINE.match(line)
        if m:
            comm, _pid, tid, cpu, t, kind, info = m.groups()
            ev.append((float(t), int(cpu), comm, int(tid), kind, info))
    return ev


def main():
    d = sys.argv[1]
    ev = load(d)
    sends = defaultdict(list)
    for e in ev:
        if e[4] == 'syscalls:sys_enter_sendto' and e[2] == 'sockperf' and 'len: 0x00000040' in e[5]:
            sends[e[3]].append(e[0])
    if len(sends) != 2:
        sys.exit('expected the sends of two sockperf threads, found %d' % len(sends))
    cli = min(sends, key=lambda p: sends[p][0])  # the client sends first
    srv = next(p for p in sends if p != cli)
    cs = sends[cli]
    times = [e[0] for e in ev]

    def first(t0, t1, pred):
        i = bisect.bisect_left(times, t0)
        while i < len(ev) and ev[i][0] <= t1:
            if pred(ev[i]):
                return ev[i]
            i += 1
        return None

    def waking(pid):
        tag = 'pid=%d ' % pid
        return lambda e: e[4] == 'sched:sched_waking' and tag in e[5]

    def runs(pid):
        tag = 'next_pid=%d ' % pid
        return lambda e: e[4] == 'sched:sched_switch' and tag in e[5]

    def prev_comm(e):
        m = re.search(r'prev_comm=(\S+)', e[5])
        return m.group(1) if m else '?'

    # What CPU 0 is doing over time: a task (one of the two ends, or another), going idle
    # (switched to the idle task, not polling yet: a wake-up then takes an interrupt from the
    # other vCPU), polling (a wake-up is a flag the poll loop sees), halted, or leaving idle.
    cpu0 = []
    for e in ev:
        if e[1] != 0:
            continue
        if e[4] == 'sched:sched_switch':
            n = re.search(r'next_comm=(\S+)', e[5]).group(1)
            cpu0.append((e[0], 'going idle' if n.startswith('swapper') else
                         'an end running' if n == 'sockperf' else 'another task'))
        elif e[4] == 'power:cpu_idle':
            st = int(re.search(r'state=(\d+)', e[5]).group(1))
            cpu0.append((e[0], {0: 'polling', 1: 'halted'}.get(st, 'leaving idle')))
    cpu0_t = [t for t, _ in cpu0]

    def cpu0_at(t):
        j = bisect.bisect_right(cpu0_t, t) - 1
        return cpu0[j][1] if j >= 0 else '?'

    rows = []
    nrt = 0
    for t0 in cs:
        back = first(t0, t0 + 0.05, lambda e: e[3] == cli and e[4] == 'syscalls:sys_exit_recvfrom')
        if not back:
            continue
        nrt += 1
        t1, rtt = back[0], (back[0] - t0) * 1e6
        w1 = first(t0, t1, waking(srv))
        r1 = w1 and first(w1[0], t1, runs(srv))
        s2 = r1 and first(r1[0], t1, lambda e: e[4] == 'syscalls:sys_enter_sendto' and e[3] == srv)
        if not s2:
            continue
        # A client that was preempted rather than asleep (the bridge: the server's wake-up
        # preempts it on CPU 0) needs no wake-up: its leg back ends when it runs again.
        w2 = first(s2[0], t1, waking(cli))
        cli_slept = w2 is not None
        w2 = w2 or s2
        r2 = first(w2[0], t1, runs(cli))
        if not r2:
            continue
        us = lambda a, b: (b[0] - a[0]) * 1e6
        others = set()
        i = bisect.bisect_left(times, t0)
        while i < len(ev) and ev[i][0] <= t1:
            e = ev[i]
            if e[4] == 'sched:sched_switch' and e[1] == 0:
                n = re.search(r'next_comm=(\S+)', e[5]).group(1)
                if not n.startswith(('swapper', 'sockperf')):
                    others.add(n)
            i += 1
        rows.append((rtt, {'to_srv': (w1[0] - t0) * 1e6, 'srv_wake': us(w1, r1), 'srv': us(r1, s2),
                           'to_cli': us(s2, w2), 'cli_wake': us(w2, r2),
                           'held_srv': prev_comm(r1), 'held_cli': prev_comm(r2),
                           'others': ' '.join(sorted(others)) or '(none)',
                           'cpu0_srv': cpu0_at(w1[0]), 'cpu0_cli': cpu0_at(w2[0]) if cli_slept else None}))
    rt = sorted(r for r, _ in rows)
    if not rt:
        sys.exit('no round trip could be split into legs')
    p50, p99 = rt[len(rt) // 2], rt[int(len(rt) * 0.99)]
    tail_from = float(sys.argv[2]) if len(sys.argv) > 2 else 0.8 * p99
    print('%d round trips in the trace, %d split into legs; p50 %.1f µs, p99 %.1f µs (the trace\'s, '
          'with its own cost)' % (nrt, len(rows), p50, p99))

    def table(sel, name):
        print('-- %s: %d round trips' % (name, len(sel)))
        if not sel:
            return
        for key in ('to_srv', 'srv_wake', 'srv', 'to_cli', 'cli_wake'):
            v = sorted(s[key] for _, s in sel)
            print('   %-8s median %7.1f  p90 %7.1f  max %7.1f µs' % (key, v[len(v) // 2], v[int(len(v) * 0.9)], v[-1]))
        for key, what in (('held_srv', 'server'), ('held_cli', 'client')):
            c = Counter(s[key] for _, s in sel).most_common(4)
            print('   CPU 0 ran before the %s: %s' % (what, ', '.join('%s %d' % x for x in c)))
        for key, what in (('cpu0_srv', 'server'), ('cpu0_cli', 'client')):
            c = Counter(s[key] for _, s in sel if s[key]).most_common()
            print('   CPU 0 when the %s was woken: %s' % (what, ', '.join('%s %d' % x for x in c)))
        c = Counter(s['others'] for _, s in sel).most_common(5)
        print('   other tasks CPU 0 ran during them: %s' % ', '.join('%s %d' % x for x in c))

    table(rows, 'all')
    # Every wake-up of either end, by what CPU 0 was doing when it was asked for.
    by = defaultdict(list)
    for _, s in rows:
        by[s['cpu0_srv']].append(s['srv_wake'])
        if s['cpu0_cli']:
            by[s['cpu0_cli']].append(s['cli_wake'])
    n = sum(len(v) for v in by.values())
    print('-- wake-ups (both ends) by what CPU 0 was doing when asked for: share, µs to run '
          '(median / p90 / p99)')
    for st, v in sorted(by.items(), key=lambda x: -len(x[1])):
        v.sort()
        print('   %-15s %5.1f %%  %6.0f / %6.0f / %6.0f' % (st, 100 * len(v) / n, v[len(v) // 2],
                                                        v[int(len(v) * 0.9)], v[int(len(v) * 0.99)]))
    table([r for r in rows if tail_from <= r[0] < 500], 'the p99 band, %.0f-500 µs' % tail_from)
    table([r for r in rows if r[0] >= 500], '500 µs or more')
    # Tasks other than the two ends, perf and the idle task that held a CPU for 200 µs or more.
    start = {}
    held = defaultdict(list)
    for e in ev:
        if e[4] != 'sched:sched_switch':
            continue
        p, n = re.search(r'prev_comm=(\S+)', e[5]), re.search(r'next_comm=(\S+)', e[5])
        if p and e[1] in start and start[e[1]][0] == p.group(1):
            dur = (e[0] - start[e[1]][1]) * 1e6
            name = p.group(1)
            if dur >= 200 and not name.startswith(('swapper', 'sockperf', 'perf', 'vswitch')):
                held[(name, e[1])].append(dur)
        if n:
            start[e[1]] = (n.group(1), e[0])
    secs = ev[-1][0] - ev[0][0]
    for (name, cpu), ds in sorted(held.items(), key=lambda x: -sum(x[1])):
        print('   %s on CPU %d: %d runs of 200 µs or more in %.1f s, median %.0f µs, longest %.0f µs'
              % (name, cpu, len(ds), secs, statistics.median(ds), max(ds)))


if __name__ == '__main__':
    main()

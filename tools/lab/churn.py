#!/usr/bin/env python3
"""Controller churn for same-run A/B runs (tools/lab/fps-ab.sh CHURN=N): sends RATE flow-mods a
second over vswitchd's control socket, one request at a time (each its own publication), until
SECS have passed. Each adds a rule `ip,nw_src=10.77.X.Y,udp,tp_dst=7 actions=drop` at priority
300 in table 0, from a source address the bench's traffic does not use, so every worker checks
its cache against it and re-translates nothing; then deletes them again (one request).
Prints the flow-mods sent and the slowest reply.
    churn.py SOCKET RATE SECS
"""
import json
import socket
import struct
import sys
import time


def call(sock, xid, typ, body):
    payload = json.dumps({"version": 1, "xid": xid, "type": typ, "body": body}).encode()
    sock.sendall(struct.pack(">I", len(payload)) + payload)
    head = b""
    while len(head) < 4:
        head += sock.recv(4 - len(head))
    (n,) = struct.unpack(">I", head)
    data = b""
    while len(data) < n:
        data += sock.recv(n - len(data))
    reply = json.loads(data)
    if reply["type"] == "error":
        raise SystemExit(f"churn: {typ}: {reply['body']}")
    return reply


def main():
    path, rate, secs = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    call(sock, 1, "hello", {"versions": [1], "client": "churn.py"})
    start = time.monotonic()
    sent, slowest, xid = 0, 0.0, 1
    match = {"eth_type": "0x0800", "ip_proto": 17, "udp_dst": 7}
    while time.monotonic() - start < secs:
        xid += 1
        match["ip_src"] = f"10.77.{(sent // 250) % 250}.{sent % 250 + 1}"
        t = time.monotonic()
        call(sock, xid, "flow_mod", {"command": "add", "table": 0, "priority": 300,
                                     "match": dict(match), "actions": []})
        slowest = max(slowest, time.monotonic() - t)
        sent += 1
        next_at = start + sent / rate
        time.sleep(max(0.0, next_at - time.monotonic()))
    xid += 1
    call(sock, xid, "flow_mod", {"command": "delete", "table": 0,
                                 "match": {"eth_type": "0x0800", "ip_proto": 17, "udp_dst": 7}})
    print(f"churn_sent={sent} churn_slowest_ms={slowest * 1000:.2f}")


if __name__ == "__main__":
    main()

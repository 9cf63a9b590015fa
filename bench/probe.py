#!/usr/bin/env python3
"""Readiness probes as the kubelet sends them, timed, while another client saturates `/`.

The kubelet opens a new TCP connection for every HTTP probe and gives up after
`timeoutSeconds` (1 s by default). This client does the same on a fixed schedule (open loop:
a slow answer does not delay the next probe's start) and prints one JSON object with every
latency, so bench.py can take percentiles. Loopback only: the host is fixed to 127.0.0.1.

    probe.py --port 8080 --path /readyz --interval 0.02 --delay 1 --duration 8
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time

HOST = "127.0.0.1"


def get_status(port: int, path: str, timeout: float) -> int:
    """One `GET path` on a fresh connection; returns the status code (raises on failure)."""
    request = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUser-Agent: kube-probe/bench\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(request.encode("ascii"))
        data = b""
        # Read to EOF: the server closes after the response (Connection: close), so the time
        # includes the whole response, as the kubelet's does.
        while chunk := sock.recv(65536):
            data += chunk
    status_line = data.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[1].isdigit():
        raise ValueError(f"not an HTTP response: {data[:80]!r}")
    return int(status_line[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/readyz")
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between probe starts")
    parser.add_argument("--duration", type=float, required=True, help="seconds to probe for")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait first (load ramp-up)")
    parser.add_argument("--timeout", type=float, default=1.0, help="the kubelet's timeoutSeconds")
    args = parser.parse_args()
    if args.duration <= 0 or args.duration > 600 or args.interval <= 0:
        parser.error("--duration must be in (0, 600] seconds and --interval positive")

    time.sleep(args.delay)
    latencies_us: list[int] = []
    failures: list[str] = []
    # One entry a probe: [seconds since the first probe, "ok" or the failure, latency in ms].
    timeline: list[list] = []
    # The kubelet restarts a container after failureThreshold failures in a row.
    in_a_row = max_in_a_row = 0
    start = time.perf_counter()
    deadline = start + args.duration
    next_at = start
    while next_at < deadline:
        now = time.perf_counter()
        if now < next_at:
            time.sleep(next_at - now)
        t0 = time.perf_counter()
        before = len(failures)
        try:
            status = get_status(args.port, args.path, args.timeout)
            elapsed = time.perf_counter() - t0
            if status != 200:
                failures.append(f"status {status}")
            elif elapsed > args.timeout:
                failures.append("slower than timeout")
            latencies_us.append(round(elapsed * 1e6))
        except (OSError, ValueError) as err:
            failures.append(type(err).__name__)
            latencies_us.append(round(max(time.perf_counter() - t0, args.timeout) * 1e6))
        failed = len(failures) > before
        timeline.append([round(t0 - start, 2), failures[-1] if failed else "ok", round(latencies_us[-1] / 1000, 1)])
        in_a_row = in_a_row + 1 if failed else 0
        max_in_a_row = max(max_in_a_row, in_a_row)
        next_at += args.interval
        # A probe slower than the interval must not trigger a burst of catch-up probes.
        next_at = max(next_at, time.perf_counter())
    json.dump({"path": args.path, "latencies_us": latencies_us, "failures": failures, "max_failures_in_a_row": max_in_a_row, "timeline": timeline}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The long flood: hello-k8s under the Deployment's own limits, flooded for minutes, probed.

The release binary runs alone in a cgroup v1 of its own with the Deployment's limits (CPU quota
500m: 50000 us every 100000 us; memory 128Mi). `wrk -t2 -c10000` floods `GET /` for the whole
duration while probe.py sends the kubelet's probes on fresh connections every second with the
probe's own 2 s timeout: liveness and readiness on the probe port (where the manifests point
the kubelet), and liveness on the HTTP port for comparison. It prints (and writes as JSON) the
probe timelines, the share of failures, the longest run of failures, the cgroup's throttling
and peak memory. Root only (it makes and removes the cgroup); loopback only.

    flood.py --bin target/.../hello-k8s --duration 120 --out bench/.work/flood.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

HOST = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent
# cpu and cpuacct are mounted together on most hosts, apart on some.
CPU_ROOT = next((p for p in (Path("/sys/fs/cgroup/cpu,cpuacct"), Path("/sys/fs/cgroup/cpu")) if p.is_dir()), Path("/sys/fs/cgroup/cpu"))
MEMORY_ROOT = Path("/sys/fs/cgroup/memory")
QUOTA_US, PERIOD_US = 50_000, 100_000
MEMORY_LIMIT_BYTES = 128 * 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def http_status(port: int, path: str, timeout: float = 1.0) -> int:
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    return int(data.split(b" ", 2)[1])


class Cgroup:
    """A child cgroup in the cpu and memory hierarchies; removed on exit."""

    def __init__(self, name: str) -> None:
        self.dirs = [CPU_ROOT / name, MEMORY_ROOT / name]

    def __enter__(self) -> Cgroup:
        for d in self.dirs:
            d.mkdir(exist_ok=False)
        cpu, memory = self.dirs
        (cpu / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (cpu / "cpu.cfs_quota_us").write_text(str(QUOTA_US))
        (memory / "memory.limit_in_bytes").write_text(str(MEMORY_LIMIT_BYTES))
        return self

    def add(self, pid: int) -> None:
        for d in self.dirs:
            (d / "cgroup.procs").write_text(str(pid))

    def stats(self) -> dict:
        cpu, memory = self.dirs
        stat = dict(line.split() for line in (cpu / "cpu.stat").read_text().splitlines())
        return {
            "nr_periods": int(stat["nr_periods"]),
            "nr_throttled": int(stat["nr_throttled"]),
            "max_usage_bytes": int((memory / "memory.max_usage_in_bytes").read_text()),
            "failcnt": int((memory / "memory.failcnt").read_text()),
            "oom_kills": int(
                dict(line.split() for line in (memory / "memory.oom_control").read_text().splitlines()).get("oom_kill", 0)
            ),
        }

    def __exit__(self, *exc: object) -> None:
        for d in self.dirs:
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)


def summary(probes: dict) -> dict:
    n = len(probes["timeline"])
    failed = len(probes["failures"])
    return {
        "probes": n,
        "failures": failed,
        "failure_share": round(failed / n, 4) if n else None,
        "longest_failure_run": probes["max_failures_in_a_row"],
        "failure_kinds": sorted(set(probes["failures"])),
        "max_latency_ms": max((t[2] for t in probes["timeline"]), default=None),
        "p99_latency_ms": sorted(t[2] for t in probes["timeline"])[max(0, int(n * 0.99) - 1)] if n else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--bin", required=True, help="the release hello-k8s binary")
    parser.add_argument("--duration", type=int, default=120, help="seconds of flood (at most 600)")
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--out", type=Path, required=True, help="where the JSON record goes")
    args = parser.parse_args()
    if not 10 <= args.duration <= 600:
        parser.error("--duration must be 10..600 seconds")
    if os.geteuid() != 0 or not CPU_ROOT.is_dir() or not MEMORY_ROOT.is_dir():
        print("flood.py: needs root and the cgroup v1 cpu and memory hierarchies", file=sys.stderr)
        return 2
    port, probe_port = free_port(), free_port()
    env = {
        "PATH": "/usr/bin:/bin", "HOST": HOST, "PORT": str(port), "PROBE_PORT": str(probe_port),
        "ENV": "production", "API_KEY": "bench-key",
        # What WORKERS=auto gives under the Deployment's 500m quota (std reads the quota at start;
        # the server enters its cgroup just after, so it is set here).
        "WORKERS": "1", "LOG_FORMAT": "json", "LOG_LEVEL": "warn",
        "MEMORY_LIMIT_BYTES": str(MEMORY_LIMIT_BYTES), "DRAIN_DELAY_SECONDS": "0", "SHUTDOWN_TIMEOUT_SECONDS": "1",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log = open(args.out.with_suffix(".log"), "wb")  # noqa: SIM115 - owned by the child
    with Cgroup(f"hello-k8s-flood-{os.getpid()}") as cgroup:
        server = subprocess.Popen([args.bin], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            cgroup.add(server.pid)
            for _ in range(300):
                try:
                    if http_status(probe_port, "/readyz") == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.1)
            else:
                raise SystemExit("flood.py: hello-k8s never became ready")
            before = cgroup.stats()
            probe_args = ["--interval", "1", "--timeout", "2", "--delay", "2", "--duration", str(args.duration - 4)]
            probes = {
                name: subprocess.Popen(
                    [sys.executable, str(BENCH_DIR / "probe.py"), "--port", str(p), "--path", path, *probe_args],
                    stdout=subprocess.PIPE, text=True,
                )
                for name, p, path in [
                    ("liveness, probe port", probe_port, "/healthz"),
                    ("readiness, probe port", probe_port, "/readyz"),
                    ("liveness, HTTP port", port, "/healthz"),
                ]
            }
            wrk = subprocess.run(
                ["wrk", "-t2", f"-c{args.connections}", f"-d{args.duration}s", "--timeout", "2s", f"http://{HOST}:{port}/"],
                capture_output=True, text=True, timeout=args.duration + 60,
                preexec_fn=lambda: __import__("resource").setrlimit(__import__("resource").RLIMIT_NOFILE, (20_000, 20_000)),
            )
            results = {name: json.loads(p.communicate(timeout=60)[0]) for name, p in probes.items()}
            after = cgroup.stats()
            alive = server.poll() is None
            time.sleep(10)
            status_after = http_status(port, "/") if alive else None
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    record = {
        "duration_s": args.duration,
        "connections": args.connections,
        "cpu_quota": f"{QUOTA_US}/{PERIOD_US}",
        "memory_limit_bytes": MEMORY_LIMIT_BYTES,
        "throttled_periods": after["nr_throttled"] - before["nr_throttled"],
        "periods": after["nr_periods"] - before["nr_periods"],
        "peak_memory_bytes": after["max_usage_bytes"],
        "oom_kills": after["oom_kills"],
        "alive_after": alive,
        "status_after_flood": status_after,
        "wrk": wrk.stdout[-1500:],
        "summary": {name: summary(r) for name, r in results.items()},
        "timelines": {name: r["timeline"] for name, r in results.items()},
    }
    args.out.write_text(json.dumps(record, indent=1))
    print(json.dumps({k: v for k, v in record.items() if k != "timelines"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

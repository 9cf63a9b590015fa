#!/usr/bin/env python3
"""The connection-scale section: memory and throughput under 1k, 5k and 10k keep-alive connections.

bench/run.sh runs this after (or, with `--only scale`, instead of) bench.py and cpu.py. Each
server runs alone on one pinned CPU (taskset), and wrk on the other, so the two never share a
core: the pinned pair of bench/pinned.py (nginx with 1 worker, hello-k8s in its production
configuration with WORKERS=1), and any number of other hello-k8s builds given with --variant
LABEL=PATH, measured beside them in the same run.

For every level and every system, in an order that rotates per level: a fresh server, idle
memory, `wrk -t2 -cN -dD` on `GET /` (bench/scale.lua counts the answers by status: 200
against 503 shed), VmRSS and open descriptors sampled during the flood, liveness probes on a
fresh connection every 200 ms as the kubelet sends them, VmHWM (the peak) when the flood
ends, VmRSS again after a settle time with every connection closed, and once more after a
trickle of probes (20 in 7 s: an allocator may return memory only when it is called again, or
after a decay time),
then the server stops.
Memory is summed over the server's process tree (nginx: master and worker). Every server and
client binds or targets 127.0.0.1, and every load is bounded by its duration.
Raw results: bench/.work/scale.json; report.py renders them.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import bench as core
import pinned
from bench import HOST, GREETING, BENCH_DIR, System
from pinned import BACKLOG, MEMORY_LIMIT_BYTES

LIVENESS_PATH = "/healthz"
# After the flood: this many liveness probes, this far apart, before the last RSS reading
# (with the 3 s settle, 10 s after the flood: jemalloc's default decay purges within 10 s).
TRICKLE_PROBES = 20
TRICKLE_INTERVAL_S = 0.35


def tree_stats(root: int) -> dict[str, int]:
    """VmRSS, VmHWM and open descriptors summed over the process tree."""
    pids = core.tree_pids(root)
    fds = 0
    for pid in pids:
        try:
            fds += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            pass
    return {
        "processes": len(pids),
        "rss_kb": sum(core._status_kb(p, "VmRSS") for p in pids),
        "hwm_kb": sum(core._status_kb(p, "VmHWM") for p in pids),
        "fds": fds,
    }


class Sampler(threading.Thread):
    """Samples the tree's VmRSS and descriptors every `interval` s; keeps the maxima."""

    def __init__(self, root: int, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.max_rss_kb = self.max_fds = self.samples = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.interval):
            s = tree_stats(self.root)
            self.max_rss_kb = max(self.max_rss_kb, s["rss_kb"])
            self.max_fds = max(self.max_fds, s["fds"])
            self.samples += 1

    def finish(self) -> None:
        self._done.set()
        self.join()


def flood(args: argparse.Namespace, system: System, connections: int) -> dict:
    """One fresh server, one flood of `connections` keep-alive clients; its record."""
    assert system.log_path is not None
    port = core.free_port()
    tuning = pinned.nginx_tuning(max(args.levels), args.nofile)
    proc = core.spawn(system, port, 1, system.log_path, nginx_tuning=tuning, cpus=args.server_cpu)
    try:
        try:
            core.wait_ready(proc, port, system.ready_path, timeout=30, poll=0.01)
        except RuntimeError as err:
            raise RuntimeError(f"{system.key}: {err}; its output is in {system.log_path}") from None
        status, body = core.http_get(port, "/")
        if status != 200 or body.strip() != GREETING:
            raise RuntimeError(f"{system.key}: GET / answered {status} {body[:80]!r}, expected 200 {GREETING!r}")
        time.sleep(0.5)
        idle = tree_stats(proc.pid)
        seconds = core.parse_seconds(args.duration)
        probe = subprocess.Popen(
            [sys.executable, str(BENCH_DIR / "probe.py"), "--port", str(system.probe_target(port)), "--path", LIVENESS_PATH,
             "--interval", "0.2", "--delay", "2", "--duration", str(max(seconds - 3.0, 1.0))],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        core._GROUPS.add(probe.pid)
        sampler = Sampler(proc.pid)
        cpu_before = core.cpu_seconds(proc.pid)
        machine_before, _, _ = core.machine_cpu()
        clients_before = core.children_cpu()
        sampler.start()
        cmd = [
            "taskset", "-c", args.client_cpu,
            "wrk", f"-t{args.threads}", f"-c{connections}", f"-d{args.duration}", "--timeout", "2s",
            "-s", str(BENCH_DIR / "scale.lua"), f"http://{HOST}:{port}/",
        ]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
            probes_out, _ = probe.communicate(timeout=seconds + 30)
        finally:
            sampler.finish()
            core._GROUPS.discard(probe.pid)
        peak = tree_stats(proc.pid)
        server_cpu = core.cpu_seconds(proc.pid) - cpu_before
        machine_after, _, _ = core.machine_cpu()
        client_cpu = core.children_cpu() - clients_before
        res = core.wrk_record(out, f"{system.key}: wrk -c{connections}")
        (args.work / f"wrk-scale-{system.key}-c{connections}.txt").write_text(res.pop("text"))
        # Every connection is closed once wrk has exited: what memory does the server give back?
        time.sleep(args.settle)
        after = tree_stats(proc.pid)
        alive = proc.poll() is None
        after_status = None
        after_probes = None
        if alive:
            try:
                after_status, _ = core.http_get(port, "/", timeout=2.0)
            except (OSError, ValueError):
                after_status = None
            # An allocator may give memory back only when the thread that freed it allocates
            # again: a trickle of probes, as the kubelet sends, then the RSS once more.
            for _ in range(TRICKLE_PROBES):
                try:
                    core.http_get(system.probe_target(port), LIVENESS_PATH, timeout=1.0)
                except (OSError, ValueError):
                    pass
                time.sleep(TRICKLE_INTERVAL_S)
            after_probes = tree_stats(proc.pid)
    finally:
        core.stop(proc)
    probes = json.loads(probes_out)
    res["statuses"] = {k: v for k, v in sorted(res["statuses"].items())}
    res.update(
        {
            "connections": connections,
            "idle": idle,
            "flood_max_rss_kb": sampler.max_rss_kb,
            "flood_max_fds": sampler.max_fds,
            "samples": sampler.samples,
            "peak": peak,
            "after": after,
            "after_probes": after_probes,
            "alive_after": alive,
            "exit_status": None if alive else proc.returncode,
            "status_after_flood": after_status,
            "server_cpu_s": server_cpu,
            "client_cpu_s": client_cpu,
            "other_cpu_s": max(0.0, (machine_after - machine_before) - server_cpu - client_cpu),
            "liveness": {
                "path": LIVENESS_PATH,
                "count": len(probes["latencies_us"]),
                "failures": len(probes["failures"]),
                "failure_kinds": sorted(set(probes["failures"])),
                "max_failures_in_a_row": probes.get("max_failures_in_a_row"),
                "p99_us": core.percentile(sorted(probes["latencies_us"]), 99),
                "max_us": max(probes["latencies_us"], default=None),
            },
        }
    )
    return res


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--bin", required=True, help="the release hello-k8s binary of this tree")
    parser.add_argument("--variant", action="append", default=[], help="LABEL=PATH: another hello-k8s build to measure beside it")
    parser.add_argument("--work", default=str(BENCH_DIR / ".work"))
    parser.add_argument("--levels", default="1000,5000,10000", help="comma-separated connection counts")
    parser.add_argument("--duration", default="10s", help="wrk -d of every flood")
    parser.add_argument("--threads", type=int, default=2, help="wrk -t")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after the flood before the after-flood RSS")
    parser.add_argument("--server-cpu", default="0", help="the CPU every server is pinned to (taskset -c)")
    parser.add_argument("--client-cpu", default="1", help="the CPU wrk is pinned to")
    parser.add_argument("--only", default="", help="comma-separated system keys (default: all)")
    parser.add_argument("--quiet-wait", type=float, default=30, help="seconds to wait at most for other work to stop")
    args = parser.parse_args()
    args.work = Path(args.work).resolve()
    args.levels = core.parse_levels(parser, args.levels, 15000)
    args.nofile = pinned.nofile_for(max(args.levels))
    pinned.check_tools_and_cpus(args.server_cpu, args.client_cpu)

    logs = args.work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    atexit.register(core.kill_all)
    signal.signal(signal.SIGTERM, core._on_signal)
    signal.signal(signal.SIGINT, core._on_signal)

    systems = pinned.make_systems(args.bin, args.variant, max(args.levels), args.work, "nginx-scale")
    if args.only:
        wanted = set(args.only.split(","))
        systems = [s for s in systems if s.key in wanted]
    binaries = {s.key: {"path": s.argv[0], "bytes": os.stat(s.argv[0]).st_size} for s in systems if s.kind != "ceiling"}
    results: dict = {
        "settings": {
            "levels": args.levels,
            "duration": args.duration,
            "threads": args.threads,
            "settle_s": args.settle,
            "server_cpu": args.server_cpu,
            "client_cpu": args.client_cpu,
            "backlog": BACKLOG,
            "memory_limit_bytes": MEMORY_LIMIT_BYTES,
            "nofile": args.nofile,
            "command": "bench/run.sh --only scale",
        },
        "machine": core.machine_info(args),
        "binaries": binaries,
        "systems": {s.key: {"label": s.label, "kind": s.kind, "note": s.note, "floods": []} for s in systems},
    }
    results["background_busy"] = core.wait_for_quiet(args.quiet_wait)
    for i, level in enumerate(args.levels):
        order = systems[i % len(systems) :] + systems[: i % len(systems)]
        for s in order:
            s.log_path = logs / f"scale-{s.key}.log"
            s.log_path.write_bytes(b"")
            log(f"{s.key}: {level} connections for {args.duration}, pinned to CPU {args.server_cpu} (wrk on CPU {args.client_cpu})")
            res = flood(args, s, level)
            res["log_bytes"] = s.log_path.stat().st_size
            results["systems"][s.key]["floods"].append(res)
            shed = res["statuses"].get("503", 0)
            errs = {k: v for k, v in res["errors"].items() if v and k != "status"}
            log(
                f"  {res['rps']:>9.0f} req/s  peak {res['peak']['hwm_kb'] / 1024:6.1f} MiB  after {res['after']['rss_kb'] / 1024:6.1f} MiB"
                f"  fds max {res['flood_max_fds']}  200: {res['statuses'].get('200', 0)}  503: {shed}"
                + (f"  socket errors {errs}" if errs else "")
                + f"  liveness failures {res['liveness']['failures']}/{res['liveness']['count']}"
                + ("" if res["alive_after"] else f"  EXITED ({res['exit_status']})")
            )
            # Keep the disk bounded: the size is recorded.
            os.truncate(s.log_path, 0)

    log(f"raw results: {core.save_results(args.work, 'scale', results)}")
    return 0


def log(msg: str) -> None:
    core.log(f"scale: {msg}")


if __name__ == "__main__":
    sys.exit(main())

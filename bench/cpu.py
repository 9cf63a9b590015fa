#!/usr/bin/env python3
"""The cpu section: server CPU per request and throughput of hello-k8s against nginx, one core each.

bench/run.sh runs this after bench.py (or, with `--only cpu`, alone). The pinned pair of
bench/pinned.py (nginx with 1 worker, hello-k8s in its production configuration with
WORKERS=1) runs on one CPU (taskset), and `wrk -t1` on the other. Both servers are started
once, checked (`GET /` answers the greeting) and warmed up; then ROUNDS rounds, and in each
round, for every connection count, each server in turn (which one goes first rotates with the
round and the count) gets `wrk -t1 -cN -dD` of keep-alive connections on `GET /`.

Per run it records wrk's requests and latency, the server process tree's utime + stime over
the run (/proc), so CPU per request = that CPU time / wrk's requests, the server core's busy
and softirq time (/proc/stat), and the CPU time of everything else on the machine (the noise).
When other work used more than NOISE_MAX of the machine's CPU time during a run, both runs of
that round at that count are measured again once the machine is quiet (at most --redo times);
if the machine stays busy through a whole wait, the remaining runs are kept as they are,
marked, so a busy machine does not multiply the section's length.

With `--variant LABEL=PATH` (BENCH_CPU_VARIANTS), other hello-k8s builds run beside them, in
the same rotation: each round then holds one run of every build at a count, back to back, so a
change to the request path is judged by its paired ratio to this tree's build (cpu_report.py),
which two separate runs of the section cannot do on a machine whose rounds move by several
percent.

Every server binds 127.0.0.1 and wrk targets it; every load is bounded by its duration, and
every process this starts is killed on exit. Raw results: bench/.work/cpu.json; report.py
renders them (cpu_report.py) and judges the goals (goals.py).
"""

from __future__ import annotations

import argparse
import atexit
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import bench as core
import pinned
from bench import BENCH_DIR, GREETING, HOST, System


def log(msg: str) -> None:
    core.log(f"cpu: {msg}")


def core_times(cpu: int) -> dict[str, float]:
    """(busy, softirq, total) seconds of one CPU since boot, from its line of /proc/stat."""
    tck = os.sysconf("SC_CLK_TCK")
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            f = [int(x) for x in line.split()[1:]]
            # user nice system idle iowait irq softirq steal
            total = sum(f[:8])
            return {"busy": (total - f[3] - f[4]) / tck, "softirq": f[6] / tck, "total": total / tck}
    raise RuntimeError(f"/proc/stat has no line for CPU {cpu}")


def run_wrk(args: argparse.Namespace, port: int, connections: int, duration: str) -> dict:
    """`wrk -t1 -cN` pinned to the client CPU; its BENCH_JSON record (bench/report.lua)."""
    cmd = [
        "taskset", "-c", args.client_cpu,
        "wrk", "-t1", f"-c{connections}", f"-d{duration}", "--timeout", "2s", "--latency",
        "-s", str(BENCH_DIR / "report.lua"), f"http://{HOST}:{port}/",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=core.parse_seconds(duration) + 60)
    return core.wrk_record(out, f"wrk -c{connections}")


def measured_run(args: argparse.Namespace, system: System, connections: int) -> dict:
    """One run of wrk against one server; its record, with the CPU accounting around it."""
    assert system.proc is not None
    server_cpu = int(args.server_cpu)
    cpu_before = core.cpu_seconds(system.proc.pid)
    core_before = core_times(server_cpu)
    machine_before, _, total_before = core.machine_cpu()
    clients_before = core.children_cpu()
    res = run_wrk(args, system.port, connections, args.duration)
    if not res["requests"]:
        raise RuntimeError(f"{system.key}: wrk -c{connections} counted no request; its output is in {system.log_path}:\n{res['text']}")
    server_cpu_s = core.cpu_seconds(system.proc.pid) - cpu_before
    client_cpu_s = core.children_cpu() - clients_before
    machine_after, _, total_after = core.machine_cpu()
    core_after = core_times(server_cpu)
    # CPU time of processes other than the server and wrk (other jobs, kernel threads, this
    # script), and its share of the machine's CPU time over the run: the noise indicator.
    other = max(0.0, (machine_after - machine_before) - server_cpu_s - client_cpu_s)
    res.update(
        {
            "connections": connections,
            "server_cpu_s": server_cpu_s,
            "client_cpu_s": client_cpu_s,
            "cpu_us_per_request": server_cpu_s / res["requests"] * 1e6,
            "other_cpu_s": other,
            "other_share": other / max(total_after - total_before, 1e-9),
            "server_core": {k: core_after[k] - core_before[k] for k in ("busy", "softirq", "total")},
        }
    )
    return res


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--bin", required=True, help="the release hello-k8s binary of this tree")
    parser.add_argument("--work", default=str(BENCH_DIR / ".work"))
    parser.add_argument("--levels", default="32,64,1000", help="comma-separated keep-alive connection counts")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--duration", default="4s", help="wrk -d of every run")
    parser.add_argument("--warmup", default="2s", help="wrk -d of each server's warm-up")
    parser.add_argument("--server-cpu", default="0", help="the CPU both servers are pinned to (taskset -c)")
    parser.add_argument("--client-cpu", default="1", help="the CPU wrk is pinned to")
    parser.add_argument("--quiet-wait", type=float, default=30, help="seconds to wait at most for other work to stop")
    parser.add_argument("--noise-max", type=float, default=core.NOISE_MAX, help="other work's share of the CPUs that makes a run be redone")
    parser.add_argument("--redo", type=int, default=2, help="how many times a disturbed round is measured again at most")
    parser.add_argument("--variant", action="append", default=[], help="LABEL=PATH: another hello-k8s build measured in the same rounds")
    args = parser.parse_args()
    work = Path(args.work).resolve()
    levels = core.parse_levels(parser, args.levels, 15000)
    if args.rounds < 1:
        parser.error(f"--rounds {args.rounds}: expected at least 1")
    core.check_binary_and_durations(parser, args)
    nofile = pinned.nofile_for(max(levels))
    pinned.check_tools_and_cpus(args.server_cpu, args.client_cpu)

    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    atexit.register(core.kill_all)
    signal.signal(signal.SIGTERM, core._on_signal)
    signal.signal(signal.SIGINT, core._on_signal)

    systems = pinned.make_systems(args.bin, args.variant, max(levels), work, "nginx-cpu")
    results: dict = {
        "settings": {
            "levels": levels,
            "rounds": args.rounds,
            "duration": args.duration,
            "warmup": args.warmup,
            "threads": 1,
            "server_cpu": args.server_cpu,
            "client_cpu": args.client_cpu,
            "noise_max": args.noise_max,
            "quiet_wait_s": args.quiet_wait,
            "redo": args.redo,
            "nofile": nofile,
            "irq_time_charged_to_tasks": core.irq_time_charged_to_tasks(),
            "command": "bench/run.sh --only cpu",
        },
        "machine": core.machine_info(args),
        "binary": {"path": args.bin, "bytes": os.stat(args.bin).st_size},
        "systems": {s.key: {"label": s.label, "kind": s.kind, "note": s.note, "runs": []} for s in systems},
    }
    started = time.monotonic()

    # Every server runs for the whole section, each alone on the server CPU while it is measured
    # (the others are idle: no connection, no timer worth a tick).
    for s in systems:
        s.port = core.free_port()
        s.log_path = logs / f"cpu-{s.key}.log"
        s.log_path.write_bytes(b"")
        log(f"starting {s.key} on {HOST}:{s.port}, pinned to CPU {args.server_cpu}")
        s.proc = core.spawn(s, s.port, 1, s.log_path, nginx_tuning=pinned.nginx_tuning(max(levels), nofile), cpus=args.server_cpu)
        try:
            core.wait_ready(s.proc, s.port, s.ready_path, timeout=30, poll=0.01)
        except RuntimeError as err:
            raise RuntimeError(f"{s.key}: {err}; its output is in {s.log_path}") from None
        status, body = core.http_get(s.port, "/")
        if status != 200 or body.strip() != GREETING:
            raise RuntimeError(f"{s.key}: GET / answered {status} {body[:80]!r}, expected 200 {GREETING!r}")
    results["background_busy"] = core.wait_for_quiet(args.quiet_wait)
    for s in systems:
        log(f"warm-up {s.key} ({args.warmup}, {max(levels)} connections)")
        run_wrk(args, s.port, max(levels), args.warmup)

    may_redo = True
    redone = 0
    for r in range(args.rounds):
        for i, level in enumerate(levels):
            k = (r + i) % len(systems)
            order = systems[k:] + systems[:k]
            attempts = 0
            while True:
                attempts += 1
                pair = []
                for s in order:
                    assert s.proc is not None
                    if s.proc.poll() is not None:
                        raise RuntimeError(f"{s.key} exited with status {s.proc.returncode}; its output is in {s.log_path}")
                    pair.append((s, measured_run(args, s, level)))
                worst = max(res["other_share"] for _, res in pair)
                if worst <= args.noise_max or attempts > args.redo or not may_redo:
                    break
                log(f"round {r + 1}, {level} connections: other work took {worst * 100:.0f}% of the CPUs; measuring the pair again")
                redone += 1
                if core.wait_for_quiet(args.quiet_wait) >= core.QUIET_BUSY_MAX:
                    log(f"the machine stayed busy for {args.quiet_wait:g} s: disturbed runs are kept from now on, marked")
                    may_redo = False
            for s, res in pair:
                res["round"] = r + 1
                res["attempts"] = attempts
                res["noisy"] = res["other_share"] > args.noise_max
                (work / f"wrk-cpu-{s.key}-c{level}-round{r + 1}.txt").write_text(res.pop("text"))
                results["systems"][s.key]["runs"].append(res)
                errs = {k_: v for k_, v in res["errors"].items() if v}
                log(
                    f"round {r + 1}/{args.rounds} c{level:<5} {s.key:9} {res['rps']:>9.0f} req/s"
                    f"  cpu {res['cpu_us_per_request']:.2f} us/req  core busy {res['server_core']['busy'] / res['server_core']['total'] * 100:.0f}%"
                    f"  other {res['other_share'] * 100:.0f}%" + (" (disturbed)" if res["noisy"] else "") + (f"  errors {errs}" if errs else "")
                )
            for s in order:
                assert s.log_path is not None
                os.truncate(s.log_path, 0)

    for s in systems:
        assert s.proc is not None
        core.stop(s.proc)
    results["pairs_redone"] = redone
    results["redo_stopped"] = not may_redo
    results["elapsed_s"] = time.monotonic() - started

    log(f"raw results: {core.save_results(work, 'cpu', results)} ({results['elapsed_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The cachesim section: user-space instructions and cache misses per request, hello-k8s and nginx.

bench/run.sh runs this with `--only cachesim` (never by default). The timed sections judge CPU
per request, but on a shared machine a server's time per request moves by a fifth between two
runs (docs/benchmarks.md), far more than a change to the request path moves it. This section
counts instead of timing: each server of the pinned pair (bench/pinned.py: hello-k8s in its
production configuration with WORKERS=1, nginx with one worker, here in its own process:
`master_process off`) runs under Valgrind's callgrind
with its cache simulation, and for each connection count it gets a warm-up, then two counted
runs of `wrk -t1 -cN`, a short one and a long one (4 s and 12 s), each between a zero of its
counters (`callgrind_control --zero`, which keeps the simulated caches as they are) and a dump
(`callgrind_control --dump`). Each run opens its N connections anew; the difference of the two
runs' counts over the difference of their requests leaves the connections' set-up out (at 1,000
connections and some 15 requests each under Valgrind, it would weigh a tenth) and gives the
cost of a request on an open keep-alive connection:

  - instructions executed in user space (the kernel is not simulated: the loopback TCP both
    servers share, 70-75% of their CPU time under perf, is not in these counts);
  - first-level data cache misses (reads and writes);
  - last-level misses, with the last level set to this machine's per-core L2 (from sysfs):
    the cache a connection's state drops out of when a thousand connections take turns.

A difference below zero (the two runs' noise, where there are next to no misses) shows as 0.
Callgrind counts each byte a `rep stosb` stores as an instruction: hello-k8s's figure holds
some 6 thousand for actix-http's 3 KiB header-index `memset`, twice per request, which takes
far less time than that many instructions (docs/benchmarks.md).

The counts do not depend on what else the machine runs, so two builds compare at a glance
(`--bin`); they are approximations of the hardware's (a two-level model, no prefetcher) and
Valgrind runs the server some 50 times slower, so the request rate is not a measure here.
Raw results: bench/.work/cachesim.json.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import bench as core
import pinned
from bench import BENCH_DIR, GREETING, HOST
from cpu import run_wrk
from fmt import text_table


def log(msg: str) -> None:
    core.log(f"cachesim: {msg}")


def cache(level: int, kind: str) -> tuple[int, int, int]:
    """(size in bytes, ways, line size) of CPU 0's cache of `level` and `kind` (Data, Unified), from sysfs."""
    root = Path("/sys/devices/system/cpu/cpu0/cache")
    for index in sorted(root.glob("index*")):
        read = lambda name: (index / name).read_text().strip()  # noqa: E731
        if int(read("level")) == level and read("type") == kind:
            size = read("size")
            scale = {"K": 1024, "M": 1024 * 1024}.get(size[-1], 1)
            return int(size.rstrip("KM")) * scale, int(read("ways_of_associativity")), int(read("coherency_line_size"))
    raise RuntimeError(f"no level-{level} {kind} cache under {root}: give --d1 and --ll (SIZE,WAYS,LINE)")


def geometry(text: str | None, level: int, kind: str) -> str:
    if text:
        parts = text.split(",")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise SystemExit(f"cachesim: cache geometry {text!r}: expected SIZE,WAYS,LINE in bytes, e.g. 1048576,16,64")
        return text
    return ",".join(str(x) for x in cache(level, kind))


def control(env: dict[str, str], *args: str) -> None:
    """callgrind_control with the server's own environment: it finds the server's vgdb pipe by
    names valgrind derived from USER and HOST as the server saw them."""
    out = subprocess.run(["callgrind_control", *args], env=env, capture_output=True, text=True, timeout=120)
    if out.returncode != 0 or "OK" not in out.stdout:
        raise RuntimeError(f"callgrind_control {' '.join(args)} failed ({out.returncode}): {out.stdout}{out.stderr}")


def totals(path: Path) -> dict[str, int]:
    """The event totals of one callgrind dump, by event name."""
    events: list[str] = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith("totals:") or line.startswith("summary:"):
            values = [int(x) for x in line.split()[1:]]
            return dict(zip(events, values))
    raise RuntimeError(f"{path}: no totals line (not a callgrind dump?)")


def measure(args: argparse.Namespace, system: core.System, work: Path, levels: list[int], nofile: int) -> list[dict]:
    out_dir = work / "cachesim"
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob(f"{system.key}-*"):
        old.unlink()
    valgrind = [
        "valgrind", "--tool=callgrind", "--cache-sim=yes", f"--D1={args.d1}", f"--LL={args.ll}",
        f"--callgrind-out-file={out_dir / system.key}-%p.out",
    ]
    wrapped = dataclasses.replace(system, argv=valgrind + system.argv)
    wrapped.port = core.free_port()
    wrapped.log_path = work / "logs" / f"cachesim-{system.key}.log"
    wrapped.log_path.parent.mkdir(parents=True, exist_ok=True)
    wrapped.log_path.write_bytes(b"")
    if wrapped.nginx_prefix is not None:
        # nginx's worker loop in nginx's own process (master_process off): callgrind counts one
        # process, and callgrind_control reaches it (a forked worker it does not).
        core.write_nginx_conf(wrapped, wrapped.port, 1, pinned.nginx_tuning(max(levels), nofile))
        conf = wrapped.nginx_prefix / f"nginx-{wrapped.port}.conf"
        text = conf.read_text()
        if "master_process on;" not in text:
            raise RuntimeError(f"{conf}: no 'master_process on;' to turn off (bench/nginx.conf.in changed?)")
        conf.write_text(text.replace("master_process on;", "master_process off;"))
        wrapped.nginx_prefix = None  # written: spawn leaves it as it is
    log(f"starting {system.key} under callgrind on {HOST}:{wrapped.port}, pinned to CPU {args.server_cpu}")
    proc = core.spawn(wrapped, wrapped.port, 1, wrapped.log_path, cpus=args.server_cpu)
    env = wrapped.environment(wrapped.port)
    records = []
    try:
        core.wait_ready(proc, wrapped.port, wrapped.ready_path, timeout=120, poll=0.05)
        status, body = core.http_get(wrapped.port, "/", timeout=10)
        if status != 200 or body.strip() != GREETING:
            raise RuntimeError(f"{system.key}: GET / answered {status} {body[:80]!r}, expected 200 {GREETING!r}")
        for level in levels:
            log(f"{system.key}: warm-up ({args.warmup}, {level} connections), then two counted runs, {args.short} and {args.duration}")
            run_wrk(args, wrapped.port, level, args.warmup)
            short, short_n = counted_run(args, env, proc, wrapped, out_dir, system.key, level, args.short)
            long, long_n = counted_run(args, env, proc, wrapped, out_dir, system.key, level, args.duration)
            n = long_n - short_n
            if n < short_n / 2:
                raise RuntimeError(f"{system.key}: {long_n:,} requests in {args.duration} against {short_n:,} in {args.short}: too few more to count by")
            steady = {event: long.get(event, 0) - short.get(event, 0) for event in long}
            record = {
                "system": system.key,
                "connections": level,
                "requests": n,
                "instructions": steady.get("Ir", 0) / n,
                "d1_misses": (steady.get("D1mr", 0) + steady.get("D1mw", 0)) / n,
                "ll_misses": (steady.get("DLmr", 0) + steady.get("DLmw", 0)) / n,
                "runs": {"short": {"requests": short_n, "events": short}, "long": {"requests": long_n, "events": long}},
            }
            records.append(record)
            log(
                f"{system.key} c{level}: {n:,} requests more in the long run; per request {record['instructions']:,.0f} instructions, "
                f"{record['d1_misses']:.1f} D1 misses, {record['ll_misses']:.1f} LL misses"
            )
    finally:
        core.stop(proc, grace=30)
    return records


def counted_run(
    args: argparse.Namespace, env: dict[str, str], proc: subprocess.Popen, system: core.System, out_dir: Path, key: str, level: int, duration: str
) -> tuple[dict[str, int], int]:
    """One wrk run between a zero and a dump of the server's counters: its events and requests."""
    pids = core.tree_pids(proc.pid)
    for pid in pids:
        control(env, "--zero", str(pid))
    res = run_wrk(args, system.port, level, duration)
    before = set(out_dir.glob(f"{key}-*.out.*"))
    for pid in pids:
        control(env, "--dump", str(pid))
    dumps = sorted(set(out_dir.glob(f"{key}-*.out.*")) - before)
    if not dumps or not res["requests"]:
        raise RuntimeError(f"{key}: no dump or no request at {level} connections; its output is in {system.log_path}")
    counted: dict[str, int] = {}
    for dump in dumps:
        for event, value in totals(dump).items():
            counted[event] = counted.get(event, 0) + value
    return counted, res["requests"]


HEADER = ["connections", "system", "requests", "instructions/req", "x nginx", "D1 misses/req", "x nginx", "LL misses/req", "x nginx"]


def table(records: list[dict]) -> str:
    rows = []
    for r in records:
        ref = next((x for x in records if x["connections"] == r["connections"] and x["system"] == pinned.CEILING), None)
        # A ratio to less than one miss per request says nothing but that nginx has almost none.
        ratio = lambda key, r=r, ref=ref: f"{r[key] / ref[key]:.2f}x" if ref and ref[key] >= 1 else "-"  # noqa: E731
        rows.append(
            [f"{r['connections']:,}", r["system"], f"{r['requests']:,}", f"{r['instructions']:,.0f}", ratio("instructions"),
             f"{max(r['d1_misses'], 0):.1f}", ratio("d1_misses"), f"{max(r['ll_misses'], 0):.1f}", ratio("ll_misses")]
        )
    return text_table(HEADER, rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--bin", required=True, help="the hello-k8s binary to count")
    parser.add_argument("--work", default=str(BENCH_DIR / ".work"))
    parser.add_argument("--levels", default="64,1000", help="comma-separated keep-alive connection counts")
    parser.add_argument("--duration", default="12s", help="wrk -d of the long counted run")
    parser.add_argument("--short", default="4s", help="wrk -d of the short counted run")
    parser.add_argument("--warmup", default="3s", help="wrk -d of the warm-up before each counted run")
    parser.add_argument("--d1", default=None, help="the simulated first-level data cache, SIZE,WAYS,LINE (default: this machine's)")
    parser.add_argument("--ll", default=None, help="the simulated last level, SIZE,WAYS,LINE (default: this machine's per-core L2)")
    parser.add_argument("--server-cpu", default="0", help="the CPU both servers are pinned to (taskset -c)")
    parser.add_argument("--client-cpu", default="1", help="the CPU wrk is pinned to")
    args = parser.parse_args()
    levels = core.parse_levels(parser, args.levels, 5000)
    core.check_binary_and_durations(parser, args)
    try:
        short_s = core.parse_seconds(args.short)
    except ValueError as err:
        parser.error(f"--short: {err}")
    if not 0 < short_s < core.parse_seconds(args.duration):
        parser.error(f"--short {args.short}: expected a duration shorter than --duration {args.duration}")
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} not found on PATH (Debian: apt-get install valgrind; bench/run.sh --only cachesim installs it)")
    args.d1 = geometry(args.d1, 1, "Data")
    args.ll = geometry(args.ll, 2, "Unified")
    nofile = pinned.nofile_for(max(levels))
    pinned.check_tools_and_cpus(args.server_cpu, args.client_cpu)

    work = Path(args.work).resolve()
    atexit.register(core.kill_all)
    signal.signal(signal.SIGTERM, core._on_signal)
    signal.signal(signal.SIGINT, core._on_signal)
    started = time.monotonic()
    systems = pinned.make_systems(str(Path(args.bin).resolve()), [], max(levels), work, "nginx-cachesim")
    records = []
    for system in systems:
        records += measure(args, system, work, levels, nofile)
    results = {
        "settings": {"levels": levels, "duration": args.duration, "short": args.short, "warmup": args.warmup, "d1": args.d1, "ll": args.ll},
        "machine": core.machine_info(args),
        "binary": {"path": args.bin, "bytes": os.stat(args.bin).st_size},
        "records": records,
        "elapsed_s": time.monotonic() - started,
    }
    log(f"raw results: {core.save_results(work, 'cachesim', results)} ({results['elapsed_s']:.0f} s)")
    print(f"\nuser-space instructions and cache misses per request under callgrind (D1 {args.d1}, LL {args.ll}: size, ways, line)")
    print(table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())

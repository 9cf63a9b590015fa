#!/usr/bin/env python3
"""The profile helper: one pinned bench round under `perf record -g`, its top symbols and a flame graph.

bench/run.sh runs this with `--only profile` (never by default). One server of the pinned pair
(bench/pinned.py: hello-k8s in its production configuration with WORKERS=1, or nginx with one
worker) runs on the server CPU (taskset), answers the greeting and gets a warm-up; then perf
attaches to its process tree, started with its events disabled, and is enabled (through its
control FIFO, acknowledged) just before `wrk -t1 -cN -dD` on the client CPU and disabled when
wrk ends, so the profile holds that round and nothing else.

It prints, from `perf report --no-children --sort symbol` (self time):
  - the kernel/user split of the samples;
  - the top N user-space symbols and the top N kernel symbols, in percent of all samples;
  - the round's server CPU per request and req/s (under perf, so a little above a bare round's);
and writes, under bench/.work/profile/: perf.data, the full report, the folded stacks
(inferno-collapse-perf) and the flame graph (inferno-flamegraph, SVG).

`--bin PATH` profiles another build the same way, e.g. one with symbols:

    CARGO_TARGET_DIR=target/profiling CARGO_PROFILE_RELEASE_STRIP=false \\
        CARGO_PROFILE_RELEASE_DEBUG=line-tables-only scripts/build-release.sh

(the shipped binary is stripped, so its own samples show as addresses). Stacks come from frame
pointers (`-g`), which the release build omits, so they are shallow; `--call-graph dwarf` unwinds
from DWARF instead (a build with debug info, much larger perf.data).
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench as core
import pinned
from bench import BENCH_DIR, GREETING, HOST
from cpu import run_wrk

# A report line of `perf report --no-children --sort symbol -n -g none --stdio`:
# "    12.34%  1234  [k] tcp_sendmsg_locked     -      -" (percent, samples, [k] kernel or [.]
# user space, the symbol; perf 6 adds the IPC and its coverage, "-" without branch records).
REPORT_LINE = re.compile(r"^\s+[0-9.]+%\s+([0-9]+)\s+\[([k.])\]\s+(.+?)(?:\s{2,}(?:-|[0-9.]+)\s+(?:-|\[?[0-9.]+%\]?))?\s*$")
UNRESOLVED = re.compile(r"^0x[0-9a-f]+$")


def log(msg: str) -> None:
    core.log(f"profile: {msg}")


class Perf:
    """`perf record` attached to `pids`, started disabled, switched through its control FIFO."""

    def __init__(self, pids: list[int], data: Path, call_graph: str, frequency: int, fifo_dir: Path) -> None:
        ctl, ack = fifo_dir / "ctl", fifo_dir / "ack"
        os.mkfifo(ctl)
        os.mkfifo(ack)
        # Both ends opened read-write: on Linux that never blocks, so a perf that fails to start
        # cannot hang this script in open(); an answer is then awaited with a deadline.
        self._ctl = os.open(ctl, os.O_RDWR)
        self._ack = os.open(ack, os.O_RDWR)
        self.log = data.with_suffix(".record.log")
        cmd = [
            "perf", "record", "-F", str(frequency), "--call-graph", call_graph, "-D", "-1",
            "--control", f"fifo:{ctl},{ack}", "-o", str(data), "-p", ",".join(str(p) for p in pids),
        ]
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT, start_new_session=True)
        core._GROUPS.add(self.proc.pid)

    def _command(self, word: str, timeout: float = 30.0) -> None:
        """Sends `word` to perf and waits for its `ack` (perf has acted on it), or its exit."""
        os.write(self._ctl, f"{word}\n".encode())
        deadline = time.monotonic() + timeout
        while True:
            ready, _, _ = select.select([self._ack], [], [], 0.2)
            if ready:
                # perf writes "ack\n" with the string's terminating NUL.
                reply = os.read(self._ack, 64).decode(errors="replace").strip("\x00\n ")
                if reply != "ack":
                    raise RuntimeError(f"perf answered {reply!r} to {word!r}; its output is in {self.log}")
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"perf record exited with status {self.proc.returncode}; its output is in {self.log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"perf did not acknowledge {word!r} within {timeout:g} s; its output is in {self.log}")

    def enable(self) -> None:
        self._command("enable")

    def disable(self) -> None:
        self._command("disable")

    def stop(self) -> None:
        """SIGINT, as perf record expects at its end; waits until perf.data is written."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=120)
        finally:
            core._GROUPS.discard(self.proc.pid)
            os.close(self._ctl)
            os.close(self._ack)
        if self.proc.returncode not in (0, -signal.SIGINT):
            raise RuntimeError(f"perf record exited with status {self.proc.returncode}; its output is in {self.log}")


def report(data: Path) -> tuple[str, list[tuple[float, str, str]]]:
    """The text of `perf report --no-children --sort symbol` and its (percent, k|., symbol)
    entries, the percent of all samples computed from the sample counts (perf's own column is
    rounded to 0.01%, which over hundreds of symbols loses a percent or two)."""
    out = subprocess.run(
        ["perf", "report", "-i", str(data), "--no-children", "--sort", "symbol", "-n", "-g", "none", "--stdio", "--percent-limit", "0"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"perf report failed ({out.returncode}):\n{out.stderr}")
    counted = []
    for line in out.stdout.splitlines():
        m = REPORT_LINE.match(line)
        if m:
            counted.append((int(m.group(1)), m.group(2), m.group(3)))
    total = sum(n for n, _, _ in counted) or 1
    return out.stdout, [(n * 100 / total, mode, sym) for n, mode, sym in counted]


def flame_graph(data: Path, folded: Path, svg: Path, title: str) -> None:
    """perf script | inferno-collapse-perf > folded; inferno-flamegraph < folded > svg (atomically)."""
    script = subprocess.Popen(["perf", "script", "-i", str(data)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert script.stdout is not None
    with tempfile.NamedTemporaryFile("wb", dir=folded.parent, delete=False, suffix=".tmp") as tmp:
        collapse = subprocess.run(["inferno-collapse-perf"], stdin=script.stdout, stdout=tmp, stderr=subprocess.PIPE, timeout=600)
    script.stdout.close()
    script.wait(timeout=600)
    if collapse.returncode != 0 or script.returncode != 0:
        os.unlink(tmp.name)
        raise RuntimeError(f"perf script | inferno-collapse-perf failed ({script.returncode}, {collapse.returncode}): {collapse.stderr.decode(errors='replace')}")
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, folded)
    with open(folded, "rb") as src, tempfile.NamedTemporaryFile("wb", dir=svg.parent, delete=False, suffix=".tmp") as tmp:
        graph = subprocess.run(["inferno-flamegraph", "--title", title], stdin=src, stdout=tmp, stderr=subprocess.PIPE, timeout=600)
    if graph.returncode != 0:
        os.unlink(tmp.name)
        raise RuntimeError(f"inferno-flamegraph failed ({graph.returncode}): {graph.stderr.decode(errors='replace')}")
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, svg)


def summary(entries: list[tuple[float, str, str]], top: int) -> list[str]:
    kernel = sum(p for p, mode, _ in entries if mode == "k")
    user = sum(p for p, mode, _ in entries if mode == ".")
    unresolved = sum(p for p, mode, sym in entries if mode == "." and UNRESOLVED.match(sym))
    lines = [f"samples: kernel {kernel:.1f}%, user space {user:.1f}%" + (f" (of it {unresolved:.1f}% without a symbol: stripped code)" if unresolved else "")]
    for mode, title in ((".", "user space"), ("k", "kernel")):
        picked = [(p, sym) for p, m, sym in entries if m == mode][:top]
        lines.append(f"top {len(picked)} {title} symbols (self time, % of all samples):")
        lines += [f"  {p:6.2f}%  {sym}" for p, sym in picked]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--bin", required=True, help="the hello-k8s binary to profile (a build with symbols names its own functions)")
    parser.add_argument("--system", choices=[pinned.SERVICE, pinned.CEILING], default=pinned.SERVICE, help="which server of the pinned pair")
    parser.add_argument("--label", default="", help="names the output files (default: the binary's file name, or nginx-1w)")
    parser.add_argument("--connections", type=int, default=1000, help="wrk -c of the round")
    parser.add_argument("--duration", default="10s", help="wrk -d of the round (the profile's length)")
    parser.add_argument("--warmup", default="2s", help="wrk -d of the warm-up, before perf is enabled")
    parser.add_argument("--top", type=int, default=20, help="how many symbols of each kind to print")
    parser.add_argument("--call-graph", default="fp", help="perf record --call-graph: fp (frame pointers, -g) or dwarf")
    parser.add_argument("--frequency", type=int, default=999, help="perf record -F, samples per second")
    parser.add_argument("--work", default=str(BENCH_DIR / ".work"))
    parser.add_argument("--server-cpu", default="0", help="the CPU the server is pinned to (taskset -c)")
    parser.add_argument("--client-cpu", default="1", help="the CPU wrk is pinned to")
    args = parser.parse_args()
    if not 1 <= args.connections <= 15000:
        parser.error(f"--connections {args.connections}: expected 1 to 15000")
    if args.top < 1:
        parser.error(f"--top {args.top}: expected at least 1")
    if args.call_graph.split(",")[0] not in ("fp", "dwarf", "lbr"):
        parser.error(f"--call-graph {args.call_graph!r}: expected fp, dwarf or lbr (perf record's --call-graph)")
    core.check_binary_and_durations(parser, args)
    for tool, hint in (
        ("perf", "Debian: apt-get install linux-perf (bench/run.sh --only profile installs it)"),
        ("inferno-collapse-perf", "cargo install --locked inferno"),
        ("inferno-flamegraph", "cargo install --locked inferno"),
    ):
        if shutil.which(tool) is None:
            parser.error(f"{tool} not found on PATH ({hint})")
    nofile = pinned.nofile_for(args.connections)
    pinned.check_tools_and_cpus(args.server_cpu, args.client_cpu)

    work = Path(args.work).resolve()
    out_dir = work / "profile"
    out_dir.mkdir(parents=True, exist_ok=True)
    label = args.label or (args.system if args.system == pinned.CEILING else Path(args.bin).name)
    if not re.fullmatch(r"[A-Za-z0-9._-]+", label):
        parser.error(f"--label {label!r}: expected letters, digits, '.', '_' or '-' (it names files)")
    stem = out_dir / f"{label}-c{args.connections}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    atexit.register(core.kill_all)
    signal.signal(signal.SIGTERM, core._on_signal)
    signal.signal(signal.SIGINT, core._on_signal)

    system = next(s for s in pinned.make_systems(str(Path(args.bin).resolve()), [], args.connections, work, "nginx-profile") if s.key == args.system)
    system.port = core.free_port()
    system.log_path = work / "logs" / f"profile-{system.key}.log"
    system.log_path.parent.mkdir(parents=True, exist_ok=True)
    system.log_path.write_bytes(b"")
    log(f"starting {system.key} ({args.bin}) on {HOST}:{system.port}, pinned to CPU {args.server_cpu}")
    system.proc = core.spawn(system, system.port, 1, system.log_path, nginx_tuning=pinned.nginx_tuning(args.connections, nofile), cpus=args.server_cpu)
    core.wait_ready(system.proc, system.port, system.ready_path, timeout=30, poll=0.01)
    status, body = core.http_get(system.port, "/")
    if status != 200 or body.strip() != GREETING:
        raise RuntimeError(f"{system.key}: GET / answered {status} {body[:80]!r}, expected 200 {GREETING!r}")
    log(f"warm-up ({args.warmup}, {args.connections} connections)")
    run_wrk(args, system.port, args.connections, args.warmup)

    data = stem.with_suffix(".perf.data")
    with tempfile.TemporaryDirectory(dir=out_dir) as fifo_dir:
        perf = Perf(core.tree_pids(system.proc.pid), data, args.call_graph, args.frequency, Path(fifo_dir))
        try:
            log(f"perf record --call-graph {args.call_graph} -F {args.frequency} on {system.key}; wrk -t1 -c{args.connections} -d{args.duration} on CPU {args.client_cpu}")
            cpu_before = core.cpu_seconds(system.proc.pid)
            perf.enable()
            res = run_wrk(args, system.port, args.connections, args.duration)
            perf.disable()
            cpu_s = core.cpu_seconds(system.proc.pid) - cpu_before
        finally:
            perf.stop()
    core.stop(system.proc)

    log("perf report and the flame graph")
    text, entries = report(data)
    if not entries:
        raise RuntimeError(f"perf report of {data} has no samples; perf's output is in {perf.log}")
    stem.with_suffix(".report.txt").write_text(text)
    folded, svg = stem.with_suffix(".folded"), stem.with_suffix(".svg")
    flame_graph(data, folded, svg, f"{label}: wrk -t1 -c{args.connections} -d{args.duration}, pinned, perf --call-graph {args.call_graph}")

    lines = [
        f"profile of {system.key} ({shutil.which('nginx') if system.kind == 'ceiling' else args.bin}), wrk -t1 -c{args.connections} -d{args.duration}, server on CPU {args.server_cpu}, wrk on CPU {args.client_cpu}",
        f"round under perf: {res['rps']:,.0f} req/s, server CPU {cpu_s / res['requests'] * 1e6:.2f} us per request ({res['requests']:,} requests)",
        *summary(entries, args.top),
        f"files: {data}, {stem.with_suffix('.report.txt')}, {folded}, {svg}",
    ]
    summary_path = stem.with_suffix(".txt")
    summary_path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

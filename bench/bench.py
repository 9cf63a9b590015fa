#!/usr/bin/env python3
"""Measures hello-k8s beside the Flask origin and the nginx ceiling, in one interleaved run.

bench/run.sh installs the tools and builds the binary, then runs this with the venv's Python.
Every server binds 127.0.0.1 and every client targets 127.0.0.1; every load is bounded by a
fixed duration, and every process this starts is killed on exit (its own process group).

Phases, all systems measured in the same run:
  1. start every system once; check that `GET /` answers the greeting; idle RSS;
  2. warm-up, then ROUNDS rounds; in each round each system in turn (the order rotates per
     round) gets the same wrk load on `GET /` while probe.py times readiness probes;
  3. RSS after the load; stop everything;
  4. start-up time, exec to the first 200 on the readiness path, STARTUP_RUNS times each,
     interleaved.
Raw results go to bench/.work/results.json; report.py renders the table, BENCHMARKS.md and
the chart from it.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import functools
import gzip
import importlib.metadata
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
GREETING = b"Hello World from Kubernetes!"
BENCH_DIR = Path(__file__).resolve().parent
ORIGIN_DIR = BENCH_DIR / "origin"

# Other work's share of the machine's CPU time during a run above which the run is disturbed:
# measured again (main section, cpu section), and the goals are not judged on it (goals.py).
NOISE_MAX = 0.1
# The busy share under which wait_for_quiet deems the machine calm enough to start.
QUIET_BUSY_MAX = 0.25

# Every process group this run started; killed on any exit.
_GROUPS: set[int] = set()


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def kill_all() -> None:
    for pgid in list(_GROUPS):
        _kill_group(pgid, signal.SIGKILL)
    _GROUPS.clear()


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _on_signal(signum: int, _frame: object) -> None:
    kill_all()
    sys.exit(128 + signum)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def http_get(port: int, path: str, timeout: float = 1.0) -> tuple[int, bytes]:
    """`GET path` on a fresh connection to loopback; (status, body)."""
    req = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n"
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(req.encode("ascii"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    parts = head.split(b"\r\n", 1)[0].split()
    if len(parts) < 2 or not parts[1].isdigit():
        raise ValueError(f"not an HTTP response: {data[:80]!r}")
    if b"transfer-encoding: chunked" in head.lower():
        body = _dechunk(body)
    return int(parts[1]), body


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return out


# ------------------------------------------------------------------------------- systems


@dataclass
class System:
    key: str
    label: str
    ready_path: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    kind: str  # origin | ceiling | service
    note: str = ""
    port: int = 0
    # hello-k8s serves its probes on a listener of its own (PROBE_PORT); 0: on `port`.
    probe_port: int = 0
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    nginx_prefix: Path | None = None

    def command(self, port: int) -> list[str]:
        return [a.replace("@PORT@", str(port)) for a in self.argv]

    def environment(self, port: int) -> dict[str, str]:
        return {k: v.replace("@PORT@", str(port)).replace("@PROBE_PORT@", str(self.probe_port)) for k, v in self.env.items()}

    def probe_target(self, port: int) -> int:
        """Where the kubelet's probes go: the probe listener when the system has one."""
        return self.probe_port or port


def base_env() -> dict[str, str]:
    # A clean environment: nothing from the caller's shell (RUST_LOG, ENV, PORT...) leaks in.
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": os.environ.get("HOME", "/tmp")}


def make_systems(args: argparse.Namespace, work: Path) -> list[System]:
    venv_bin = Path(sys.executable).parent
    workers = str(args.workers)
    service_common = {
        "HOST": HOST,
        "PORT": "@PORT@",
        "PROBE_PORT": "@PROBE_PORT@",
        "WORKERS": workers,
        # The bench stops servers many times; the drain delay matters in a cluster, not here.
        "DRAIN_DELAY_SECONDS": "0",
        "SHUTDOWN_TIMEOUT_SECONDS": "1",
    }
    nginx_prefix = work / "nginx"
    return [
        System(
            key="flask-dev",
            label="Flask dev server (origin)",
            ready_path="/",
            argv=[str(venv_bin / "flask"), "--app", "app", "run", "--host", HOST, "--port", "@PORT@"],
            env=base_env(),
            cwd=ORIGIN_DIR,
            kind="origin",
            note="the origin's app.py as it ran (threaded dev server); no /readyz, probes hit /",
        ),
        System(
            key="gunicorn-2w",
            label=f"Flask on gunicorn, {workers} workers",
            ready_path="/",
            argv=[str(venv_bin / "gunicorn"), "-w", workers, "-b", f"{HOST}:@PORT@", "app:app"],
            env=base_env(),
            cwd=ORIGIN_DIR,
            kind="origin",
            note="same app.py, sync workers; no /readyz, probes hit /",
        ),
        System(
            key="nginx",
            label=f"nginx return 200 ({workers} workers, ceiling)",
            ready_path="/readyz",
            argv=["nginx", "-p", str(nginx_prefix), "-e", str(nginx_prefix / "error.log"), "-c", str(nginx_prefix / "nginx-@PORT@.conf")],
            env=base_env(),
            cwd=work,
            kind="ceiling",
            note="static `return 200` from configuration, access_log off",
            nginx_prefix=nginx_prefix,
        ),
        System(
            key="hello-k8s-bare",
            label="hello-k8s, bare",
            ready_path="/readyz",
            argv=[args.bin],
            env=base_env() | service_common | {"ENV": "development", "LOG_FORMAT": "text", "LOG_LEVEL": "warn", "METRICS_ENABLED": "false"},
            cwd=work,
            kind="service",
            note="ENV=development LOG_FORMAT=text LOG_LEVEL=warn METRICS_ENABLED=false",
        ),
        System(
            key="hello-k8s-prod",
            label="hello-k8s, production config",
            ready_path="/readyz",
            argv=[args.bin],
            env=base_env()
            | service_common
            | {"ENV": "production", "API_KEY": "bench-key", "LOG_FORMAT": "json", "LOG_LEVEL": "info", "METRICS_ENABLED": "true"},
            cwd=work,
            kind="service",
            note="ENV=production LOG_FORMAT=json LOG_LEVEL=info METRICS_ENABLED=true (logs to a file)",
        ),
    ]


# nginx's own defaults, which the main section keeps; the scale section raises them.
NGINX_DEFAULTS = {"WORKER_CONNECTIONS": 1024, "NOFILE": 2048, "BACKLOG": 511}


def write_nginx_conf(system: System, port: int, workers: int, tuning: dict[str, int] | None = None) -> None:
    prefix = system.nginx_prefix
    assert prefix is not None
    prefix.mkdir(parents=True, exist_ok=True)
    conf = (BENCH_DIR / "nginx.conf.in").read_text()
    values = NGINX_DEFAULTS | (tuning or {}) | {"WORKERS": workers, "PORT": port, "PREFIX": prefix}
    for name, value in values.items():
        conf = conf.replace(f"@{name}@", str(value))
    leftover = re.findall(r"@[A-Z_]+@", conf)
    if leftover:
        raise RuntimeError(f"bench/nginx.conf.in: placeholders left unfilled: {leftover}")
    (prefix / f"nginx-{port}.conf").write_text(conf)


def spawn(
    system: System, port: int, workers: int, log_path: Path, nginx_tuning: dict[str, int] | None = None, cpus: str = ""
) -> subprocess.Popen:
    """Starts a system in its own process group; `cpus` pins it with taskset (e.g. "0")."""
    if system.nginx_prefix is not None:
        write_nginx_conf(system, port, workers, nginx_tuning)
    if "@PROBE_PORT@" in system.env.values():
        system.probe_port = free_port()
    # Append mode, so the bench can truncate the log between runs while the server writes.
    out = open(log_path, "ab")  # noqa: SIM115 - owned by the child from here on
    try:
        proc = subprocess.Popen(
            (["taskset", "-c", cpus] if cpus else []) + system.command(port),
            env=system.environment(port),
            cwd=system.cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        out.close()
    _GROUPS.add(proc.pid)
    return proc


def stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM to the whole group, SIGKILL after `grace` seconds; waits until it is gone."""
    _kill_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid, signal.SIGKILL)
        proc.wait()
    # Workers of a multi-process server may outlive the master by a moment.
    deadline = time.monotonic() + grace
    while group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    _kill_group(proc.pid, signal.SIGKILL)
    _GROUPS.discard(proc.pid)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_ready(proc: subprocess.Popen, port: int, path: str, timeout: float, poll: float) -> float:
    """Polls `GET path` until a 200; returns perf_counter() of the answer's arrival."""
    deadline = time.perf_counter() + timeout
    while True:
        try:
            status, _ = http_get(port, path, timeout=1.0)
            if status == 200:
                return time.perf_counter()
        except (ConnectionRefusedError, ConnectionResetError):
            pass
        except (OSError, ValueError):
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"exited with status {proc.returncode} before answering 200 on {path}")
        if time.perf_counter() > deadline:
            raise RuntimeError(f"no 200 on {path} within {timeout} s")
        time.sleep(poll)


# ------------------------------------------------------------------------------- /proc


def tree_pids(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: split after the last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _status_kb(pid: int, field_name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(root: int) -> float:
    """User + system CPU time of the process tree so far (live processes, all threads)."""
    ticks = 0
    for pid in tree_pids(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command name: state is field 3 of stat(5), utime 14 and stime 15.
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


@functools.cache
def irq_time_charged_to_tasks() -> bool:
    """Whether the kernel charges interrupt and softirq time to the task it interrupted.

    Without CONFIG_IRQ_TIME_ACCOUNTING (tick-based or virtual accounting) a tick that lands in
    a softirq goes to the interrupted task's stime and to /proc/stat's softirq field, not its
    system field; with it (unless booted with tsc=noirqtime) it goes to no task. Read from the
    kernel's configuration (/proc/config.gz or /boot/config-RELEASE); when neither is readable,
    charged is assumed (the noise then reads higher, never lower)."""
    release = platform.release()
    text = ""
    try:
        text = gzip.decompress(Path("/proc/config.gz").read_bytes()).decode(errors="replace")
    except OSError:
        try:
            text = Path(f"/boot/config-{release}").read_text(errors="replace")
        except OSError:
            return True
    if "CONFIG_IRQ_TIME_ACCOUNTING=y" not in text.splitlines():
        return True
    try:
        return "noirqtime" in Path("/proc/cmdline").read_text()
    except OSError:
        return False


def machine_cpu() -> tuple[float, float, float]:
    """(task, steal, total) CPU seconds of the whole machine since boot, from /proc/stat.

    task is the time charged to processes, comparable with their own utime + stime: user +
    nice + system, plus irq and softirq (where loopback TCP does much of its work) when the
    kernel charges those to the interrupted task (irq_time_charged_to_tasks), as it does
    without CONFIG_IRQ_TIME_ACCOUNTING. Left out, a server's softirq would be counted in its
    stime but not in the machine's task time, and the other work of a run would read low."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tck = os.sysconf("SC_CLK_TCK")
    task = fields[0] + fields[1] + fields[2]
    if irq_time_charged_to_tasks():
        task += fields[5] + fields[6]
    steal = fields[7] if len(fields) > 7 else 0
    return task / tck, steal / tck, sum(fields[:8]) / tck


def children_cpu() -> float:
    """CPU seconds of this process's waited-for children (wrk, probe.py)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def wait_for_quiet(limit_s: float, busy_max: float = QUIET_BUSY_MAX) -> float:
    """Waits (up to limit_s) until other work on the machine uses under busy_max of its CPUs;
    returns the busy fraction last seen."""
    cpus = os.cpu_count() or 1
    deadline = time.monotonic() + limit_s
    while True:
        b0, _, t0 = machine_cpu()
        time.sleep(1.0)
        b1, _, t1 = machine_cpu()
        busy = (b1 - b0) / max(t1 - t0, 1e-9)
        if busy < busy_max or time.monotonic() > deadline:
            return busy
        log(f"the machine is {busy * 100:.0f}% busy with other work ({cpus} CPUs); waiting for it to calm down")


def memory(root: int) -> dict[str, int]:
    """VmRSS summed over the process tree (what the brief asks), and PSS (shared pages split)."""
    pids = tree_pids(root)
    return {
        "processes": len(pids),
        "rss_kb": sum(_status_kb(p, "VmRSS") for p in pids),
        "pss_kb": sum(_pss_kb(p) for p in pids),
    }


# ------------------------------------------------------------------------------- load


def run_wrk(args: argparse.Namespace, port: int, duration: str) -> dict:
    cmd = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{duration}",
        "--timeout",
        "2s",
        "--latency",
        "-s",
        str(BENCH_DIR / "report.lua"),
        f"http://{HOST}:{port}/",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=parse_seconds(duration) + 60)
    return wrk_record(out, f"wrk -c{args.connections}")


def wrk_record(out: subprocess.CompletedProcess, what: str) -> dict:
    """The BENCH_JSON record a finished wrk printed (bench/report.lua, scale.lua), its req/s and
    its whole output; an error naming `what` if wrk failed or printed none."""
    if out.returncode != 0:
        raise RuntimeError(f"{what} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    match = re.findall(r"^BENCH_JSON (.*)$", out.stdout, re.M)
    if not match:
        raise RuntimeError(f"{what}: wrk printed no result:\n{out.stdout}\n{out.stderr}")
    result = json.loads(match[-1])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["text"] = out.stdout + out.stderr
    return result


def save_results(work: Path, name: str, results: dict) -> Path:
    """work/NAME.json, written atomically, and a dated copy beside it (NAME-YYYYmmdd-HHMMSS.json)."""
    out = work / f"{name}.json"
    with tempfile.NamedTemporaryFile("w", dir=work, delete=False, suffix=".tmp") as tmp:
        tmp.write(json.dumps(results, indent=2) + "\n")
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, out)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    shutil.copy(out, work / f"{name}-{stamp}.json")
    return out


def parse_seconds(duration: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(s|m)?", duration)
    if not m:
        raise ValueError(f"duration {duration!r}: expected e.g. 10s or 1m")
    return float(m.group(1)) * (60 if m.group(2) == "m" else 1)


def parse_levels(parser: argparse.ArgumentParser, text: str, maximum: int) -> list[int]:
    """`--levels`: comma-separated connection counts, each from 1 to `maximum`; refused through
    `parser` otherwise (the argument every pinned section takes)."""
    try:
        levels = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        parser.error(f"--levels {text!r}: expected comma-separated connection counts, e.g. {parser.get_default('levels')}")
    if not levels or min(levels) < 1 or max(levels) > maximum:
        parser.error(f"--levels {text!r}: every count must be between 1 and {maximum} connections")
    return levels


def check_binary_and_durations(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuses (through `parser`) a --duration or --warmup that is no duration, and a --bin
    that is no executable: the arguments every pinned section takes."""
    for name in ("duration", "warmup"):
        try:
            parse_seconds(getattr(args, name))
        except ValueError as err:
            parser.error(f"--{name}: {err}")
    if not os.access(args.bin, os.X_OK):
        parser.error(f"--bin {args.bin}: not an executable file")


def measured_run(args: argparse.Namespace, system: System) -> dict:
    """wrk saturates `GET /` while probe.py times readiness probes on fresh connections."""
    seconds = parse_seconds(args.duration)
    # The probes start after wrk has ramped up and stop before it winds down.
    probe = subprocess.Popen(
        [sys.executable, str(BENCH_DIR / "probe.py"), "--port", str(system.probe_target(system.port)), "--path", system.ready_path,
         "--interval", str(args.probe_interval), "--delay", "1", "--duration", str(max(seconds - 2.0, 1.0))],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    _GROUPS.add(probe.pid)
    assert system.proc is not None
    cpu_before = cpu_seconds(system.proc.pid)
    machine_before, steal_before, _ = machine_cpu()
    clients_before = children_cpu()
    try:
        result = run_wrk(args, system.port, args.duration)
        out, _ = probe.communicate(timeout=seconds + 30)
    finally:
        _GROUPS.discard(probe.pid)
    result["server_cpu_s"] = cpu_seconds(system.proc.pid) - cpu_before
    machine_after, steal_after, _ = machine_cpu()
    result["client_cpu_s"] = children_cpu() - clients_before
    # CPU time of processes other than the server and its clients (other jobs, kernel
    # threads): the noise indicator of the round.
    result["other_cpu_s"] = max(0.0, (machine_after - machine_before) - result["server_cpu_s"] - result["client_cpu_s"])
    result["steal_s"] = steal_after - steal_before
    probes = json.loads(out)
    lat = sorted(probes["latencies_us"])
    result["probe"] = {
        "path": probes["path"],
        "count": len(lat),
        "failures": len(probes["failures"]),
        "failure_kinds": sorted(set(probes["failures"])),
        "p50_us": percentile(lat, 50),
        "p99_us": percentile(lat, 99),
        "max_us": lat[-1] if lat else None,
        "latencies_us": probes["latencies_us"],
    }
    result["served"] = result["requests"] + len(lat)
    return result


def percentile(sorted_values: list[int], p: float) -> int | None:
    """Nearest-rank percentile."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


# ------------------------------------------------------------------------------- machine


def tool_version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "n/a"
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0].strip() if text else "n/a"


def machine_info(args: argparse.Namespace) -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = _meminfo_kb("MemTotal")
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": tool_version(["nproc"]),
        "cpu": cpu,
        "memory_gib": round(mem_kb / 1024 / 1024, 1) if mem_kb else None,
        "kernel": platform.release(),
        "os": _os_release(),
        "rustc": tool_version(["rustc", "--version"]),
        "wrk": tool_version(["wrk", "-v"]).split(" [")[0],
        "nginx": tool_version(["nginx", "-v"]).replace("nginx version: ", ""),
        "python": platform.python_version(),
        "flask": importlib.metadata.version("flask"),
        "werkzeug": importlib.metadata.version("werkzeug"),
        "gunicorn": importlib.metadata.version("gunicorn"),
        "git": tool_version(["git", "-C", str(BENCH_DIR), "rev-parse", "--short", "HEAD"]),
        "git_status_service": service_dirty(),
    }


def service_dirty() -> bool:
    """True when service/ or contract/ has uncommitted changes (the binary is then not the commit's)."""
    out = subprocess.run(
        ["git", "-C", str(BENCH_DIR.parent), "status", "--porcelain", "--", "service", "contract"],
        capture_output=True,
        text=True,
    )
    return bool(out.stdout.strip())


def _meminfo_kb(key: str) -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _os_release() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return "unknown"


def docker_image_size() -> str:
    if shutil.which("docker") is None:
        return "n/a: no Docker engine"
    info = subprocess.run(["docker", "info"], capture_output=True, timeout=20)
    if info.returncode != 0:
        return "n/a: no Docker engine"
    # The image is built by `make build`; the bench measures what exists, it does not build it.
    image = os.environ.get("BENCH_IMAGE", "")
    if not image:
        return "n/a: no image named (BENCH_IMAGE)"
    out = subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", image], capture_output=True, text=True, timeout=20)
    if out.returncode != 0:
        return f"n/a: image {image} not built"
    return out.stdout.strip()


# ------------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description="hello-k8s beside the origin and the ceiling")
    parser.add_argument("--bin", required=True, help="the release hello-k8s binary")
    parser.add_argument("--work", default=str(BENCH_DIR / ".work"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", default="8s", help="wrk -d, the same for every system")
    parser.add_argument("--warmup", default="2s")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="service WORKERS, gunicorn -w and nginx worker_processes")
    parser.add_argument("--probe-interval", type=float, default=0.01)
    parser.add_argument("--startup-runs", type=int, default=10)
    parser.add_argument("--startup-poll", type=float, default=0.0005, help="seconds between start-up polls")
    parser.add_argument("--quiet-wait", type=float, default=30, help="seconds to wait at most for other work to stop")
    parser.add_argument("--noise-max", type=float, default=NOISE_MAX, help="other work's share of the CPUs that makes a run be redone")
    parser.add_argument("--only", default="", help="comma-separated system keys (default: all)")
    args = parser.parse_args()

    work = Path(args.work).resolve()
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    atexit.register(kill_all)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    systems = make_systems(args, work)
    if args.only:
        wanted = set(args.only.split(","))
        systems = [s for s in systems if s.key in wanted]
    results: dict = {
        "settings": {
            "rounds": args.rounds,
            "duration": args.duration,
            "warmup": args.warmup,
            "threads": args.threads,
            "connections": args.connections,
            "workers": args.workers,
            "probe_interval_s": args.probe_interval,
            "startup_runs": args.startup_runs,
            "startup_poll_s": args.startup_poll,
            "noise_max": args.noise_max,
            "command": "make bench",
        },
        "machine": machine_info(args),
        "binary": {"path": args.bin, "bytes": os.stat(args.bin).st_size},
        "image": docker_image_size(),
        "systems": {s.key: {"label": s.label, "kind": s.kind, "note": s.note, "ready_path": s.ready_path, "rounds": []} for s in systems},
    }

    # 1. Start everything, check the answer, idle memory.
    for s in systems:
        s.port = free_port()
        s.log_path = logs / f"{s.key}.log"
        s.log_path.write_bytes(b"")
        log(f"starting {s.key} on {HOST}:{s.port}")
        s.proc = spawn(s, s.port, args.workers, s.log_path)
        try:
            wait_ready(s.proc, s.port, s.ready_path, timeout=30, poll=0.01)
        except RuntimeError as err:
            raise RuntimeError(f"{s.key}: {err}; its output is in {s.log_path}") from None
        status, body = http_get(s.port, "/")
        if status != 200 or body.strip() != GREETING:
            raise RuntimeError(f"{s.key}: GET / answered {status} {body[:80]!r}, expected 200 {GREETING!r}")
    time.sleep(1.0)
    for s in systems:
        assert s.proc is not None
        results["systems"][s.key]["idle_memory"] = memory(s.proc.pid)

    # 2. Warm-up, then the interleaved rounds, on a machine as quiet as we can get it.
    results["background_busy"] = wait_for_quiet(args.quiet_wait)
    for s in systems:
        log(f"warm-up {s.key} ({args.warmup})")
        run_wrk(args, s.port, args.warmup)
    for r in range(args.rounds):
        order = systems[r % len(systems) :] + systems[: r % len(systems)]
        for s in order:
            assert s.proc is not None and s.log_path is not None
            if s.proc.poll() is not None:
                raise RuntimeError(f"{s.key} exited with status {s.proc.returncode}")
            res = measured_run(args, s)
            # Another job took a share of the CPUs during the run: measure it again once the
            # machine is quiet (at most twice), and record that it happened.
            budget = args.noise_max * parse_seconds(args.duration) * (os.cpu_count() or 1)
            attempts = 1
            while res["other_cpu_s"] > budget and attempts < 3:
                log(f"{s.key}: {res['other_cpu_s']:.1f} CPU-s of other work during the run; measuring again")
                wait_for_quiet(args.quiet_wait)
                os.truncate(s.log_path, 0)
                res = measured_run(args, s)
                attempts += 1
            res["attempts"] = attempts
            res["noisy"] = res["other_cpu_s"] > budget
            res["log_bytes"] = s.log_path.stat().st_size
            # Keep the disk bounded: the logs were written, their size is recorded.
            os.truncate(s.log_path, 0)
            res["memory_after"] = memory(s.proc.pid)
            text = res.pop("text")
            (work / f"wrk-{s.key}-round{r + 1}.txt").write_text(text)
            results["systems"][s.key]["rounds"].append(res)
            errs = sum(res["errors"].values())
            log(
                f"round {r + 1}/{args.rounds} {s.key:15} {res['rps']:>10.0f} req/s  p50 {res['latency_us']['p50'] / 1000:.2f} ms"
                f"  p99 {res['latency_us']['p99'] / 1000:.2f} ms  probe p99 {res['probe']['p99_us'] / 1000:.2f} ms"
                + f"  cpu {res['server_cpu_s'] / res['served'] * 1e6:.1f} us/req"
                + (f"  errors {res['errors']}" if errs else "")
            )

    # 3. Memory after the load, then stop.
    for s in systems:
        assert s.proc is not None
        results["systems"][s.key]["loaded_memory"] = memory(s.proc.pid)
        stop(s.proc)

    # 4. Start-up, interleaved, fresh port each time.
    floor = []
    for i in range(args.startup_runs):
        t0 = time.perf_counter()
        subprocess.run(["true"], check=True)
        floor.append(time.perf_counter() - t0)
        for s in systems:
            port = free_port()
            assert s.log_path is not None
            t0 = time.perf_counter()
            proc = spawn(s, port, args.workers, s.log_path)
            try:
                t1 = wait_ready(proc, port, s.ready_path, timeout=30, poll=args.startup_poll)
            except RuntimeError as err:
                raise RuntimeError(f"{s.key}: {err}; its output is in {s.log_path}") from None
            finally:
                stop(proc)
            results["systems"][s.key].setdefault("startup_s", []).append(t1 - t0)
        log(f"start-up run {i + 1}/{args.startup_runs}: " + ", ".join(f"{s.key} {results['systems'][s.key]['startup_s'][-1] * 1000:.1f} ms" for s in systems))
    results["spawn_floor_s"] = statistics.median(floor)

    log(f"raw results: {save_results(work, 'results', results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

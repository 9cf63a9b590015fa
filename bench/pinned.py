"""The pinned pair: hello-k8s and nginx, each alone on one CPU, as every section that pins its
servers runs them (scale.py, cpu.py, profiler.py).

  - nginx answering the greeting from configuration (bench/nginx.conf.in), 1 worker,
    `access_log off`, its worker_connections raised to the largest load and its listen backlog
    set to actix's default (2048);
  - hello-k8s in its production configuration with WORKERS=1 and the Deployment's memory
    limit in MEMORY_LIMIT_BYTES (what the downward API hands the pod);
  - any number of other hello-k8s builds given as LABEL=PATH (an allocator or connection-cap
    experiment), measured beside them.

The server runs on one CPU (taskset) and wrk on the other, so the two never share a core.
"""

from __future__ import annotations

import os
import resource
import shutil
from pathlib import Path

import bench as core
from bench import HOST, System

# actix-web's default listen backlog; nginx gets the same so that both queue a burst alike.
BACKLOG = 2048
# The Deployment's memory limit (contract::resources::MEMORY_LIMIT_BYTES, 128 MiB).
MEMORY_LIMIT_BYTES = 128 * 1024 * 1024
# Keys of the pair, as the reports name them.
CEILING = "nginx-1w"
SERVICE = "hello-k8s"


def make_systems(binary: str, variants: list[str], max_connections: int, work: Path, nginx_dir: str) -> list[System]:
    """nginx, hello-k8s (`binary`) and every `LABEL=PATH` variant; nginx's files go to work/nginx_dir."""
    service_env = core.base_env() | {
        "HOST": HOST,
        "PORT": "@PORT@",
        "PROBE_PORT": "@PROBE_PORT@",
        "WORKERS": "1",
        "ENV": "production",
        "API_KEY": "bench-key",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "info",
        "METRICS_ENABLED": "true",
        "MEMORY_LIMIT_BYTES": str(MEMORY_LIMIT_BYTES),
        "DRAIN_DELAY_SECONDS": "0",
        "SHUTDOWN_TIMEOUT_SECONDS": "1",
    }
    note = f"production configuration, WORKERS=1, MEMORY_LIMIT_BYTES={MEMORY_LIMIT_BYTES} (128Mi)"
    nginx_prefix = work / nginx_dir
    systems = [
        System(
            key=CEILING,
            label="nginx return 200 (1 worker)",
            ready_path="/readyz",
            argv=["nginx", "-p", str(nginx_prefix), "-e", str(nginx_prefix / "error.log"), "-c", str(nginx_prefix / "nginx-@PORT@.conf")],
            env=core.base_env(),
            cwd=work,
            kind="ceiling",
            note=f"worker_processes 1, worker_connections {max_connections + 1024}, backlog={BACKLOG}, access_log off",
            nginx_prefix=nginx_prefix,
        ),
        System(
            key=SERVICE,
            label="hello-k8s (this tree)",
            ready_path="/readyz",
            argv=[binary],
            env=service_env,
            cwd=work,
            kind="service",
            note=note,
        ),
    ]
    for variant in variants:
        label, _, path = variant.partition("=")
        if not label or not path or not os.access(path, os.X_OK):
            raise SystemExit(f"bench: --variant {variant!r}: expected LABEL=PATH of an executable server build (hello-k8s, or bench/floor)")
        systems.append(
            System(
                key=f"{SERVICE}-{label}",
                label=f"hello-k8s, {label}",
                ready_path="/readyz",
                argv=[str(Path(path).resolve())],
                env=service_env,
                cwd=work,
                kind="variant",
                note=f"{note}; binary {Path(path).name}",
            )
        )
    return systems


def nginx_tuning(max_connections: int, nofile: int) -> dict[str, int]:
    """nginx.conf.in's values for a load of up to `max_connections` keep-alive connections."""
    return {"WORKER_CONNECTIONS": max_connections + 1024, "NOFILE": nofile, "BACKLOG": BACKLOG}


def nofile_for(max_connections: int) -> int:
    """The soft open-files limit, checked against what `max_connections` needs (server, wrk)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = max_connections + 1024
    if soft < need:
        raise SystemExit(f"bench: the open-files limit is {soft} (hard {hard}); {max_connections} connections need {need}: raise it with `ulimit -n {need}`")
    return soft


def check_tools_and_cpus(server_cpu: str, client_cpu: str) -> None:
    """wrk, nginx and taskset on PATH, and both CPUs available to this process."""
    for tool in ("wrk", "nginx", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench: {tool} not found on PATH (bench/run.sh installs wrk and nginx; taskset is in util-linux)")
    cpus = sorted(os.sched_getaffinity(0))
    for cpu in (server_cpu, client_cpu):
        if not cpu.isdigit() or int(cpu) not in cpus:
            raise SystemExit(f"bench: CPU {cpu} is not available to this process (available: {cpus}); set --server-cpu/--client-cpu")
    if server_cpu == client_cpu:
        raise SystemExit(f"bench: the server and wrk would share CPU {server_cpu}; give them two different CPUs")

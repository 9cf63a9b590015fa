#!/usr/bin/env python3
"""Renders bench.py's raw results: the terminal table, BENCHMARKS.md and the chart.

    report.py bench/.work/results.json --markdown BENCHMARKS.md --chart docs/bench.png \
        --cpu bench/.work/cpu.json \
        --scale bench/.work/scale.json --scale-chart docs/bench-scale.png

Every figure of the main section is the median over the rounds of one run (the systems
interleaved), and every ratio is taken within that run; cpu_report.py renders the cpu section
and scale_report.py the connection-scale section. A section without new results keeps its
text from the existing BENCHMARKS.md (between its markers). bench/findings.md (hand-written:
profiling notes and what was tried) is appended to BENCHMARKS.md as it is.

With --cpu or --scale it ends with the goals of goals.py (judged from those results) and
exits 1 when one is missed on a quiet machine, unless CI=true.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cpu_report
import goals
import scale_report
from fmt import md_table, mb, text_table, verdict

BENCH_DIR = Path(__file__).resolve().parent
ORIGIN, GUNICORN, CEILING, BARE, PROD = "flask-dev", "gunicorn-2w", "nginx", "hello-k8s-bare", "hello-k8s-prod"


@dataclass
class Row:
    key: str
    label: str
    kind: str
    note: str
    ready_path: str
    rps: float
    rps_min: float
    rps_max: float
    p50_ms: float
    p99_ms: float
    probe_p99_ms: float
    cpu_us: float
    probe_failures: int
    probe_count: int
    errors: int
    startup_ms: float
    startup_min_ms: float
    startup_max_ms: float
    idle_mb: float
    loaded_mb: float
    idle_pss_mb: float
    loaded_pss_mb: float
    processes: int
    log_mb_per_round: float
    other_cpu_s: float
    redone: int
    noisy: int
    client_cpu_s: float
    server_cpu_share: float


def rows_of(results: dict) -> dict[str, Row]:
    rows = {}
    for key, s in results["systems"].items():
        rounds = s["rounds"]
        startup = [t * 1000 for t in s["startup_s"]]
        # Tail percentiles need samples: the probes of every round are pooled.
        pooled = sorted(v for r in rounds for v in r["probe"]["latencies_us"])
        rows[key] = Row(
            key=key,
            label=s["label"],
            kind=s["kind"],
            note=s["note"],
            ready_path=s["ready_path"],
            rps=statistics.median(r["rps"] for r in rounds),
            rps_min=min(r["rps"] for r in rounds),
            rps_max=max(r["rps"] for r in rounds),
            p50_ms=statistics.median(r["latency_us"]["p50"] for r in rounds) / 1000,
            p99_ms=statistics.median(r["latency_us"]["p99"] for r in rounds) / 1000,
            probe_p99_ms=percentile(pooled, 99) / 1000,
            cpu_us=statistics.median(r["server_cpu_s"] / r["served"] * 1e6 for r in rounds),
            probe_failures=sum(r["probe"]["failures"] for r in rounds),
            probe_count=sum(r["probe"]["count"] for r in rounds),
            errors=sum(sum(r["errors"].values()) for r in rounds),
            startup_ms=statistics.median(startup),
            startup_min_ms=min(startup),
            startup_max_ms=max(startup),
            idle_mb=mb(s["idle_memory"]["rss_kb"]),
            loaded_mb=mb(s["loaded_memory"]["rss_kb"]),
            idle_pss_mb=mb(s["idle_memory"]["pss_kb"]),
            loaded_pss_mb=mb(s["loaded_memory"]["pss_kb"]),
            processes=s["idle_memory"]["processes"],
            log_mb_per_round=statistics.median(r["log_bytes"] for r in rounds) / 1e6,
            other_cpu_s=max(r["other_cpu_s"] for r in rounds),
            redone=sum(r.get("attempts", 1) - 1 for r in rounds),
            noisy=sum(1 for r in rounds if r.get("noisy")),
            client_cpu_s=statistics.median(r["client_cpu_s"] for r in rounds),
            server_cpu_share=statistics.median(
                r["server_cpu_s"] / max(r["server_cpu_s"] + r["client_cpu_s"], 1e-9) for r in rounds
            ),
        )
    return rows


def percentile(sorted_values: list[int], p: float) -> float:
    """Nearest-rank percentile (as bench.py computes it per round)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


def paired(results: dict, a: str, b: str) -> float | None:
    """Median over rounds of a's req/s divided by b's in the same round.

    The systems of one round run back to back, so a round's ratio shares that moment's
    machine; the throughput of this VM drifts by tens of percent between rounds."""
    sa, sb = results["systems"].get(a), results["systems"].get(b)
    if not sa or not sb:
        return None
    return statistics.median(x["rps"] / y["rps"] for x, y in zip(sa["rounds"], sb["rounds"]))


def fmt_ratio(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:,.0f}x" if x >= 100 else f"{x:.2f}x"


def ratio(a: float, b: float | None) -> str:
    if not b:
        return "n/a"
    x = a / b
    return f"{x:,.0f}x" if x >= 100 else f"{x:.2f}x"


def fmt_rps(x: float) -> str:
    return f"{x:,.0f}"


def fmt_ms(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


# ------------------------------------------------------------------------------- targets


def targets(rows: dict[str, Row], results: dict) -> list[tuple[str, str, bool | None]]:
    """(target, measured, passed); passed is None when a system needed for it is missing."""
    out: list[tuple[str, str, bool | None]] = []
    bare, prod = rows.get(BARE), rows.get(PROD)
    ceiling, origin = rows.get(CEILING), rows.get(ORIGIN)

    def add(name: str, ok: bool | None, measured: str) -> None:
        out.append((name, measured, ok))

    if bare and ceiling:
        x = paired(results, BARE, CEILING)
        add("bare GET / >= 0.8x nginx", x >= 0.8, f"{x:.2f}x (medians {fmt_rps(bare.rps)} vs {fmt_rps(ceiling.rps)} req/s)")
    else:
        add("bare GET / >= 0.8x nginx", None, "n/a")
    if bare and prod:
        x = paired(results, PROD, BARE)
        add("production >= 0.9x bare", x >= 0.9, f"{x:.2f}x (medians {fmt_rps(prod.rps)} vs {fmt_rps(bare.rps)} req/s)")
    else:
        add("production >= 0.9x bare", None, "n/a")
    svc = [r for r in (bare, prod) if r]
    if svc and origin:
        x = min(paired(results, r.key, ORIGIN) for r in svc)
        detail = " / ".join(f"{'bare' if r.key == BARE else 'prod'} {paired(results, r.key, ORIGIN):,.0f}x" for r in svc)
        add(">= 100x the Flask dev server", x >= 100, detail)
    else:
        add(">= 100x the Flask dev server", None, "n/a")

    def both(name: str, value: callable, limit: float, unit: str) -> None:
        if not svc:
            add(name, None, "n/a")
            return
        ok = all(value(r) < limit for r in svc)
        detail = " / ".join(f"{'bare' if r.key == BARE else 'prod'} {value(r):.2f} {unit}" for r in svc)
        add(name, ok, detail)

    both("/readyz p99 under saturation < 10 ms", lambda r: r.probe_p99_ms, 10, "ms")
    both("start-up to ready < 20 ms", lambda r: r.startup_ms, 20, "ms")
    both("idle RSS < 10 MB", lambda r: r.idle_mb, 10, "MB")
    return out


# ------------------------------------------------------------------------------- text


COLUMNS = [
    "system",
    "GET / req/s",
    "x origin",
    "x nginx",
    "CPU us/req",
    "p50 ms",
    "p99 ms",
    "ready p99 ms",
    "start-up ms",
    "idle RSS MB",
    "loaded RSS MB",
]


def table_rows(rows: dict[str, Row], results: dict) -> list[list[str]]:
    out = []
    for r in rows.values():
        out.append(
            [
                r.key,
                fmt_rps(r.rps),
                fmt_ratio(paired(results, r.key, ORIGIN)),
                fmt_ratio(paired(results, r.key, CEILING)),
                f"{r.cpu_us:.1f}",
                fmt_ms(r.p50_ms),
                fmt_ms(r.p99_ms),
                fmt_ms(r.probe_p99_ms) + ("" if r.ready_path == "/readyz" else " (/)"),
                fmt_ms(r.startup_ms),
                f"{r.idle_mb:.1f}",
                f"{r.loaded_mb:.1f}",
            ]
        )
    return out


def terminal_table(rows: dict[str, Row], results: dict) -> str:
    return text_table(COLUMNS, table_rows(rows, results), left=(0,))


def markdown(results: dict, rows: dict[str, Row], chart: str | None) -> str:
    st, m = results["settings"], results["machine"]
    origin, gunicorn, ceiling = rows.get(ORIGIN), rows.get(GUNICORN), rows.get(CEILING)
    bare, prod = rows.get(BARE), rows.get(PROD)
    binary_mb = results["binary"]["bytes"] / 1e6
    out: list[str] = []
    out.append(
        f"Measured by `make bench` (section `main`) on {m['date']} at commit `{m['git']}`"
        + (" (with uncommitted changes in service/ or contract/)" if m.get("git_status_service") else "")
        + " (see "
        "[Reproduce](#reproduce)). All numbers of this section come from this one run: the systems were "
        "measured interleaved, on one machine, over loopback.\n"
    )
    if chart:
        out.append(f"![hello-k8s beside the Flask origin and the nginx ceiling]({chart})\n")

    out.append("## Summary\n")
    if bare and prod and origin and ceiling:
        lines = [
            f"- `GET /` throughput: hello-k8s serves **{fmt_rps(bare.rps)} req/s** bare and "
            f"**{fmt_rps(prod.rps)} req/s** in its production configuration: "
            f"**{fmt_ratio(paired(results, BARE, ORIGIN))}** / **{fmt_ratio(paired(results, PROD, ORIGIN))}** the Flask development server "
            f"({fmt_rps(origin.rps)} req/s)"
            + (f", {fmt_ratio(paired(results, BARE, GUNICORN))} / {fmt_ratio(paired(results, PROD, GUNICORN))} Flask on gunicorn ({fmt_rps(gunicorn.rps)} req/s)" if gunicorn else "")
            + f", and **{fmt_ratio(paired(results, BARE, CEILING))}** / **{fmt_ratio(paired(results, PROD, CEILING))}** the nginx ceiling ({fmt_rps(ceiling.rps)} req/s).",
            f"- Server CPU time per request, the cost that does not depend on the load generator: "
            f"{bare.cpu_us:.1f} us bare, {prod.cpu_us:.1f} us production, {ceiling.cpu_us:.1f} us for nginx, "
            f"{origin.cpu_us:,.0f} us for the origin"
            + (f" and {gunicorn.cpu_us:,.0f} us on gunicorn" if gunicorn else "")
            + f": {1e6 / prod.cpu_us:,.0f} requests per CPU-second in production against {1e6 / origin.cpu_us:,.0f} "
            f"({ratio(origin.cpu_us, prod.cpu_us)} the requests per CPU-second).",
            f"- Instrumentation (JSON logs at info, Prometheus metrics on) changes throughput by "
            f"{(paired(results, PROD, BARE) - 1) * 100:+.0f}% and CPU per request by {(prod.cpu_us / bare.cpu_us - 1) * 100:+.0f}%.",
            f"- Latency under that load (64 connections): p99 {fmt_ms(bare.p99_ms)} ms bare, {fmt_ms(prod.p99_ms)} ms production, "
            f"{fmt_ms(origin.p99_ms)} ms for the origin; a readiness probe answers within "
            f"{fmt_ms(prod.probe_p99_ms)} ms (p99, production) while `/` is saturated.",
            f"- Start-up, exec to the first 200 on `/readyz`: {fmt_ms(bare.startup_ms)} ms bare, "
            f"{fmt_ms(prod.startup_ms)} ms production, against {fmt_ms(origin.startup_ms)} ms for the origin "
            f"({ratio(origin.startup_ms, prod.startup_ms)} faster).",
            f"- Memory: {bare.idle_mb:.1f} MB / {prod.idle_mb:.1f} MB RSS idle, {bare.loaded_mb:.1f} MB / "
            f"{prod.loaded_mb:.1f} MB after the load, against {origin.idle_mb:.1f} MB / {origin.loaded_mb:.1f} MB "
            f"for the origin" + (f" and {gunicorn.idle_mb:.1f} MB / {gunicorn.loaded_mb:.1f} MB for gunicorn" if gunicorn else "") + ".",
            f"- Release binary: {binary_mb:.1f} MB; container image: {results['image']}.",
        ]
        out.append("\n".join(lines) + "\n")

    out.append("## Results\n")
    out.append(
        md_table(
            [
                "system",
                "`GET /` req/s",
                "x origin",
                "x nginx",
                "server CPU us/req",
                "p50 ms",
                "p99 ms",
                "readiness p99 ms under load",
                "start-up ms",
                "idle RSS MB",
                "RSS after load MB",
            ],
            table_rows(rows, results),
        )
        + "\n"
    )
    out.append(
        "Medians over the rounds (throughput and latency) and over the start-up runs; a ratio is the "
        "median over the rounds of that round's ratio (the systems of a round run back to back). `(/)`: the "
        "system has no readiness endpoint, so the probe asked for `/`; hello-k8s's probes go to its probe "
        "listener (`PROBE_PORT`, where the kubelet's go), nginx's to its one port. RSS is VmRSS summed over "
        "the process tree. Release binary: "
        f"{results['binary']['bytes']:,} bytes. Container image: {results['image']}.\n"
    )
    out.append("### Systems\n")
    out.append(md_table(["key", "what", "processes", "configuration"], [[f"`{r.key}`", r.label, str(r.processes), r.note] for r in rows.values()], "llrl") + "\n")

    out.append("## Targets\n")
    out.append("Issue 6's targets, as ratios and values from this run (informational: `make bench` does not fail on a miss).\n")
    out.append(md_table(["target", "measured", "result"], [[t, m_, f"**{verdict(ok)}**"] for t, m_, ok in targets(rows, results)], "llr") + "\n")

    out.append("## Spread\n")
    spread = []
    for r in rows.values():
        spread.append(
            [
                r.key,
                f"{fmt_rps(r.rps_min)} - {fmt_rps(r.rps_max)}",
                str(r.errors),
                f"{r.probe_failures}/{r.probe_count}",
                f"{fmt_ms(r.startup_min_ms)} - {fmt_ms(r.startup_max_ms)}",
                f"{r.idle_pss_mb:.1f} / {r.loaded_pss_mb:.1f}",
                f"{r.server_cpu_share * 100:.0f}%",
                f"{r.other_cpu_s:.1f}",
                f"{r.redone}" + (f" ({r.noisy} still disturbed)" if r.noisy else ""),
                f"{r.log_mb_per_round:.1f}",
            ]
        )
    out.append(
        md_table(
            ["system", "req/s min - max over rounds", "wrk errors", "failed probes", "start-up min - max ms", "PSS idle / loaded MB", "server's share of the CPU used", "other CPU s (worst round)", "runs redone", "log MB per round"],
            spread,
        )
        + "\n"
    )
    out.append(
        "PSS splits pages shared between processes (gunicorn's forked workers, nginx's master and "
        "workers) among them, so it is the fairer memory figure for multi-process servers; the "
        "targets use RSS, the stricter one.\n"
    )

    out.append("## Machine\n")
    out.append(
        md_table(
            ["", ""],
            [
                ["CPUs (`nproc`)", m["nproc"]],
                ["CPU model", m["cpu"]],
                ["memory", f"{m['memory_gib']} GiB"],
                ["kernel", m["kernel"]],
                ["OS", m["os"]],
                ["rustc", m["rustc"]],
                ["wrk", m["wrk"]],
                ["nginx", m["nginx"]],
                ["Python", m["python"]],
                ["Flask / Werkzeug", f"{m['flask']} / {m['werkzeug']}"],
                ["gunicorn", m["gunicorn"]],
            ],
            "ll",
        )
        + "\n"
    )

    out.append("## Method\n")
    floor_ms = results["spawn_floor_s"] * 1000
    out.append(
        "\n".join(
            [
                f"- Every server binds 127.0.0.1 and every client targets it. Each server gets "
                f"{st['workers']} workers: `WORKERS={st['workers']}` for hello-k8s, `gunicorn -w {st['workers']}`, "
                f"`worker_processes {st['workers']}` for nginx; the Flask development server is one "
                "process with a thread per connection, as the origin ran it (`flask --app app run`, "
                "the origin's unmodified `app.py`, bound to loopback by the command line).",
                "- hello-k8s's two configurations differ only in the environment: bare is "
                "`ENV=development LOG_FORMAT=text LOG_LEVEL=warn METRICS_ENABLED=false`; production is "
                "`ENV=production API_KEY=bench-key LOG_FORMAT=json LOG_LEVEL=info METRICS_ENABLED=true`. "
                "Both run with `DRAIN_DELAY_SECONDS=0` so that the bench can stop them quickly. Each "
                "server's stdout and stderr go to a file (as a container runtime's do), truncated after "
                "each round.",
                f"- Throughput and latency: `wrk -t{st['threads']} -c{st['connections']} -d{st['duration']} "
                f"--timeout 2s --latency` on `GET /`, the same settings for every system, after a "
                f"{st['warmup']} warm-up; {st['rounds']} rounds, and in each round every system in turn "
                "(the order rotates each round). wrk keeps its connections open (keep-alive) and "
                "measures closed-loop latency; its percentiles come from its own histogram "
                "(bench/report.lua). wrk shares the 2 CPUs with the server, which is the point: the "
                "ratios compare servers under the same conditions, not the machine's absolute limit. "
                "For the fast servers (nginx, hello-k8s) wrk itself is the bottleneck: it uses half of "
                "the CPU (see the server's share in [Spread](#spread)), so their throughput ratios sit "
                "near 1 and say little about the servers; the server CPU time per request does.",
                "- Server CPU per request: user + system time of the server's process tree "
                "(/proc/PID/stat) during the run, divided by the requests it answered (wrk's and the "
                "probes'). The clock-tick resolution is 10 ms over several CPU-seconds per run.",
                f"- Noise: before the rounds the bench waits (up to 30 s) for other work on the "
                f"machine to use under 25% of it; it was {results.get('background_busy', 0) * 100:.0f}% busy when "
                "the rounds began. Per round it records the CPU time spent on anything but the server "
                "and its clients; a run during which that exceeded "
                f"{st.get('noise_max', 0.1) * 100:.0f}% of the machine's CPU time is measured again after "
                "another wait, at most twice ([Spread](#spread): other CPU, runs redone).",
                f"- Readiness under load: while wrk saturates `/`, bench/probe.py sends a probe every "
                f"{st['probe_interval_s'] * 1000:.0f} ms (open loop) on a new connection, as the kubelet "
                "does, with its 1 s timeout, from second 1 to 1 s before the end of the run; the p99 is "
                "taken over the probes of all rounds pooled. The latency includes the Python client's "
                "own scheduling delay on the busy CPUs, as the kubelet's would.",
                f"- Start-up: time from just before the fork/exec (Python `subprocess.Popen`) to the "
                f"first 200 on the readiness path, polled every {st['startup_poll_s'] * 1000:.1f} ms with a "
                f"fresh connection; median of {st['startup_runs']} runs per system, interleaved, each on a "
                f"fresh port. The resolution is the poll interval plus the spawn itself: spawning "
                f"`true` and waiting for it takes {floor_ms:.1f} ms here (the floor of this method).",
                "- Memory: VmRSS from /proc/PID/status summed over the server's process tree, once 1 s "
                "after the first answer (idle) and once after the last round (after load); PSS from "
                "/proc/PID/smaps_rollup likewise.",
                "- Binary size: the file `scripts/build-release.sh` prints (static release build).",
            ]
        )
        + "\n"
    )

    out.append("## Reproduce\n")
    out.append(
        "```sh\nmake bench\n```\n\n"
        "It installs what is missing (wrk and nginx from the distribution, Flask 3.0.0, gunicorn and "
        "matplotlib from PyPI into the git-ignored bench/.work/venv), builds the release binary, runs "
        "every measurement above (about 5 minutes on 2 CPUs), the cpu and the connection-scale sections, prints the "
        "tables and rewrites this file and the charts; `bench/run.sh --only main` runs this section alone. "
        "Raw results: bench/.work/results.json. Knobs (environment): "
        "`BENCH_ROUNDS`, `BENCH_DURATION`, `BENCH_CONNECTIONS`, `BENCH_THREADS`, `BENCH_WORKERS`, "
        "`BENCH_STARTUP_RUNS`. To re-render this file from the raw results without measuring again: "
        "`bench/.work/venv/bin/python bench/report.py bench/.work/results.json --markdown BENCHMARKS.md "
        "--chart docs/bench.png`.\n"
    )

    return "\n".join(out)


# ------------------------------------------------------------------------------- chart


COLOURS = {"origin": "#c98a3d", "ceiling": "#5b7fa8", "service": "#3f9c5a"}


def chart(rows: dict[str, Row], results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = list(rows.values())
    names = [r.key for r in items]
    colours = [COLOURS.get(r.kind, "#888888") for r in items]
    panels = [
        ("GET / throughput (req/s, log)", [r.rps for r in items], True, fmt_rps),
        ("server CPU time per request (us, log)", [r.cpu_us for r in items], True, lambda v: f"{v:.1f}"),
        ("GET / p99 latency (ms, log)", [r.p99_ms for r in items], True, fmt_ms),
        ("readiness probe p99 under load (ms, log)", [r.probe_p99_ms for r in items], True, fmt_ms),
        ("start-up to first 200 (ms, log)", [r.startup_ms for r in items], True, fmt_ms),
        ("RSS idle (MB)", [r.idle_mb for r in items], False, lambda v: f"{v:.1f}"),
        ("RSS after load (MB)", [r.loaded_mb for r in items], False, lambda v: f"{v:.1f}"),
    ]
    fig, axes = plt.subplots(4, 2, figsize=(11, 12), constrained_layout=True)
    for ax, (title, values, log, fmt) in zip(axes.flat, panels):
        y = range(len(items))
        ax.barh(list(y), values, color=colours)
        ax.set_yticks(list(y), names)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10, loc="left")
        if log:
            ax.set_xscale("log")
            ax.set_xlim(min(v for v in values if v > 0) / 3, max(values) * 6)
        else:
            ax.set_xlim(0, max(values) * 1.3)
        for i, v in enumerate(values):
            ax.text(v, i, " " + fmt(v), va="center", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(labelsize=8)
    # The last cell: the targets and the sizes, as text.
    text_ax = axes.flat[-1]
    text_ax.axis("off")
    lines = ["targets (issue 6)"] + [f"{verdict(ok):4}  {name}: {measured}" for name, measured, ok in targets(rows, results)]
    lines += ["", f"release binary: {results['binary']['bytes'] / 1e6:.1f} MB", f"image: {results['image']}"]
    text_ax.text(0, 1, "\n".join(lines), va="top", ha="left", fontsize=7.5, family="monospace", wrap=True)
    st, m = results["settings"], results["machine"]
    fig.suptitle(
        f"hello-k8s vs Flask origin and nginx ceiling: wrk -t{st['threads']} -c{st['connections']} -d{st['duration']}, "
        f"median of {st['rounds']} rounds, {m['nproc']} CPUs, {m['date']}",
        fontsize=10,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".png", delete=False) as tmp:
        fig.savefig(tmp.name, dpi=90)
    plt.close(fig)
    os.replace(tmp.name, path)


def write_atomic(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
        tmp.write(text)
    os.replace(tmp.name, path)


SECTION_START, SECTION_END = "<!-- bench:{} -->", "<!-- /bench:{} -->"
# The sections of BENCHMARKS.md, in their order there.
SECTIONS = ("main", "cpu", "scale")


def previous_sections(path: Path) -> dict[str, str]:
    """The sections of an existing BENCHMARKS.md, by name, so a section not measured in this
    run keeps its last results (e.g. `bench/run.sh --only scale` keeps the main section)."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    out = {}
    for name in SECTIONS:
        start, end = SECTION_START.format(name), SECTION_END.format(name)
        if start in text and end in text:
            out[name] = text.split(start, 1)[1].split(end, 1)[0].strip("\n")
    return out


def document(sections: dict[str, str]) -> str:
    """BENCHMARKS.md: the title, each section between its markers, then bench/findings.md."""
    out = [
        "# Benchmarks\n",
        "Generated by `make bench` (bench/run.sh); do not edit by hand, rerun it. Three sections, each "
        "measured in one run of its own: [main](#summary) (hello-k8s beside the Flask origin and nginx), "
        "[CPU per request, one core each](#cpu-per-request-one-core-each) (`bench/run.sh --only cpu`, with "
        "the [goals](#goals) `make bench` judges) and [connection scale](#connection-scale) "
        "(`bench/run.sh --only scale`). The discussion is in [docs/benchmarks.md](docs/benchmarks.md).\n",
    ]
    for name in SECTIONS:
        body = sections.get(name) or f"Section `{name}` not measured yet: run `bench/run.sh --only {name}`.\n"
        out.append(f"{SECTION_START.format(name)}\n{body.rstrip()}\n{SECTION_END.format(name)}\n")
    findings = BENCH_DIR / "findings.md"
    if findings.exists():
        out.append(findings.read_text().rstrip() + "\n")
    return "\n".join(out)


def load(path: Path, what: str) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        print(f"error: cannot read the {what} results {path}: {err}", file=sys.stderr)
        return None


def link(target: Path, markdown_path: Path) -> str:
    return os.path.relpath(target.resolve(), markdown_path.resolve().parent)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("results", type=Path, nargs="?", help="bench.py's results.json (the main section)")
    parser.add_argument("--results", type=Path, dest="results_opt", help="the same, as an option")
    parser.add_argument("--cpu", type=Path, help="cpu.py's cpu.json (the cpu section)")
    parser.add_argument("--scale", type=Path, help="scale.py's scale.json (the connection-scale section)")
    parser.add_argument("--markdown", type=Path, help="write BENCHMARKS.md here")
    parser.add_argument("--chart", type=Path, help="write the main section's chart PNG here")
    parser.add_argument("--scale-chart", type=Path, help="write the scale section's chart PNG here")
    args = parser.parse_args()
    results_path = args.results_opt or args.results
    if not results_path and not args.scale and not args.cpu:
        parser.error("nothing to render: give results.json, --cpu cpu.json and/or --scale scale.json")
    sections = previous_sections(args.markdown) if args.markdown else {}
    if results_path:
        results = load(results_path, "main")
        if results is None:
            return 1
        rows = rows_of(results)
        print(terminal_table(rows, results))
        print()
        print("targets (informational):")
        for name, measured, ok in targets(rows, results):
            print(f"  {verdict(ok):4}  {name:38} {measured}")
        print(f"\nrelease binary: {results['binary']['bytes']:,} bytes; image: {results['image']}")
        if args.chart:
            chart(rows, results, args.chart)
            print(f"chart: {args.chart}")
        if args.markdown:
            sections["main"] = markdown(results, rows, link(args.chart, args.markdown) if args.chart else None)
    cpu = scale = None
    if args.cpu:
        cpu = load(args.cpu, "cpu")
        if cpu is None:
            return 1
    if args.scale:
        scale = load(args.scale, "scale")
        if scale is None:
            return 1
    judged = goals.cpu_goals(cpu) + goals.scale_goals(scale)
    if cpu:
        print("\nCPU per request, one core each")
        print(cpu_report.terminal(cpu))
        if args.markdown:
            sections["cpu"] = cpu_report.markdown(cpu, goals.markdown(judged))
    if scale:
        print("\nconnection scale")
        print(scale_report.terminal(scale))
        if args.scale_chart:
            scale_report.chart(scale, args.scale_chart)
            print(f"chart: {args.scale_chart}")
        if args.markdown:
            sections["scale"] = scale_report.markdown(scale, link(args.scale_chart, args.markdown) if args.scale_chart else None)
    if args.markdown:
        write_atomic(args.markdown, document(sections))
        print(f"report: {args.markdown}")
    if not cpu and not scale:
        return 0
    line, status = goals.judgement(judged, ci=os.environ.get("CI") == "true")
    print("\ngoals: hello-k8s against nginx (PASS/MISS; [machine: other work's share of the CPUs, worst run])")
    print(goals.terminal(judged))
    print(f"verdict: {line}")
    if status:
        print(f"error: {line}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())

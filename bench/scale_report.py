"""Renders the connection-scale section (bench/scale.py's bench/.work/scale.json).

Used by report.py: the terminal table, the section of BENCHMARKS.md and its chart. Every
ratio is taken within the one run, between floods of the same size.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from fmt import md_table, mb, text_table, verdict
from pinned import CEILING

# The memory goal: RSS at 10k connections at most 2x nginx's (judged by goals.py).
GOAL_LEVEL = 10_000
GOAL_RATIO = 2.0


def flood_at(system: dict, level: int) -> dict | None:
    return next((f for f in system["floods"] if f["connections"] == level), None)


def answers(f: dict) -> tuple[int, int, int]:
    """(200s, 503s, other statuses) among the answers wrk read."""
    st = f["statuses"]
    ok = st.get("200", 0)
    shed = st.get("503", 0)
    return ok, shed, sum(st.values()) - ok - shed


def socket_errors(f: dict) -> int:
    e = f["errors"]
    return e["connect"] + e["read"] + e["write"] + e["timeout"]


def per_connection_kb(f: dict) -> float:
    """Peak RSS above idle per connection the server held (its most open descriptors above
    idle: a capped server holds fewer than the flood opens), in KB (10^3 bytes)."""
    held = max(f["flood_max_fds"] - f["idle"]["fds"], 1)
    return (f["peak"]["hwm_kb"] - f["idle"]["rss_kb"]) * 1024 / 1e3 / held


def goals(scale: dict) -> list[tuple[str, str, bool | None]]:
    """(system, measured, passed) for every hello-k8s build against nginx at 10k connections."""
    out: list[tuple[str, str, bool | None]] = []
    ceiling = scale["systems"].get(CEILING)
    ref = flood_at(ceiling, GOAL_LEVEL) if ceiling else None
    for key, s in scale["systems"].items():
        if s["kind"] == "ceiling":
            continue
        f = flood_at(s, GOAL_LEVEL)
        if not f or not ref:
            out.append((key, "n/a (no 10k flood of both in this run)", None))
            continue
        peak = f["peak"]["hwm_kb"] / ref["peak"]["hwm_kb"]
        after = f["after"]["rss_kb"] / ref["after"]["rss_kb"]
        out.append(
            (
                key,
                f"peak {mb(f['peak']['hwm_kb']):.1f} MB = {peak:.2f}x nginx's {mb(ref['peak']['hwm_kb']):.1f} MB; "
                f"after the flood {mb(f['after']['rss_kb']):.1f} MB = {after:.2f}x nginx's {mb(ref['after']['rss_kb']):.1f} MB",
                peak <= GOAL_RATIO,
            )
        )
    return out


HEADER = [
    "connections",
    "system",
    "req/s",
    "server CPU %",
    "200",
    "503 (shed)",
    "socket errors",
    "max open fds",
    "idle RSS MB",
    "peak RSS MB",
    "RSS after flood MB",
    "after + probes MB",
    "KB per held connection",
    "liveness failed / sent",
    "liveness p99 ms",
]


def rows(scale: dict) -> list[list[str]]:
    out = []
    for level in scale["settings"]["levels"]:
        for key, s in scale["systems"].items():
            f = flood_at(s, level)
            if not f:
                continue
            ok, shed, other = answers(f)
            p99 = f["liveness"]["p99_us"]
            out.append(
                [
                    f"{level:,}",
                    key,
                    f"{f['rps']:,.0f}",
                    f"{f['server_cpu_s'] / (f['duration_us'] / 1e6) * 100:.0f}",
                    f"{ok:,}",
                    f"{shed:,}" + (f" (+{other:,} other)" if other else ""),
                    f"{socket_errors(f):,}",
                    f"{f['flood_max_fds']:,}",
                    f"{mb(f['idle']['rss_kb']):.1f}",
                    f"{mb(f['peak']['hwm_kb']):.1f}",
                    f"{mb(f['after']['rss_kb']):.1f}" + ("" if f["alive_after"] else f" (exited {f['exit_status']})"),
                    f"{mb(f['after_probes']['rss_kb']):.1f}" if f.get("after_probes") else "n/a",
                    f"{per_connection_kb(f):.1f}",
                    f"{f['liveness']['failures']}/{f['liveness']['count']}"
                    + (f" ({f['liveness']['max_failures_in_a_row']} in a row)" if f["liveness"].get("max_failures_in_a_row") else ""),
                    "n/a" if p99 is None else f"{p99 / 1000:.1f}",
                ]
            )
    return out


def terminal(scale: dict) -> str:
    text = [text_table(HEADER, rows(scale)), "", "goal (issue 9): RSS at 10k connections <= 2x nginx's"]
    text += [f"  {verdict(ok):4}  {key:24} {measured}" for key, measured, ok in goals(scale)]
    return "\n".join(text)


def markdown(scale: dict, chart: str | None) -> str:
    st, m = scale["settings"], scale["machine"]
    dirty = " (with uncommitted changes in service/ or contract/)" if m.get("git_status_service") else ""
    out = ["## Connection scale\n"]
    out.append(
        f"Measured by `bench/run.sh --only scale` (also part of `make bench`) on {m['date']} at commit "
        f"`{m['git']}`{dirty}. All numbers of this section come from this one run. Each server runs alone on "
        f"CPU {st['server_cpu']} (taskset) and wrk on CPU {st['client_cpu']}; every flood is "
        f"`wrk -t{st['threads']} -cN -d{st['duration']}` of keep-alive connections on `GET /`, against a fresh server.\n"
    )
    if chart:
        out.append(f"![RSS and throughput of hello-k8s and nginx under 1k-10k keep-alive connections]({chart})\n")
    out.append("### Goal\n")
    out.append(
        f"Issue 9: hello-k8s's RSS at {GOAL_LEVEL:,} connections at most {GOAL_RATIO:g}x nginx's "
        "(peak RSS, VmHWM summed over the process tree); `make bench` fails when it is missed on a quiet "
        "machine (see [Goals](#goals), in the CPU section).\n"
    )
    out.append(md_table(["build", "measured at 10k connections", "result"], [[f"`{k}`", meas, f"**{verdict(ok)}**"] for k, meas, ok in goals(scale)], "llr") + "\n")
    out.append("### Results\n")
    out.append(md_table(HEADER, rows(scale), "ll" + "r" * (len(HEADER) - 2)) + "\n")
    out.append(
        "Server CPU %: the server's CPU time during the flood over its length (100: its pinned core was "
        "saturated, so the server, not wrk, bounded req/s). `200` and `503 (shed)`: answers wrk read, by status (bench/scale.lua). Socket errors: wrk's "
        "connect, read, write and timeout (2 s) errors, connections refused or dropped rather than "
        "answered. Max open fds: the server's descriptors (sockets and the rest), the most seen during the "
        "flood. Idle RSS: VmRSS 0.5 s after the first answer; peak RSS: VmHWM when the flood ends; RSS after "
        f"flood: VmRSS {st['settle_s']:g} s after wrk has exited and closed every connection; after + probes: VmRSS "
        "once more after 20 liveness probes in 7 s, about 10 s after the flood (some allocators return memory only "
        "when called again, or after a decay time); all summed over the "
        "process tree (nginx: master and worker), in MB of 10^6 bytes. KB per held connection: (peak - idle RSS) "
        "over the most descriptors the server held above idle (a capped server closes connections beyond its cap). "
        "Liveness: `GET /healthz` on a new connection every 200 ms during the flood, with the kubelet's 1 s "
        "timeout; (N in a row): the longest run of consecutive failures (the kubelet restarts a container after "
        "`failureThreshold`, 3 by default, in a row).\n"
    )
    out.append("### Systems\n")
    sysrows = []
    for key, s in scale["systems"].items():
        binary = scale["binaries"].get(key)
        sysrows.append([f"`{key}`", s["label"], s["note"], f"{binary['bytes']:,}" if binary else "-"])
    out.append(md_table(["key", "what", "configuration", "binary bytes"], sysrows, "lllr") + "\n")
    others = [f["other_cpu_s"] for s in scale["systems"].values() for f in s["floods"]]
    out.append("### Method and machine\n")
    out.append(
        "\n".join(
            [
                f"- {m['nproc']} CPUs ({m['cpu']}), {m['memory_gib']} GiB, kernel {m['kernel']}, {m['os']}; {m['wrk']}, nginx {m['nginx']}, {m['rustc']}.",
                f"- The machine was {scale.get('background_busy', 0) * 100:.0f}% busy with other work when the floods began; "
                f"CPU time of other processes during a flood: up to {max(others, default=0):.1f} s "
                "(the floods are not redone: memory, the figure this section is about, does not depend on it; req/s does).",
                f"- hello-k8s: the production configuration with `WORKERS=1` and `MEMORY_LIMIT_BYTES={st['memory_limit_bytes']}` "
                "(the Deployment's limit, which the downward API hands the pod); nginx: 1 worker, "
                f"`worker_connections` raised to the flood, `listen ... backlog={st['backlog']}` (actix-web's default backlog), "
                f"`worker_rlimit_nofile {st['nofile']}`. Both servers and wrk run with an open-files limit of {st['nofile']}.",
                "- The levels run in turn, and within a level the systems in an order that rotates per level; every "
                "flood starts a fresh server, so each peak is that flood's own.",
                "- Reproduce: `bench/run.sh --only scale` (about 2.5 minutes); knobs `BENCH_SCALE_LEVELS`, "
                "`BENCH_SCALE_DURATION`, `BENCH_SCALE_VARIANTS=LABEL=PATH,...` (other hello-k8s builds measured beside "
                "this tree's). Raw results: bench/.work/scale.json.",
            ]
        )
        + "\n"
    )
    return "\n".join(out)


COLOURS = {"ceiling": "#1f4e8c", "service": "#2e8b3e"}
# Variants: distinct from the two above and from one another (up to eight).
VARIANT_COLOURS = ["#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def chart(scale: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = scale["settings"]["levels"]
    systems = list(scale["systems"].items())
    colours = {}
    v = 0
    for key, s in systems:
        if s["kind"] in COLOURS:
            colours[key] = COLOURS[s["kind"]]
        else:
            colours[key] = VARIANT_COLOURS[v % len(VARIANT_COLOURS)]
            v += 1

    def series(s: dict, value) -> tuple[list[int], list[float]]:
        return [f["connections"] for f in s["floods"]], [value(f) for f in s["floods"]]

    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5), constrained_layout=True)
    panels = [
        (axes[0][0], "peak RSS (MB, VmHWM of the process tree)", lambda f: mb(f["peak"]["hwm_kb"])),
        (axes[0][1], f"RSS {scale['settings']['settle_s']:g} s after the flood (MB)", lambda f: mb(f["after"]["rss_kb"])),
        (axes[1][0], "GET / throughput during the flood (req/s)", lambda f: f["rps"]),
    ]
    ceiling = scale["systems"].get(CEILING)
    if ceiling:
        x, y = series(ceiling, lambda f: GOAL_RATIO * mb(f["peak"]["hwm_kb"]))
        axes[0][0].plot(x, y, linestyle="--", color=COLOURS["ceiling"], alpha=0.6, label=f"goal: {GOAL_RATIO:g}x nginx")
    for ax, title, value in panels:
        for key, s in systems:
            x, y = series(s, value)
            ax.plot(x, y, marker="o", label=key, color=colours[key], linewidth=2.2 if s["kind"] != "variant" else 1.2)
            # The largest flood only: the other values are in the tables.
            if x:
                yi = y[-1]
                ax.annotate(f"{yi:,.0f}" if yi >= 100 else f"{yi:.1f}", (x[-1], yi), textcoords="offset points", xytext=(5, -3), fontsize=7, color=colours[key])
        ax.set_title(title, fontsize=10, loc="left")
        ax.set_xticks(levels, [f"{lv // 1000}k" if lv >= 1000 else str(lv) for lv in levels])
        ax.set_xlabel("keep-alive connections", fontsize=8)
        ax.set_ylim(bottom=0)
        ax.set_xlim(levels[0] - 0.05 * (levels[-1] - levels[0]), levels[-1] + 0.15 * (levels[-1] - levels[0]))
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    axes[0][0].legend(fontsize=7, loc="upper left")

    # Answer mix: share of 200s, 503s and socket errors per system at every level.
    ax = axes[1][1]
    labels, ok_share, shed_share, err_share = [], [], [], []
    for level in levels:
        for key, s in systems:
            f = flood_at(s, level)
            if not f:
                continue
            ok, shed, other = answers(f)
            errs = socket_errors(f)
            total = max(ok + shed + other + errs, 1)
            labels.append(f"{key} {level / 1000:g}k")
            ok_share.append(ok / total * 100)
            shed_share.append((shed + other) / total * 100)
            err_share.append(errs / total * 100)
    y = list(range(len(labels)))
    ax.barh(y, ok_share, color="#3f9c5a", label="200")
    ax.barh(y, shed_share, left=ok_share, color="#c98a3d", label="503 shed (and other statuses)")
    ax.barh(y, err_share, left=[a + b for a, b in zip(ok_share, shed_share)], color="#c0392b", label="socket errors")
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_title("answer mix during the flood (% of outcomes)", fontsize=10, loc="left")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=3)
    ax.tick_params(labelsize=7)
    st, m = scale["settings"], scale["machine"]
    fig.suptitle(
        f"connection scale: wrk -t{st['threads']} -cN -d{st['duration']} keep-alive, each server pinned to one CPU, "
        f"{m['nproc']} CPUs, {m['date']}",
        fontsize=10,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".png", delete=False) as tmp:
        fig.savefig(tmp.name, dpi=90)
    plt.close(fig)
    os.replace(tmp.name, path)

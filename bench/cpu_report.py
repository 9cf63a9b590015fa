"""Renders the cpu section (bench/cpu.py's bench/.work/cpu.json).

Used by report.py and goals.py: per connection count, the medians over the rounds and the
paired ratios to nginx (each round's hello-k8s figure over that round's nginx figure at the
same count, the two runs back to back; the median of those), and for every other build measured
in the same rounds (`--variant`), its paired ratio to this tree's build. The goals table itself
comes from goals.py, which report.py hands to markdown().
"""

from __future__ import annotations

import math
import statistics
from typing import Callable

from fmt import md_table, text_table
from pinned import CEILING, MEMORY_LIMIT_BYTES, SERVICE

Metric = Callable[[dict], float]
RPS: Metric = lambda run: run["rps"]  # noqa: E731
CPU_US: Metric = lambda run: run["cpu_us_per_request"]  # noqa: E731


def runs_at(cpu: dict, key: str, level: int) -> list[dict]:
    """The kept runs of one system at one connection count, by round."""
    system = cpu["systems"].get(key)
    if not system:
        return []
    return sorted((r for r in system["runs"] if r["connections"] == level), key=lambda r: r["round"])


def ratios(cpu: dict, level: int, metric: Metric, key: str = SERVICE, ref: str = CEILING) -> list[float]:
    """`key` over `ref` (hello-k8s over nginx), round by round, at one connection count."""
    ours = {r["round"]: r for r in runs_at(cpu, key, level)}
    theirs = {r["round"]: r for r in runs_at(cpu, ref, level)}
    return [metric(ours[n]) / metric(theirs[n]) for n in sorted(ours.keys() & theirs.keys()) if metric(theirs[n])]


def paired(cpu: dict, level: int, metric: Metric, key: str = SERVICE, ref: str = CEILING) -> float | None:
    """The median over the rounds of `key`'s figure over `ref`'s (hello-k8s's over nginx's)."""
    xs = ratios(cpu, level, metric, key, ref)
    return statistics.median(xs) if xs else None


def median_interval(xs: list[float], confidence: float = 0.95) -> tuple[float, float, float] | None:
    """A distribution-free confidence interval for the median of `xs`: (low, high, coverage).

    The order statistics x(k) and x(n+1-k) bound the true median with probability
    1 - 2 P(B <= k-1), B ~ Binomial(n, 1/2), whatever the distribution of the round ratios.
    k is the largest that still gives `confidence`; with fewer than 6 rounds none does, and
    the interval is [min, max] with its own, lower coverage (94% for 5 rounds), which is
    returned so that the report can say so.
    """
    xs = sorted(xs)
    n = len(xs)
    if n < 2:
        return None
    below = lambda k: sum(math.comb(n, i) for i in range(k)) / 2**n  # noqa: E731  P(B <= k-1)
    k = 1
    while k + 1 <= n // 2 and 1 - 2 * below(k + 1) >= confidence:
        k += 1
    return xs[k - 1], xs[n - k], 1 - 2 * below(k)


def interval(cpu: dict, level: int, metric: Metric, key: str = SERVICE, ref: str = CEILING) -> tuple[float, float, float] | None:
    """The confidence interval of [`paired`]: for the median of the round ratios at `level`."""
    return median_interval(ratios(cpu, level, metric, key, ref))


def interval_text(span: tuple[float, float, float] | None) -> str:
    """`0.94-1.10x (95%)`: the interval and its coverage."""
    if span is None:
        return "n/a"
    low, high, coverage = span
    return f"{low:.2f}-{high:.2f}x ({math.floor(coverage * 100):.0f}%)"


def median(cpu: dict, key: str, level: int, metric: Metric) -> float | None:
    runs = runs_at(cpu, key, level)
    return statistics.median(metric(r) for r in runs) if runs else None


def worst_noise(cpu: dict, level: int) -> float:
    """The largest share of the machine's CPU time other work took during a kept run at `level`."""
    return max((r["other_share"] for key in (SERVICE, CEILING) for r in runs_at(cpu, key, level)), default=0.0)


HEADER = [
    "connections",
    "system",
    "req/s",
    "x nginx",
    "server CPU us/req",
    "x nginx",
    "x nginx per round (CPU)",
    "interval (CPU)",
    "server core busy %",
    "of it softirq %",
    "p99 ms",
    "socket errors",
    "non-2xx",
    "other work % (worst)",
]


def rows(cpu: dict) -> list[list[str]]:
    out = []
    for level in cpu["settings"]["levels"]:
        for key in cpu["systems"]:
            runs = runs_at(cpu, key, level)
            if not runs:
                continue
            service = cpu["systems"][key]["kind"] != "ceiling"  # this tree's build or a variant
            rps_x, cpu_x = paired(cpu, level, RPS, key), paired(cpu, level, CPU_US, key)
            busy = statistics.median(r["server_core"]["busy"] / r["server_core"]["total"] for r in runs)
            softirq = statistics.median(r["server_core"]["softirq"] / max(r["server_core"]["busy"], 1e-9) for r in runs)
            errors = sum(r["errors"]["connect"] + r["errors"]["read"] + r["errors"]["write"] + r["errors"]["timeout"] for r in runs)
            out.append(
                [
                    f"{level:,}",
                    key,
                    f"{median(cpu, key, level, RPS):,.0f}",
                    f"{rps_x:.2f}x" if service and rps_x is not None else "1.00x" if not service else "n/a",
                    f"{median(cpu, key, level, CPU_US):.2f}",
                    f"{cpu_x:.2f}x" if service and cpu_x is not None else "1.00x" if not service else "n/a",
                    " ".join(f"{x:.2f}" for x in ratios(cpu, level, CPU_US, key)) if service else "",
                    interval_text(interval(cpu, level, CPU_US, key)) if service else "",
                    f"{busy * 100:.0f}",
                    f"{softirq * 100:.0f}",
                    f"{statistics.median(r['latency_us']['p99'] for r in runs) / 1000:.2f}",
                    f"{errors:,}",
                    f"{sum(r['errors']['status'] for r in runs):,}",
                    f"{max(r['other_share'] for r in runs) * 100:.0f}"
                    + (f" ({sum(1 for r in runs if r['noisy'])} disturbed)" if any(r["noisy"] for r in runs) else ""),
                ]
            )
    return out


VARIANT_HEADER = ["connections", "build", "server CPU us/req", "x this tree's", "x this tree's per round (CPU)", "interval (CPU)", "req/s", "x this tree's"]


def variants(cpu: dict) -> list[str]:
    """The other builds measured in the same rounds (`--variant`)."""
    return [key for key, system in cpu["systems"].items() if system["kind"] == "variant"]


def variant_rows(cpu: dict) -> list[list[str]]:
    """Each variant against this tree's build: the paired ratios of the same rounds."""
    out = []
    for level in cpu["settings"]["levels"]:
        for key in variants(cpu):
            cpu_x, rps_x = paired(cpu, level, CPU_US, key, SERVICE), paired(cpu, level, RPS, key, SERVICE)
            if cpu_x is None or rps_x is None:
                continue
            out.append(
                [
                    f"{level:,}",
                    key,
                    f"{median(cpu, key, level, CPU_US):.2f}",
                    f"{cpu_x:.3f}x",
                    " ".join(f"{x:.2f}" for x in ratios(cpu, level, CPU_US, key, SERVICE)),
                    interval_text(interval(cpu, level, CPU_US, key, SERVICE)),
                    f"{median(cpu, key, level, RPS):,.0f}",
                    f"{rps_x:.3f}x",
                ]
            )
    return out


def terminal(cpu: dict) -> str:
    text = text_table(HEADER, rows(cpu), left=(1, 6))
    if variants(cpu):
        text += "\n\nother builds against this tree's (paired ratios of the same rounds)\n" + text_table(VARIANT_HEADER, variant_rows(cpu), left=(1, 4))
    return text


def markdown(cpu: dict, goals_table: str) -> str:
    st, m = cpu["settings"], cpu["machine"]
    dirty = " (with uncommitted changes in service/ or contract/)" if m.get("git_status_service") else ""
    runs = [r for s in cpu["systems"].values() for r in s["runs"]]
    disturbed = sum(1 for r in runs if r["noisy"])
    out = ["## CPU per request, one core each\n"]
    out.append(
        f"Measured by `bench/run.sh --only cpu` (also part of `make bench`) on {m['date']} at commit `{m['git']}`{dirty}, "
        f"in {cpu.get('elapsed_s', 0) / 60:.1f} minutes. All numbers of this section come from this one run. hello-k8s and nginx "
        f"each run alone on CPU {st['server_cpu']} (taskset) and `wrk -t{st['threads']}` on CPU {st['client_cpu']}; "
        f"{st['rounds']} round{'s' if st['rounds'] != 1 else ''} of `wrk -t{st['threads']} -cN -d{st['duration']}` keep-alive connections on `GET /` at "
        + ", ".join(f"{lv:,}" for lv in st["levels"])
        + " connections, "
        + (f"the two servers and {len(variants(cpu))} other hello-k8s build(s) ({', '.join(variants(cpu))}) back to back within a round"
           if variants(cpu) else "the two servers back to back within a round")
        + ", in an order that rotates.\n"
    )
    out.append("### Goals\n")
    out.append(goals_table)
    out.append("### Results\n")
    out.append(md_table(HEADER, rows(cpu), "ll" + "r" * 4 + "l" + "r" * (len(HEADER) - 7)) + "\n")
    if variants(cpu):
        out.append("Other builds against this tree's, measured in the same rounds (`BENCH_CPU_VARIANTS`): the median over the rounds of the build's figure over this tree's build's in that round, and where the median of the CPU ratio lies.\n")
        out.append(md_table(VARIANT_HEADER, variant_rows(cpu), "ll" + "r" * 2 + "l" + "r" * 3) + "\n")
    out.append(
        "req/s and server CPU us/req: medians over the rounds; x nginx: the median over the rounds of that round's "
        "hello-k8s figure over nginx's at the same count (the two runs back to back). Interval (CPU): where the "
        "true median of the CPU ratio lies with the confidence in brackets, from the order statistics of the "
        "round ratios (no assumption on their distribution); a goal whose limit falls inside it is decided by "
        "this machine's noise, not by the servers. Server CPU per request: "
        "utime + stime of the server's process tree (/proc/PID/stat) over the run, divided by the requests wrk "
        "counted; the clock tick is 10 ms. Server core busy: the pinned core's non-idle time over the run "
        "(/proc/stat), whoever used it; of it softirq: the part spent in softirq (loopback TCP), which "
        + ("this kernel charges to the task it interrupts (no CONFIG_IRQ_TIME_ACCOUNTING), so mostly to the server's stime"
           if st.get("irq_time_charged_to_tasks", True) else "this kernel charges to no task (CONFIG_IRQ_TIME_ACCOUNTING), so to neither server's CPU per request")
        + ". Socket errors: wrk's connect, read, "
        "write and timeout (2 s) errors; non-2xx: answers that were not 2xx or 3xx. Other work: the CPU time "
        "of every process but the server and wrk (the machine's user, nice and system time"
        + (", irq and softirq" if st.get("irq_time_charged_to_tasks", True) else "")
        + " from /proc/stat, less the server's and wrk's own), as a share of the machine's CPU time over the run.\n"
    )
    out.append("### Method and machine\n")
    out.append(
        "\n".join(
            [
                f"- {m['nproc']} CPUs ({m['cpu']}), {m['memory_gib']} GiB, kernel {m['kernel']}, {m['os']}; {m['wrk']}, nginx {m['nginx']}, {m['rustc']}.",
                f"- hello-k8s: the production configuration with `WORKERS=1` and `MEMORY_LIMIT_BYTES={MEMORY_LIMIT_BYTES}` (bench/pinned.py, "
                "as the scale section runs it); nginx: 1 worker, `access_log off`, the greeting from configuration "
                "(bench/nginx.conf.in), `worker_connections` raised to the largest count, `listen ... backlog=2048`. Both "
                f"start once, answer the greeting, and get a {st['warmup']} warm-up at {max(st['levels']):,} connections.",
                f"- Noise: before the rounds the bench waits (up to {st['quiet_wait_s']:g} s) for other work to use under 25% of "
                f"the machine; it was {cpu.get('background_busy', 0) * 100:.0f}% busy then. A round in which other work took more "
                f"than {st['noise_max'] * 100:.0f}% of the machine's CPU time during either run is measured again (both runs) "
                f"after another wait, at most {st['redo']} times"
                + (", until a wait ran out with the machine still busy (from then on disturbed runs were kept, marked)" if cpu.get("redo_stopped") else "")
                + f". Pairs redone: {cpu.get('pairs_redone', 0)}; runs kept disturbed: {disturbed} of {len(runs)}.",
                "- Reproduce: `bench/run.sh --only cpu`; knobs `BENCH_CPU_LEVELS`, `BENCH_CPU_ROUNDS`, `BENCH_CPU_DURATION`, `BENCH_CPU_VARIANTS` "
                f"(this run: {','.join(str(lv) for lv in st['levels'])}; {st['rounds']}; {st['duration']}). Raw results: bench/.work/cpu.json.",
            ]
        )
        + "\n"
    )
    return "\n".join(out)

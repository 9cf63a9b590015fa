"""The goals `make bench` holds hello-k8s to against nginx, and the verdict on them.

Judged from the raw results of the sections measured in this run: cpu.json (CPU per request
and throughput, one core each) and scale.json (memory and probes under floods):

  - server CPU per request at most nginx's, at 64 and at 1,000 keep-alive connections;
  - throughput at least nginx's, at 32 and at 1,000 connections;
  - peak RSS at 10,000 connections at most 2x nginx's;
  - every liveness probe answered under every flood.

CPU and throughput are judged on the median over the rounds of each round's hello-k8s/nginx
ratio, and reported with the confidence interval of that median (cpu_report.median_interval).
When the goal's limit lies inside the interval, the goal reads "within the noise": its PASS or
MISS is what this run's noise decided, and another run may decide the other way.

A goal is judged only when the machine was quiet during the runs it comes from: in none of
them did other work (every process but the server and wrk) take more than bench.NOISE_MAX of
the machine's CPU time. report.py prints the table and exits non-zero when a judged goal is
missed, unless CI=true (shared runners are never quiet enough to judge: informational there).
"""

from __future__ import annotations

from dataclasses import dataclass

import cpu_report
import scale_report
from bench import NOISE_MAX
from fmt import md_table, mb, verdict
from pinned import CEILING, SERVICE

# (connections, highest hello-k8s/nginx ratio) for CPU per request, and (connections, lowest
# ratio) for throughput.
CPU_GOALS = [(64, 1.0), (1000, 1.0)]
RPS_GOALS = [(32, 1.0), (1000, 1.0)]


@dataclass
class Goal:
    name: str
    measured: str
    ok: bool | None  # None: not measured in this run
    noise: float | None  # the largest share of other work in the runs it comes from

    @property
    def judged(self) -> bool:
        return self.ok is not None and self.noise is not None and self.noise <= NOISE_MAX


def times(ratio: float) -> str:
    return "" if ratio == 1 else f"{ratio:g}x "


def cpu_goals(cpu: dict | None) -> list[Goal]:
    def goal(level: int, metric: str, name: str, unit: str, fmt: str, met) -> Goal:
        x = cpu_report.paired(cpu, level, metric) if cpu else None
        if x is None:
            return Goal(name, "not measured in this run" if not cpu else f"no run at {level:,} connections", None, None)
        ours = cpu_report.median(cpu, SERVICE, level, metric)
        theirs = cpu_report.median(cpu, CEILING, level, metric)
        span = cpu_report.interval(cpu, level, metric)
        measured = f"{x:.2f}x ({ours:{fmt}} against {theirs:{fmt}} {unit}; interval {cpu_report.interval_text(span)}"
        if span is not None and met(span[0]) != met(span[1]):
            measured += ": within the noise"
        measured += ")"
        return Goal(name, measured, met(x), cpu_report.worst_noise(cpu, level))

    out = [
        goal(level, cpu_report.CPU_US, f"server CPU per request at most {times(limit)}nginx's, {level:,} connections",
             "us", ".2f", lambda x, limit=limit: x <= limit)
        for level, limit in CPU_GOALS
    ]
    out += [
        goal(level, cpu_report.RPS, f"throughput at least {times(floor)}nginx's, {level:,} connections",
             "req/s", ",.0f", lambda x, floor=floor: x >= floor)
        for level, floor in RPS_GOALS
    ]
    return out


def flood_noise(scale: dict, floods: list[dict]) -> float:
    """The largest share of the machine's CPU time other work took during one of `floods`."""
    cpus = int(scale["machine"]["nproc"]) if str(scale["machine"]["nproc"]).isdigit() else 1
    return max((f["other_cpu_s"] / max(f["duration_us"] / 1e6 * cpus, 1e-9) for f in floods), default=0.0)


def scale_goals(scale: dict | None) -> list[Goal]:
    level, limit = scale_report.GOAL_LEVEL, scale_report.GOAL_RATIO
    memory = f"peak RSS at most {times(limit)}nginx's, {level:,} connections"
    probes = "liveness probes answered under every flood"
    if not scale:
        return [Goal(memory, "not measured in this run", None, None), Goal(probes, "not measured in this run", None, None)]
    ours, theirs = scale["systems"].get(SERVICE), scale["systems"].get(CEILING)
    out = []
    f = scale_report.flood_at(ours, level) if ours else None
    ref = scale_report.flood_at(theirs, level) if theirs else None
    if f and ref:
        x = f["peak"]["hwm_kb"] / ref["peak"]["hwm_kb"]
        out.append(
            Goal(memory, f"{x:.2f}x ({mb(f['peak']['hwm_kb']):.1f} against {mb(ref['peak']['hwm_kb']):.1f} MB)", x <= limit, flood_noise(scale, [f, ref]))
        )
    else:
        out.append(Goal(memory, f"no flood of {level:,} connections of both in this run", None, None))
    floods = ours["floods"] if ours else []
    if floods:
        failed = sum(fl["liveness"]["failures"] for fl in floods)
        sent = sum(fl["liveness"]["count"] for fl in floods)
        levels = ", ".join(f"{fl['connections']:,}" for fl in floods)
        out.append(Goal(probes, f"{failed} of {sent} failed (floods of {levels} connections)", failed == 0 and sent > 0, flood_noise(scale, floods)))
    else:
        out.append(Goal(probes, "no flood of hello-k8s in this run", None, None))
    return out


def machine(goal: Goal) -> str:
    if goal.noise is None:
        return "-"
    word = "quiet" if goal.noise <= NOISE_MAX else "busy"
    return f"{word} ({goal.noise * 100:.0f}%)"


def table(goals: list[Goal]) -> str:
    """The goals as a markdown table."""
    body = [[g.name, g.measured, f"**{verdict(g.ok)}**", machine(g)] for g in goals]
    return md_table(["goal", "measured (hello-k8s / nginx)", "result", "machine (other work, worst run)"], body, "llrl")


def markdown(goals: list[Goal]) -> str:
    """The goals table, the verdict as `make bench` gave it outside CI, and the rule."""
    line, _ = judgement(goals, ci=False)
    return (
        table(goals)
        + f"\n\n**Verdict:** {line}.\n\n"
        "CPU per request and throughput come from this section's runs, memory and probes from the "
        "[connection scale](#connection-scale) section of the same `make bench` (\"not measured in this run\" "
        "when it was not run with it). A goal is judged when the machine was quiet during the runs it comes "
        f"from: other work (every process but the server and wrk) took at most {NOISE_MAX * 100:.0f}% of the "
        "machine's CPU time in each (machine column: the worst run). `make bench` exits non-zero when a judged "
        "goal is missed; under `CI=true` the verdict is informational.\n"
    )


def terminal(goals: list[Goal]) -> str:
    width = max(len(g.name) for g in goals)
    return "\n".join(f"  {verdict(g.ok):4}  {g.name:{width}}  {g.measured}  [{machine(g)}]" for g in goals)


def judgement(goals: list[Goal], ci: bool) -> tuple[str, int]:
    """One line saying what the run decides, and the exit status of `make bench`."""
    missed = [g for g in goals if g.ok is False and g.judged]
    unjudged = [g for g in goals if g.ok is not None and not g.judged]
    limit = f"{NOISE_MAX * 100:.0f}%"
    if missed:
        names = "; ".join(g.name for g in missed)
        if ci:
            return f"informational (CI=true): {len(missed)} goal(s) missed on a quiet machine: {names}", 0
        return f"FAIL: {len(missed)} goal(s) missed on a quiet machine: {names}", 1
    if unjudged:
        worst = max(g.noise or 0.0 for g in unjudged)
        misses = sum(1 for g in unjudged if g.ok is False)
        return (
            f"not judged (busy): other work took up to {worst * 100:.0f}% of the machine's CPU time during the runs of "
            f"{len(unjudged)} goal(s) ({misses} of them missed), above the {limit} a quiet machine allows; "
            "rerun on a quiet machine to judge them",
            0,
        )
    if not any(g.ok is not None for g in goals):
        return "no goal measured in this run", 0
    return f"PASS: every goal measured in this run met on a quiet machine (other work at most {limit})", 0

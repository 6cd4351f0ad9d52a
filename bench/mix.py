"""The platform under a realistic mix, and its knee: `python -m bench mix`.

For each multiple of the reference mix (200 requests/s of metrics, top-performer and campaign
reads, campaign creates and PATCHes and `POST /events` batches, plus 2,000 events/s), a fresh
`fk up` (embedded broker, no demo data) takes the open-loop load of `soak.load` for a fixed time,
with the load generator on the same machine. Every latency counts from the request's scheduled
send time (no coordinated omission), and a request unanswered within 15 s is a failure. Beside
them, in the same run: `GET /healthz` sampled under the same load (the floor of a route), and a
freshness probe (an event posted, then polled until the metrics show it).

The targets: every request answered, reads p99 <= 50 ms, campaign commands p99 <= 250 ms,
`POST /events` p99 <= 500 ms, an event visible in the metrics within 1 s at p99, no 5xx. The
knee is the largest multiple at which all of them hold.
"""

import asyncio
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from soak.__main__ import run_load
from soak.load import MIX, Options, Results
from soak.report import percentile

REFERENCE_RATE = 200.0
REFERENCE_EVENTS = 2000.0
MULTIPLES = (0.25, 0.5, 1.0)

CLASSES: dict[str, tuple[str, ...]] = {
    "reads": (
        "GET /campaigns/{id}/metrics",
        "GET /influencers/{id}/metrics",
        "GET /top-performers",
        "GET /campaigns/{id}",
    ),
    "commands": ("POST /campaigns", "PATCH /campaigns/{id}"),
    "events": ("POST /events",),
}
TARGET_P99_MS = {"reads": 50.0, "commands": 250.0, "events": 500.0, "freshness": 1000.0}
assert {n for names in CLASSES.values() for n in names} == set(MIX)


@dataclass
class Step:
    multiple: float
    p50_ms: dict[str, float]
    p99_ms: dict[str, float]
    offered: int
    failed: int
    server_errors: int
    achieved_rps: float
    load_average: str

    @property
    def passed(self) -> bool:
        return (
            self.failed == 0
            and self.server_errors == 0
            and all(self.p99_ms[k] <= target for k, target in TARGET_P99_MS.items())
        )


def summarise(multiple: float, results: Results, load_average: str) -> Step:
    p50, p99 = {}, {}
    for name, members in CLASSES.items():
        values = [v for m in members for v in results.latencies_ms.get(m, [])]
        p50[name] = percentile(values, 50) if values else float("nan")
        p99[name] = percentile(values, 99) if values else float("inf")
    probes = results.probes_ms
    p50["freshness"] = percentile(probes, 50) if probes else float("nan")
    p99["freshness"] = percentile(probes, 99) if probes else float("inf")
    health = results.latencies_ms.get("GET /healthz", [])
    p50["healthz"] = percentile(health, 50) if health else float("nan")
    p99["healthz"] = percentile(health, 99) if health else float("nan")
    in_mix = [n for members in CLASSES.values() for n in members]
    answered = sum(len(results.latencies_ms.get(n, [])) for n in in_mix)
    failed = sum(results.errors.get(n, 0) for n in in_mix) + results.not_started
    server_errors = sum(results.server_errors.get(n, 0) for n in in_mix)
    return Step(
        multiple=multiple,
        p50_ms=p50,
        p99_ms=p99,
        offered=answered + failed,
        failed=failed,
        server_errors=server_errors,
        achieved_rps=answered / max(results.load_seconds, 1e-9),
        load_average=load_average,
    )


async def measure(multiple: float, seconds: float, workdir: Path) -> Step:
    options = Options(
        duration=seconds,
        rate=REFERENCE_RATE * multiple,
        events_rate=REFERENCE_EVENTS * multiple,
        warmup=0,
        sample_every=seconds,
        probe_every=1.0,
        # Briefs, uploads and endpoint registrations are not part of this mix: once, before the
        # clock starts (the endpoint makes every campaign event a delivery). All three at the
        # clock's start stalled the commands of its first second by ~300 ms (BENCHMARKS.md).
        setup_once=True,
        healthz_every=0.1,
        request_timeout=15.0,
        max_in_flight=512,
    )
    run = await run_load(options, workdir)
    if not run.alive:
        raise RuntimeError(f"fk up died under {multiple}x the mix:\n{run.log_tail}")
    return summarise(multiple, run.results, f"{run.load_before} -> {run.load_after}")


def render(steps: list[Step], seconds: float) -> str:
    lines = [
        f"## Mix (open loop, {seconds:.0f} s per multiple of {REFERENCE_RATE:.0f} requests/s "
        f"+ {REFERENCE_EVENTS:.0f} events/s, fresh `fk up` each, {os.cpu_count()} cores)",
        "",
        "p99 (p50) in ms from the scheduled send time; targets: reads 50, commands 250, "
        "POST /events 500, freshness 1000; /healthz sampled under the same load.",
        "",
        "| multiple | served req/s | reads | commands | POST /events | freshness | /healthz "
        "| reads / healthz p99 | failed | 5xx | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in steps:

        def cell(key: str, step: Step = s) -> str:
            return f"{step.p99_ms[key]:,.0f} ({step.p50_ms[key]:,.0f})"

        ratio = s.p99_ms["reads"] / s.p99_ms["healthz"] if s.p99_ms["healthz"] else float("nan")
        lines.append(
            f"| {s.multiple:g}x | {s.achieved_rps:.0f} | {cell('reads')} | {cell('commands')} | "
            f"{cell('events')} | {cell('freshness')} | {cell('healthz')} | {ratio:.1f} | "
            f"{s.failed:,} of {s.offered:,} | {s.server_errors} | "
            f"{'PASS' if s.passed else 'FAIL'} |"
        )
    knee = max((s.multiple for s in steps if s.passed), default=None)
    lines += [
        "",
        f"Knee: {f'{knee:g}x the mix' if knee is not None else 'below the smallest multiple'}"
        f" (load average per step: {'; '.join(s.load_average for s in steps)}).",
    ]
    return "\n".join(lines)


def run(seconds: float = 30.0, multiples: tuple[float, ...] = MULTIPLES) -> None:
    print(f"mix: started {time.strftime('%H:%M:%S')}", flush=True)
    steps = []
    for multiple in multiples:
        with tempfile.TemporaryDirectory(prefix="fk-mix-") as tmp:
            steps.append(asyncio.run(measure(multiple, seconds, Path(tmp))))
    print(render(steps, seconds), flush=True)

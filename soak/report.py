"""The soak's verdicts and its report: per-endpoint latency and errors, memory of every platform
process from the end of warm-up to the end of the load, consumer lag, freshness, webhooks."""

from dataclasses import dataclass

from soak.load import Options, Results, cores_per_sample
from soak.processes import role
from soak.receiver import Receiver


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@dataclass
class MemoryChange:
    process: str
    start: int
    end: int
    peak: int
    events: int
    """Events accepted between the two samples."""

    @property
    def change(self) -> float:
        return (self.end - self.start) / self.start

    @property
    def per_event(self) -> float:
        """Bytes of resident memory gained per accepted event."""
        return (self.end - self.start) / max(1, self.events)


def memory_changes(results: Results, warmup: float) -> list[MemoryChange]:
    """Per process: the first sample at or after the warm-up against the last sample of the
    load (the sample taken as the load stops), and the peak in between."""
    measured = [(events, sample) for at, events, sample in results.memory if at >= warmup]
    if len(measured) < 2:
        return []
    (events_first, first), (events_last, last) = measured[0], measured[-1]
    return [
        MemoryChange(
            name,
            first[name],
            last[name],
            max(s.get(name, 0) for _, s in measured),
            events_last - events_first,
        )
        for name in first
        if name in last
    ]


def lag_bounded(results: Results, options: Options, warmup: float) -> tuple[bool, str]:
    """Bounded = the backlog (accepted events the worker has not read) drained within a minute
    of the load stopping, and the second half of the run never saw more than twice the first
    half's maximum plus one second of events (a backlog that keeps growing fails both). Each
    sample counts the larger of the backlog and the worker's own lag gauge: with acknowledgement
    after storage a stopped consumer makes the API accept nothing more, so only the gauge grows."""
    backlogs = [(at, max(gauge, backlog)) for at, gauge, backlog in results.lag if at >= warmup]
    if results.drain_seconds is None:
        return False, "the backlog did not drain within 60 s of the load stopping"
    if len(backlogs) < 4:
        return True, f"drained in {results.drain_seconds:.1f} s (too few samples for a trend)"
    middle = len(backlogs) // 2
    first = max(b for _, b in backlogs[:middle])
    second = max(b for _, b in backlogs[middle:])
    limit = 2 * first + options.events_rate
    if second > limit:
        return False, f"backlog grew: max {first:.0f} in the first half, {second:.0f} in the second"
    return True, (
        f"max {first:.0f} / {second:.0f} events in the first / second half, "
        f"drained in {results.drain_seconds:.1f} s after the load"
    )


BROKER_MAX_BYTES_PER_EVENT = 1024
"""The embedded broker's stated growth is ~720 bytes per event; more than this fails the soak."""


def render(
    results: Results,
    options: Options,
    receiver: Receiver,
    max_growth: float,
    *,
    broker_max_bytes_per_event: float = BROKER_MAX_BYTES_PER_EVENT,
) -> tuple[str, bool]:
    """The report as Markdown, and whether the soak passed."""
    warmup = min(options.warmup, results.load_seconds)
    answered = sum(len(v) for v in results.latencies_ms.values()) + sum(results.errors.values())
    lines = [
        f"Achieved {answered / max(results.load_seconds, 1e-9):.1f} requests/s. "
        f"Offered: {options.rate:.0f} requests/s mixed + {options.events_rate:.0f} events/s "
        f"for {results.load_seconds:.0f} s (warm-up {warmup:.0f} s); "
        f"{results.events_accepted:,} events accepted; "
        f"{results.delayed_starts:,} requests started > 100 ms late, "
        f"{results.not_started:,} not started by the end (the client fell behind). "
        "Latency counts from each request's scheduled send time.",
        "",
        "| endpoint | count | req/s | p50 ms | p99 ms | max ms | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    names = sorted(set(results.latencies_ms) | set(results.errors))
    for name in names:
        values = results.latencies_ms.get(name, [])
        errors = results.errors.get(name, 0)
        if values:
            lines.append(
                f"| {name} | {len(values):,} | {len(values) / results.load_seconds:.1f} | "
                f"{percentile(values, 50):.1f} | {percentile(values, 99):.1f} | "
                f"{max(values):.1f} | {errors} |"
            )
        else:
            lines.append(f"| {name} | 0 | 0 | | | | {errors} |")
    errors_total = sum(results.errors.values())

    lines += [
        "",
        "| process | RSS at warm-up end | RSS at end | change | per event | peak | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    changes = memory_changes(results, warmup)
    memory_ok = bool(changes)
    for change in changes:
        if role(change.process) == "embedded broker":
            # It keeps every message by design (docs/operations.md, "Restarts"): held to its
            # stated rate.
            ok = change.per_event <= broker_max_bytes_per_event
        else:
            ok = change.change <= max_growth
        memory_ok &= ok
        lines.append(
            f"| {change.process} | {change.start / 2**20:.0f} MiB | {change.end / 2**20:.0f} MiB | "
            f"{change.change * 100:+.1f} % | "
            f"{change.per_event:+.0f} B | "
            f"{change.peak / 2**20:.0f} MiB | "
            f"{'PASS' if ok else 'FAIL'} |"
        )
    lines.append("")
    if changes:
        lines.append(
            "Bytes per event (RSS growth / events accepted, warm-up end to end): "
            + ", ".join(f"{role(c.process)} {c.per_event:+,.0f} B" for c in changes)
            + " (the embedded broker keeps every message: ~720 B per event,"
            + ' docs/operations.md "Restarts").'
        )
    names = [role(name) for name in results.memory[-1][2]] if results.memory else []
    lines.append(
        f"RSS per sample (MiB; {' / '.join(names)}): "
        + "; ".join(
            f"{at:.0f} s " + ", ".join(f"{v / 2**20:.0f}" for v in sample.values())
            for at, _, sample in results.memory
        )
    )

    cores = cores_per_sample(results.cpu)
    if cores:
        lines.append(
            f"Cores per sample (CPU since the sample before; {' / '.join(names)}): "
            + "; ".join(
                f"{at:.0f} s " + ", ".join(f"{v:.2f}" for v in sample.values())
                for at, sample in cores
            )
        )

    lag_ok, lag_text = lag_bounded(results, options, warmup)
    gauges = [g for _, g, _ in results.lag]
    backlogs = [b for _, _, b in results.lag]
    lines += [
        "",
        f"Consumer lag: {'PASS' if lag_ok else 'FAIL'} ({lag_text}); "
        f"max fk_pipeline_consumer_lag_messages {max(gauges, default=0):.0f}, "
        f"max backlog {max(backlogs, default=0):.0f} events, {len(results.lag)} samples.",
    ]
    if results.probes_ms:
        lines.append(
            f"Freshness (POST /events → visible in GET metrics, {len(results.probes_ms)} probes): "
            f"p50 {percentile(results.probes_ms, 50):.0f} ms, "
            f"p99 {percentile(results.probes_ms, 99):.0f} ms, max {max(results.probes_ms):.0f} ms."
        )
    if receiver.delays_ms:
        lines.append(
            f"Webhooks: {receiver.count:,} deliveries ({len(receiver.ids):,} distinct), "
            f"campaign event → delivery p50 {percentile(receiver.delays_ms, 50):.0f} ms, "
            f"p99 {percentile(receiver.delays_ms, 99):.0f} ms."
        )
    else:
        lines.append("Webhooks: no deliveries received.")
    lines.append(
        f"Errors: {'PASS' if errors_total == 0 else 'FAIL'} ({errors_total} in total)"
        + "".join(f"\n  - {sample}" for sample in results.error_samples)
    )
    passed = errors_total == 0 and memory_ok and lag_ok
    lines.append(f"Soak: {'PASS' if passed else 'FAIL'}")
    return "\n".join(lines), passed

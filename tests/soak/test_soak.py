"""The soak client: a short real run against `fk up` (so CI covers the script end to end), and its
verdicts on recorded samples (memory growth, a growing consumer lag, failed requests)."""

import re
import subprocess
import sys

import pytest

from soak.load import Options, Results
from soak.receiver import Receiver
from soak.report import lag_bounded, memory_changes, render
from tests.processes import REPO

MiB = 2**20


def options(**overrides: float) -> Options:
    values: dict[str, float] = {"duration": 60, "rate": 10, "events_rate": 100, "warmup": 10}
    values.update(overrides)
    return Options(**values)  # type: ignore[arg-type]


def results(
    memory: list[tuple[float, int, dict[str, int]]],
    backlogs: list[float],
    drain: float | None = 0.5,
    gauges: list[float] | None = None,
) -> Results:
    recorded = Results(memory=memory, load_seconds=60, drain_seconds=drain)
    recorded.lag = [
        (10.0 + 5 * i, gauge, b)
        for i, (b, gauge) in enumerate(zip(backlogs, gauges or [0.0] * len(backlogs), strict=True))
    ]
    recorded.record("GET /top-performers", 3.0)
    return recorded


def test_memory_growth_past_the_limit_fails() -> None:
    memory = [
        (0.0, 0, {"fk up (1)": 100 * MiB, "broker (2)": 20 * MiB}),  # warm-up: not counted
        (10.0, 1000, {"fk up (1)": 200 * MiB, "broker (2)": 20 * MiB}),
        (60.0, 6000, {"fk up (1)": 209 * MiB, "broker (2)": 23 * MiB}),
    ]
    recorded = results(memory, [0, 0, 0, 0])
    changes = {c.process: c for c in memory_changes(recorded, warmup=10)}
    assert changes["fk up (1)"].change == pytest.approx(0.045)
    assert changes["broker (2)"].change == pytest.approx(0.15)
    assert changes["broker (2)"].events == 5000

    report, passed = render(recorded, options(), Receiver(), max_growth=0.10)
    assert not passed
    assert re.search(r"\| fk up \(1\) .* \| PASS \|", report)
    assert re.search(r"\| broker \(2\) .* \+15\.0 % .* \| FAIL \|", report)


def test_a_growing_backlog_is_unbounded() -> None:
    ok, _ = lag_bounded(results([], [50, 80, 60, 90, 70, 100]), options(), warmup=10)
    assert ok
    ok, reason = lag_bounded(results([], [50, 200, 400, 800, 1600, 3200]), options(), warmup=10)
    assert not ok
    assert "grew" in reason
    ok, reason = lag_bounded(results([], [0, 0, 0, 0], drain=None), options(), warmup=10)
    assert not ok
    assert "did not drain" in reason


def test_a_stopped_consumer_fails_the_lag_check_though_nothing_more_is_accepted() -> None:
    """Seen in a 30-minute soak: the consumer stopped, the API (acknowledging after storage)
    accepted nothing more, so the backlog of accepted events stayed 0 while the gauge grew."""
    stopped = [300.0, 500.0, 400.0, 9_000.0, 17_000.0, 25_000.0]
    ok, reason = lag_bounded(
        results([], [0] * len(stopped), gauges=stopped), options(events_rate=2000), warmup=10
    )
    assert not ok
    assert "grew" in reason
    steady = [300.0, 500.0, 400.0, 600.0, 350.0, 450.0]
    ok, _ = lag_bounded(
        results([], [0] * len(steady), gauges=steady), options(events_rate=2000), warmup=10
    )
    assert ok


def test_a_failed_request_fails_the_soak() -> None:
    flat = [(10.0, 0, {"fk up (1)": 100 * MiB}), (60.0, 10, {"fk up (1)": 101 * MiB})]
    recorded = results(flat, [0, 0, 0, 0])
    assert render(recorded, options(), Receiver(), max_growth=0.10)[1]
    recorded.fail("POST /events", "Unexpected: POST /events -> 503")
    report, passed = render(recorded, options(), Receiver(), max_growth=0.10)
    assert not passed
    assert "Errors: FAIL (1 in total)" in report


@pytest.mark.slow
def test_a_short_soak_runs_every_operation_against_fk_up() -> None:
    # Memory is not judged here (30 s is all warm-up, and the in-memory embedded broker keeps
    # every message); the verdict's arithmetic is tested above. --tracemalloc covers the heap
    # snapshots of `fk up` (soak.traced) as well.
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "soak",
            *("--duration", "30", "--rate", "20", "--events-rate", "200", "--warmup", "5"),
            *("--sample-every", "5", "--brief-every", "10", "--upload-every", "10"),
            *("--webhook-every", "10", "--max-memory-growth", "100", "--tracemalloc"),
            # Nor the broker's: 30 s of a few thousand events cannot tell its growth per event
            # from the topics, groups and campaign commands it starts with.
            *("--max-broker-bytes-per-event", "1000000"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    out = run.stdout
    assert run.returncode == 0, out[-4000:] + run.stderr[-4000:]
    for endpoint in (
        "POST /events",
        "GET /campaigns/{id}/metrics",
        "GET /influencers/{id}/metrics",
        "GET /top-performers",
        "POST /campaigns",
        "PATCH /campaigns/{id}",
        "POST /webhooks/endpoints",
        "POST /generate-brief",
        "POST /etl/uploads",
    ):
        row = re.search(rf"^\| {re.escape(endpoint)} \| ([\d,]+) \|.* \| 0 \|$", out, re.M)
        assert row, f"no error-free row for {endpoint}:\n{out}"
        assert int(row.group(1).replace(",", "")) > 0
    assert re.search(r"^\| fk up \(\d+\) ", out, re.M)
    assert re.search(r"^\| tansu\S* \(\d+\) ", out, re.M)
    assert "Consumer lag: PASS" in out
    assert re.search(r"Webhooks: [\d,]+ deliveries", out)
    assert "Freshness (" in out
    assert "Soak: PASS" in out
    assert re.search(r"Python heap \(tracemalloc\): [\d.]+ MiB at warm-up end", out)


def test_the_embedded_broker_is_held_to_its_stated_bytes_per_event() -> None:
    def run(broker_end: int) -> tuple[str, bool]:
        memory = [
            (10.0, 0, {"fk up (1)": 200 * MiB, "tansu-v0.6.0-51 (2)": 20 * MiB}),
            (60.0, 100_000, {"fk up (1)": 201 * MiB, "tansu-v0.6.0-51 (2)": broker_end}),
        ]
        return render(results(memory, [0, 0, 0, 0]), options(), Receiver(), max_growth=0.10)

    # +70 MB over 100k events: 700 B per event (+350 %), the broker's stated growth.
    report, passed = run(20 * MiB + 70_000_000)
    assert passed, report
    assert re.search(r"\| tansu-v0\.6\.0-51 \(2\) .* \+700 B .* \| PASS \|", report)
    report, passed = run(20 * MiB + 200_000_000)  # 2,000 B per event
    assert not passed
    assert re.search(r"\| tansu-v0\.6\.0-51 \(2\) .* \| FAIL \|", report)

"""The mix benchmark's verdicts: latency classes, failures, 5xx and the knee (pure)."""

from bench.mix import CLASSES, TARGET_P99_MS, render, summarise
from soak.load import Results


def results(ms: float, *, failed: int = 0, server_errors: int = 0) -> Results:
    r = Results(load_seconds=10.0)
    for members in CLASSES.values():
        for name in members:
            for _ in range(100):
                r.record(name, ms)
    for _ in range(100):
        r.record("GET /healthz", 5.0)
    r.probes_ms = [ms] * 10
    for _ in range(failed):
        r.fail("POST /events", "TimeoutError")
    if server_errors:
        r.server_errors["PATCH /campaigns/{id}"] = server_errors
    return r


def test_a_step_passes_only_when_every_target_holds() -> None:
    assert summarise(0.25, results(10.0), "").passed
    slow_reads = results(10.0)
    slow_reads.latencies_ms["GET /top-performers"] = [60.0] * 100  # reads p99 over 50 ms
    assert not summarise(0.25, slow_reads, "").passed
    assert not summarise(0.25, results(10.0, failed=1), "").passed
    assert not summarise(0.25, results(10.0, server_errors=1), "").passed
    unserved = results(10.0)
    unserved.not_started = 3  # the client fell behind: requests never sent count as failed
    step = summarise(0.25, unserved, "")
    assert (step.failed, step.passed) == (3, False)
    no_probe = results(10.0)
    no_probe.probes_ms = []  # nothing shown to be fresh: not a pass
    assert not summarise(0.25, no_probe, "").passed


def test_the_knee_is_the_largest_multiple_that_passed() -> None:
    steps = [
        summarise(0.25, results(10.0), ""),
        summarise(0.5, results(40.0), ""),
        summarise(1.0, results(300.0), ""),
    ]
    assert [s.passed for s in steps] == [True, True, False]
    text = render(steps, 30)
    assert "Knee: 0.5x the mix" in text
    assert text.count("| PASS |") == 2
    assert summarise(1.0, results(10.0), "").p99_ms["healthz"] == 5.0
    assert set(TARGET_P99_MS) == {*CLASSES, "freshness"}
    assert "Knee: below the smallest multiple" in render([steps[2]], 30)

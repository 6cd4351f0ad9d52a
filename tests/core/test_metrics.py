"""observe_many must leave a histogram exactly as one observe per value would; the event loop
watch sees a blocked loop."""

import asyncio
import time

from prometheus_client import REGISTRY, CollectorRegistry, Histogram

from core.metrics import observe_many, watch_event_loop

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5)


def _samples(histogram: Histogram) -> dict[tuple[str, str], float]:
    return {
        (s.name, s.labels.get("le", "")): s.value
        for metric in histogram.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }


def test_observe_many_equals_observing_one_by_one() -> None:
    values = [0.0, 0.05, 0.050001, 0.3, 0.3, 1, 4.99, 5, 5.01, 700.0, 0.1]
    one = Histogram("one", "", buckets=BUCKETS, registry=CollectorRegistry())
    many = Histogram("many", "", buckets=BUCKETS, registry=CollectorRegistry())
    for v in values:
        one.observe(v)
    observe_many(many, values)
    observe_many(many, [])
    expected = {(n.replace("one", "many"), le): v for (n, le), v in _samples(one).items()}
    assert _samples(many) == expected
    assert expected[("many_count", "")] == len(values)


async def test_the_event_loop_watch_measures_how_late_the_loop_runs() -> None:
    def observed() -> tuple[float, float]:
        count = REGISTRY.get_sample_value("fk_event_loop_lag_seconds_count") or 0.0
        return count, REGISTRY.get_sample_value("fk_event_loop_lag_seconds_sum") or 0.0

    count, total = observed()
    watching = asyncio.create_task(watch_event_loop(interval=0.01))
    await asyncio.sleep(0.05)
    time.sleep(0.2)  # the loop blocked: the next timer runs ~0.2 s late
    await asyncio.sleep(0.05)
    watching.cancel()
    after_count, after_total = observed()
    assert after_count > count
    assert 0.15 <= after_total - total < 1.0

"""observe_many must leave a histogram exactly as one observe per value would."""

from prometheus_client import CollectorRegistry, Histogram

from core.metrics import observe_many

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

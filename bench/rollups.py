"""Rollups bookkeeping per stored row (`EngagementRollups.add_rows` with the minute buckets)
against the row-by-row loop it replaced, kept here as the baseline, on the same batches in the
same run: 5,000-row batches over 200 campaigns and 2,000 creators in 7 organisations, the
current minute's events and a few late ones."""

import random
import statistics
import time
from collections.abc import Callable

from core.rollups import MINUTE_MS, EngagementRollups, MinuteRollups, Row, window_starts

Batch = list[Row]


def make_batch(n: int, now_ms: int, seed: int) -> Batch:
    """`n` rows: a creator works for one organisation, on that organisation's campaigns; 10 %
    without a campaign; 97 % of this minute, 2.5 % up to two hours late, 0.5 % days late."""
    rng = random.Random(seed)
    rows: Batch = []
    for _ in range(n):
        creator = rng.randrange(2000)
        org = creator % 7
        campaign = f"cmp_{rng.randrange(200 // 7) * 7 + org}" if rng.random() > 0.1 else ""
        late = rng.random()
        if late < 0.97:
            at = now_ms - rng.randrange(now_ms % MINUTE_MS + 1)
        elif late < 0.995:
            at = now_ms - rng.randrange(1, 120) * MINUTE_MS
        else:
            at = now_ms - rng.randrange(1441, 100_000) * MINUTE_MS
        counts = (rng.randint(0, 5000), rng.randint(0, 300), rng.randint(0, 30))
        rows.append((f"org_{org}", campaign, f"inf_{creator}", at, *counts, rng.randint(0, 20), 0))
    return rows


class RowByRow:
    """The baseline: the bookkeeping as it was, one update per row and key (running sums as
    lists, a tuple per minute bucket) and, with `minute_buckets`, two more for the rollup
    topic's buckets."""

    def __init__(self, *, minute_buckets: bool) -> None:
        self.series: dict[tuple[str, str, str], list[object]] = {}
        self.minutes: dict[int, dict[tuple[str, str, str], list[int]]] | None = (
            {} if minute_buckets else None
        )

    def add_rows(self, rows: Batch, now_ms: int) -> None:
        if self.minutes is not None:
            for org, campaign, creator, at, views, likes, comments, shares, _ in rows:
                keys = self.minutes.setdefault(at // MINUTE_MS, {})
                engagements = likes + comments + shares
                if campaign:
                    _bump(keys, (org, "campaign", campaign), views, engagements)
                _bump(keys, (org, "creator", creator), views, engagements)
        hour_from, day_from = window_starts(now_ms)
        for org, campaign, creator, at, views, likes, comments, shares, saves in rows:
            values = (views, likes, comments, shares, saves, 1)
            minute = at // MINUTE_MS
            if campaign:
                self._add((org, "campaign", campaign), minute, values, hour_from, day_from)
            self._add((org, "creator", creator), minute, values, hour_from, day_from)

    def _add(
        self,
        key: tuple[str, str, str],
        minute: int,
        values: tuple[int, ...],
        hour_from: int,
        day_from: int,
    ) -> None:
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = [[0] * 6, [0] * 6, [0] * 6, {}]
        total, day, hour, minutes = series
        assert isinstance(total, list)
        assert isinstance(day, list)
        assert isinstance(hour, list)
        assert isinstance(minutes, dict)
        for i in range(6):
            total[i] += values[i]
        if minute < day_from:
            return
        bucket = minutes.get(minute)
        minutes[minute] = values if bucket is None else tuple(map(int.__add__, bucket, values))
        for i in range(6):
            day[i] += values[i]
        if minute >= hour_from:
            for i in range(6):
                hour[i] += values[i]


def _bump(
    keys: dict[tuple[str, str, str], list[int]],
    key: tuple[str, str, str],
    views: int,
    engagements: int,
) -> None:
    sums = keys.get(key)
    if sums is None:
        keys[key] = [views, engagements]
    else:
        sums[0] += views
        sums[1] += engagements


def cpu_us_per_row(add_rows: Callable[[Batch, int], None], batches: list[Batch], now: int) -> float:
    """CPU time of this thread per row (other processes on the machine do not count)."""
    add_rows(batches[0], now)  # warm: the keys exist, as in a running worker
    spent = 0.0
    for batch in batches[1:]:
        started = time.thread_time()
        add_rows(batch, now)
        spent += time.thread_time() - started
    return spent / sum(map(len, batches[1:])) * 1e6


def current(now_ms: int) -> Callable[[Batch, int], None]:
    rollups = EngagementRollups(MinuteRollups())
    rollups.ready = True
    rollups.add_rows([], now_ms)  # the windows' sweep of this minute, not timed
    return rollups.add_rows


def run(rounds: int = 15, batches: int = 10, size: int = 5000) -> dict[str, float]:
    now_ms = time.time_ns() // 1_000_000 // MINUTE_MS * MINUTE_MS + 30_000
    data = [make_batch(size, now_ms, seed) for seed in range(batches + 1)]
    runs: dict[str, list[float]] = {"before": [], "row_by_row": [], "grouped": []}
    for _ in range(rounds):  # alternating, so a noisy moment hits all three alike
        runs["before"].append(cpu_us_per_row(RowByRow(minute_buckets=False).add_rows, data, now_ms))
        runs["row_by_row"].append(
            cpu_us_per_row(RowByRow(minute_buckets=True).add_rows, data, now_ms)
        )
        runs["grouped"].append(cpu_us_per_row(current(now_ms), data, now_ms))
    us = {name: statistics.median(values) for name, values in runs.items()}
    print(
        f"rollups add_rows, {batches} x {size:,}-row batches x {rounds} rounds, CPU us/row "
        f"(medians): row by row without minute buckets {us['before']:.2f} "
        f"({1e6 / us['before']:,.0f} rows/s), row by row with them {us['row_by_row']:.2f} "
        f"({1e6 / us['row_by_row']:,.0f} rows/s), grouped {us['grouped']:.2f} "
        f"({1e6 / us['grouped']:,.0f} rows/s); "
        f"{us['row_by_row'] / us['grouped']:.1f}x the row-by-row baseline"
    )
    return us


if __name__ == "__main__":
    run()

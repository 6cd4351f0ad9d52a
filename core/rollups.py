"""Per-minute rollups of the stored engagement events, kept in memory by the process that writes
them: the embedded platform answers campaign and creator metrics from here, not from the store.

Windows are minute-aligned (see `window_starts`), the same definition the store query uses, so
both paths give one answer. Memory: one small record per (organisation, campaign) and
(organisation, creator) ever seen, plus one bucket per such key and minute with events in the
last 24 hours (~200 bytes each).
"""

import threading
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from core.clickhouse import Store
from schemas.api import METRICS_KINDS, EntityMetrics, MetricsKind, MetricsWindow

MINUTE_MS = 60_000
HOUR_MINUTES = 60
DAY_MINUTES = 1440

COLUMNS: dict[MetricsKind, str] = {"campaign": "campaign_id", "influencer": "influencer_id"}

Sums = tuple[int, ...]
"""views, likes, comments, shares, saves, events."""
_ZERO: Sums = (0,) * 6

Row = tuple[str, str, str, int, int, int, int, int, int]
"""A stored event as the rollups take it: (organisation, campaign id or "", creator id, event
time in ms, views, likes, comments, shares, saves)."""


def window_starts(now_ms: int) -> tuple[int, int]:
    """The first minute (minutes since the epoch) of the 1 h and of the 24 h window at `now_ms`.

    A window holds the current minute and the 60 (1 440) whole minutes before it: every event of
    the last hour is in `window1h`, and so are those of the minute before it began (up to 61
    minutes old). The store query and the rollups share this definition.
    """
    minute = now_ms // MINUTE_MS
    return minute - HOUR_MINUTES, minute - DAY_MINUTES


class _Series:
    """One key's running sums: all time, the 24 h and the 1 h window (as of `day_from` and
    `hour_from`), and the minute buckets of the 24 h window, which leave the running sums as the
    windows move on. Sums are tuples of ints: not tracked by the garbage collector, so a day of
    buckets adds nothing to a collection's scan."""

    __slots__ = ("day", "day_from", "hour", "hour_from", "minutes", "total")

    def __init__(self, hour_from: int, day_from: int) -> None:
        self.total: Sums = _ZERO
        self.day: Sums = _ZERO
        self.hour: Sums = _ZERO
        self.minutes: dict[int, Sums] = {}
        self.hour_from = hour_from
        self.day_from = day_from

    def add(self, minute: int, values: Sums) -> None:
        # Spelled out: this runs per key and minute of every stored batch, and unpacking is
        # three times as fast as `tuple(map(add, a, b))`.
        v0, v1, v2, v3, v4, v5 = values
        a0, a1, a2, a3, a4, a5 = self.total
        self.total = (a0 + v0, a1 + v1, a2 + v2, a3 + v3, a4 + v4, a5 + v5)
        if minute < self.day_from:
            return
        minutes = self.minutes
        bucket = minutes.get(minute)
        if bucket is None:
            minutes[minute] = values
        else:
            a0, a1, a2, a3, a4, a5 = bucket
            minutes[minute] = (a0 + v0, a1 + v1, a2 + v2, a3 + v3, a4 + v4, a5 + v5)
        a0, a1, a2, a3, a4, a5 = self.day
        self.day = (a0 + v0, a1 + v1, a2 + v2, a3 + v3, a4 + v4, a5 + v5)
        if minute >= self.hour_from:
            a0, a1, a2, a3, a4, a5 = self.hour
            self.hour = (a0 + v0, a1 + v1, a2 + v2, a3 + v3, a4 + v4, a5 + v5)

    def advance(self, hour_from: int, day_from: int) -> None:
        """Move the windows' starts forward (never back): buckets that leave a window leave
        its sum; those that leave the 24 h window are forgotten."""
        minutes = self.minutes
        if hour_from > self.hour_from:
            for minute in _leaving(minutes, self.hour_from, hour_from):
                self.hour = _minus(self.hour, minutes[minute])
            self.hour_from = hour_from
        if day_from > self.day_from:
            for minute in _leaving(minutes, self.day_from, day_from):
                self.day = _minus(self.day, minutes.pop(minute))
            self.day_from = day_from


def _minus(a: Sums, b: Sums) -> Sums:
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2], a[3] - b[3], a[4] - b[4], a[5] - b[5])


def _leaving(minutes: dict[int, Sums], start: int, end: int) -> list[int]:
    """The held minutes in [start, end), by whichever is shorter to walk."""
    if end - start <= len(minutes):
        return [m for m in range(start, end) if m in minutes]
    return [m for m in minutes if start <= m < end]


_INT64_MAX = int(np.iinfo(np.int64).max)


class Groups(NamedTuple):
    """A batch's rows summed per key and minute, as three parallel lists."""

    keys: list[tuple[str, str]]
    """(organisation, campaign or creator id)."""
    minutes: list[int]
    sums: list[Sums]


def group_rows(rows: Sequence[Row]) -> tuple[Groups, Groups]:
    """The batch summed per (organisation, campaign, minute) and per (organisation, creator,
    minute), minute by event time: what both the windows and the minute buckets take, so a
    batch costs one dictionary update per distinct key and minute, not per row. Rows without a
    campaign are in no campaign group. Sums are exact (Python integers past int64's range)."""
    n = len(rows)
    if not n:
        return Groups([], [], []), Groups([], [], [])
    orgs, campaigns, creators, times, *counts = zip(*rows, strict=True)
    minutes = np.fromiter(times, np.int64, n) // MINUTE_MS
    columns = np.array(counts)
    # int64 unless a sum could leave its range: then Python integers (slower, still exact).
    exact = columns.dtype == np.int64 and n * int(np.abs(columns).max()) <= _INT64_MAX
    values: npt.NDArray[Any] = np.empty((n, 6), np.int64 if exact else object)
    values[:, :5] = columns.T if exact else np.array(counts, object).T
    values[:, 5] = 1  # the events column
    # Each string column as codes (strings are not tracked by the garbage collector: no tuple
    # per row is made) and each minute as its rank, so (key, minute) is one int64.
    org_names, org_codes = _codes(orgs)
    held, minute_rank = np.unique(minutes, return_inverse=True)
    return (
        _sum_by(org_names, org_codes, *_codes(campaigns), held, minute_rank, values, True),
        _sum_by(org_names, org_codes, *_codes(creators), held, minute_rank, values, False),
    )


def _codes(column: tuple[str, ...]) -> tuple[list[str], npt.NDArray[np.int64]]:
    """The column's distinct values, and each value's index among them."""
    index = {value: i for i, value in enumerate(dict.fromkeys(column))}
    return list(index), np.fromiter(map(index.__getitem__, column), np.int64, len(column))


def _sum_by(
    org_names: list[str],
    org_codes: npt.NDArray[np.int64],
    entity_names: list[str],
    entity_codes: npt.NDArray[np.int64],
    held: npt.NDArray[np.int64],
    minute_rank: npt.NDArray[np.intp],
    values: npt.NDArray[Any],
    drop_empty: bool,
) -> Groups:
    """Rows of `values` summed per (organisation, entity) and minute (`held[minute_rank]`),
    each key's minutes ascending; keys with an empty entity id left out if `drop_empty`."""
    keys = org_codes * len(entity_names) + entity_codes
    if len(org_names) * len(entity_names) * len(held) > _INT64_MAX:
        keys = np.unique(keys, return_inverse=True)[1]  # only past ~2 million rows a batch
    codes = keys * len(held) + minute_rank
    order = np.argsort(codes, kind="stable")
    ordered = codes[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    first = order[starts]  # a row of each group
    group_orgs, group_entities = org_codes[first], entity_codes[first]
    sums = np.add.reduceat(values[order], starts, axis=0)
    group_minutes = held[minute_rank[first]]
    if drop_empty and "" in entity_names:
        kept = group_entities != entity_names.index("")
        group_orgs, group_entities = group_orgs[kept], group_entities[kept]
        sums, group_minutes = sums[kept], group_minutes[kept]
    return Groups(
        list(
            zip(
                map(org_names.__getitem__, group_orgs.tolist()),
                map(entity_names.__getitem__, group_entities.tolist()),
                strict=True,
            )
        ),
        group_minutes.tolist(),
        list(zip(*sums.T.tolist(), strict=True)),
    )


def metrics_window(sums: Sequence[int]) -> MetricsWindow:
    """A window's answer from its sums (views, likes, comments, shares, saves, events): the one
    definition of `engagements` and `engagementRate` for both metrics paths."""
    views, likes, comments, shares, saves, events = (int(v) for v in sums)
    engagements = likes + comments + shares
    return MetricsWindow(
        views=views,
        likes=likes,
        comments=comments,
        shares=shares,
        saves=saves,
        engagements=engagements,
        engagement_rate=round(engagements / views * 100, 4) if views else 0.0,
        events=events,
    )


ScopeKey = tuple[str, str, str]
"""(organisation, "campaign" or "creator", id): what a minute rollup is of."""


class MinuteRollups:
    """Per-minute (by event time) views and engagements of every (organisation, campaign) and
    (organisation, creator) with stored events, until the minute closes and is taken (`close`)
    for the rollup topic. A batch costs one dictionary update per distinct key and minute (the
    grouping `EngagementRollups.add_rows` shares); a minute is handed over once it is closed by
    the wall clock, and events stored later for a minute already taken make another rollup of
    it (consumers add them up). Safe to call from threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._minutes: dict[int, dict[ScopeKey, list[int]]] = {}

    def add_rows(self, rows: Iterable[Row]) -> None:
        """Stored events as (organisation, campaign id, creator id, event time in ms, views,
        likes, comments, shares, saves), as `EngagementRollups.add_rows` takes them."""
        self.add_groups(*group_rows(list(rows)))

    def add_groups(self, by_campaign: Groups, by_creator: Groups) -> None:
        """A batch as `group_rows` sums it."""
        with self._lock:
            minutes = self._minutes
            for scope, groups in (("campaign", by_campaign), ("creator", by_creator)):
                for (org, entity), minute, (views, likes, comments, shares, _, _) in zip(
                    *groups, strict=True
                ):
                    keys = minutes.get(minute)
                    if keys is None:
                        keys = minutes[minute] = {}
                    key = (org, scope, entity)
                    sums = keys.get(key)
                    if sums is None:
                        keys[key] = [views, likes + comments + shares]
                    else:
                        sums[0] += views
                        sums[1] += likes + comments + shares

    def close(self, now_ms: int) -> list[tuple[int, ScopeKey, int, int]]:
        """Take every minute before `now_ms`'s: (minute, scope, views, engagements), oldest
        minute first."""
        current = now_ms // MINUTE_MS
        with self._lock:
            closed = sorted(m for m in self._minutes if m < current)
            taken = [(m, self._minutes.pop(m)) for m in closed]
        return [(m, key, v, e) for m, keys in taken for key, (v, e) in keys.items()]

    def pending(self) -> int:
        """Scope-minutes held, not taken yet."""
        with self._lock:
            return sum(len(keys) for keys in self._minutes.values())


class EngagementRollups:
    """The metrics of every (organisation, campaign) and (organisation, creator), maintained as
    events are stored.

    Whoever writes `engagement_events` in this process reports each stored event (`add_rows`,
    `add_stored`); `load` reads what the store held before, once, before any writer starts (the
    embedded API's start-up does it before starting the worker). Until loaded, reports are
    ignored and `ready` is false: callers read the store instead. Safe to call from threads.
    """

    def __init__(self, minutes: MinuteRollups | None = None) -> None:
        self._lock = threading.Lock()
        self._series: dict[MetricsKind, dict[tuple[str, str], _Series]] = {
            k: {} for k in METRICS_KINDS
        }
        self._swept = 0
        self.ready = False
        self.minutes = minutes
        """Told of every stored row, loaded or not (the rollup topic's per-minute buckets)."""

    # -- writes ------------------------------------------------------------------------------

    def load(self, store: Store, now_ms: int) -> None:
        """Read every stored event's contribution (blocking: run it in a thread)."""
        with self._lock:
            for kind in METRICS_KINDS:
                self._series[kind].clear()
            self._fold_store(store, "1", {}, now_ms)
            self._swept = now_ms // MINUTE_MS
            self.ready = True

    def add_stored(self, store: Store, where: str, parameters: dict[str, Any], now_ms: int) -> None:
        """Fold in the stored events that match `where` (SQL over `engagement_events`, with
        `parameters`): for a writer that inserted with a statement, such as a CSV load. The
        caller guarantees no other event matches. Blocking: run it in a thread."""
        if self.ready:
            with self._lock:
                self._fold_store(store, where, parameters, now_ms)

    def add_rows(self, rows: Iterable[Row], now_ms: int) -> None:
        """Fold in stored events given as (organisation, campaign id, creator id, event time in
        ms, views, likes, comments, shares, saves); an empty campaign id is no campaign. The
        batch is summed per key and minute once (`group_rows`) for the windows and the minute
        buckets both."""
        if self.minutes is None and not self.ready:
            return
        by_campaign, by_creator = group_rows(list(rows))
        if self.minutes is not None:
            self.minutes.add_groups(by_campaign, by_creator)
        if not self.ready:
            return
        hour_from, day_from = window_starts(now_ms)
        with self._lock:
            self._sweep(now_ms)
            for kind, groups in zip(METRICS_KINDS, (by_campaign, by_creator), strict=True):
                by_key = self._series[kind]
                for key, minute, values in zip(*groups, strict=True):
                    series = by_key.get(key)
                    if series is None:
                        series = by_key[key] = _Series(hour_from, day_from)
                    series.add(minute, values)

    # -- reads -------------------------------------------------------------------------------

    def metrics(
        self, kind: MetricsKind, org: str, entity_id: str, now_ms: int
    ) -> EntityMetrics | None:
        """The three windows at `now_ms`; None when the organisation has no event for the id."""
        hour_from, day_from = window_starts(now_ms)
        with self._lock:
            series = self._series[kind].get((org, entity_id))
            if series is None:
                return None
            series.advance(hour_from, day_from)
            hour, day, total = list(series.hour), list(series.day), list(series.total)
        return EntityMetrics(
            window_1h=metrics_window(hour),
            window_24h=metrics_window(day),
            total=metrics_window(total),
        )

    def keys(self, kind: MetricsKind) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._series[kind])

    def buckets(self) -> int:
        """Minute buckets held (what the memory grows with)."""
        with self._lock:
            return sum(
                len(s.minutes) for kind in METRICS_KINDS for s in self._series[kind].values()
            )

    # -- inside ------------------------------------------------------------------------------

    def _sweep(self, now_ms: int) -> None:
        """Once a minute, move every key's windows on, so keys nobody reads forget their old
        buckets too (the lock is held)."""
        minute = now_ms // MINUTE_MS
        if minute <= self._swept:
            return
        self._swept = minute
        hour_from, day_from = window_starts(now_ms)
        for kind in METRICS_KINDS:
            for series in self._series[kind].values():
                series.advance(hour_from, day_from)

    def _fold_store(
        self, store: Store, where: str, parameters: dict[str, Any], now_ms: int
    ) -> None:
        # Imported here: the engagement repository answers with this module's windows.
        from core.repositories.engagement import older_sums_sync, recent_minute_sums_sync

        hour_from, day_from = window_starts(now_ms)
        bound = {**parameters, "since": day_from * MINUTE_MS}
        for kind in METRICS_KINDS:
            series = self._series[kind]
            column = COLUMNS[kind]
            recent = recent_minute_sums_sync(store, column, where, bound)
            for org, entity, minute, *values in recent:
                _series(series, (org, entity), hour_from, day_from).add(
                    int(minute), tuple(int(v) for v in values)
                )
            older = older_sums_sync(store, column, where, bound)
            for org, entity, *values in older:
                _series(series, (org, entity), hour_from, day_from).add(
                    day_from - 1, tuple(int(v) for v in values)
                )


def _series(
    by_key: dict[tuple[str, str], _Series], key: tuple[str, str], hour_from: int, day_from: int
) -> _Series:
    series = by_key.get(key)
    if series is None:
        series = by_key[key] = _Series(hour_from, day_from)
    return series

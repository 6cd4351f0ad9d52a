"""The engagement sink: writes first-seen events to `engagement_events`, once per eventId.

Exactly-once effect on top of at-least-once delivery: the sink remembers the ids of the dedupe
window (`FK_DEDUPE_WINDOW_DAYS` of event time; reloaded from the store whenever partitions are
assigned, so ids written before a crash or by another worker are known), answers for older
events from the store by id, and the consumer drops ids found either way before inserting.
Offsets are committed after the insert, so a crash replays at most the uncommitted batch, whose
ids are then found and dropped.
"""

import asyncio
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import compress
from operator import itemgetter

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import structlog

from core import metrics
from core.changes import ENGAGEMENT_WRITES
from core.clickhouse import Store, StoreRejected, StoreUnavailable
from streams.transforms import EventBatch

log = structlog.get_logger(__name__)

DAY_MS = 86_400_000
EXPIRE_EVERY_MS = 60_000
"""How often, at most, `claim` forgets the days that left the window."""

_QUERY_ID_CHARACTERS = 256 * 1024
"""Ids per store check, in characters: an HTTP server reads the ids from the request's URI,
which ClickHouse caps at 1 MiB (`http_max_uri_size`), quoting included."""

_INSERT_SETTINGS = {"max_partitions_per_insert_block": 0}
"""A batch may hold events of any number of months (the table's partitions): one request with
events in 101 months must land, not fail the store's per-insert partition limit forever."""

_event_id = itemgetter(0)
_event_time = itemgetter(1)


@dataclass(slots=True)
class _Span:
    """Held ids whose event times run from one UTC day to another (its key in `SeenIds.spans`),
    in the order they were claimed."""

    ids: list[str] = field(default_factory=list)
    days: list[npt.NDArray[np.int32]] = field(default_factory=list)
    """The ids' days, in chunks in the same order; empty for a span of one day."""


class SeenIds:
    """The ids of the dedupe window: every known streamed id whose event time is at or after
    `start_ms`.

    `ids` is what the consumer looks an event up in (one set probe). `spans` holds the same ids
    by the days of event time of the batch that brought them, `(first, last)`: a batch joins its
    span in one extend (sorting its ids into days one by one cost more than inserting them into
    `ids`); expiry forgets a span whose last day has left the window in one pass, and splits by
    its ids' days a span that straddles the window's start. The window is whole UTC days:
    `start_ms` is midnight of the day `window_days` before now, so between `window_days` and
    `window_days + 1` days of ids are held. It never moves back, so an event routed by it to
    memory or to the store is answered for by that side.
    """

    def __init__(self, window_days: int, now_ms: int) -> None:
        if window_days < 1:
            raise ValueError("the dedupe window is at least one day")
        self.window_ms = window_days * DAY_MS
        self.start_ms = self.window_start(now_ms)
        self.ids: set[str] = set()
        self.spans: dict[tuple[int, int], _Span] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def window_start(self, now_ms: int) -> int:
        """Midnight UTC of the first day of the window at `now_ms`."""
        return (now_ms - self.window_ms) // DAY_MS * DAY_MS

    def merge(self, days: Iterable[tuple[int, Sequence[str]]]) -> None:
        """Hold these ids too, given per day (of the window), besides those held already."""
        for day, ids in days:
            fresh = ids if not self.ids else [i for i in ids if i not in self.ids]
            self._span(int(day), int(day)).ids.extend(fresh)
            self.ids.update(fresh)

    def add(self, batch: EventBatch) -> None:
        """Hold the ids of the batch's events at or after `start_ms` (its `ids` are its rows').

        An older event's id is not held: the store answers for it once the batch is written,
        and the consumer checks the batches not written yet.
        """
        rows = batch.rows
        if not rows:
            return
        days = np.fromiter(map(_event_time, rows), np.int64, len(rows)) // DAY_MS
        start_day = self.start_ms // DAY_MS
        ids: Iterable[str] = map(_event_id, rows)
        first = int(days.min())
        if first >= start_day:
            self.ids |= batch.ids
        else:  # events older than the window, found to be new: not held
            keep = days >= start_day
            if not keep.any():
                return
            ids = list(compress(ids, keep.tolist()))
            days = days[keep]
            first = int(days.min())
            self.ids.update(ids)
        last = int(days.max())
        span = self._span(first, last)
        span.ids.extend(ids)
        if first != last:
            span.days.append(days.astype(np.int32))

    def expire(self, now_ms: int) -> int:
        """Move the window's start to that of `now_ms` (never back) and forget the ids of the
        days before it; return how many were forgotten."""
        self.start_ms = max(self.start_ms, self.window_start(now_ms))
        start_day = self.start_ms // DAY_MS
        dropped = 0
        for first, last in [key for key in self.spans if key[0] < start_day]:
            span = self.spans.pop((first, last))
            gone = span.ids
            if last >= start_day:  # straddles the start: keep its ids of the window's days
                days = np.concatenate(span.days)
                keep = days >= start_day
                gone = list(compress(span.ids, (~keep).tolist()))
                days = days[keep]
                rest = self._span(int(days.min()), last)
                rest.ids.extend(compress(span.ids, keep.tolist()))
                if int(days.min()) != last:
                    rest.days.append(days)
            self.ids.difference_update(gone)
            dropped += len(gone)
        return dropped

    def _span(self, first: int, last: int) -> _Span:
        span = self.spans.get((first, last))
        if span is None:
            span = self.spans[first, last] = _Span()
        return span


def _chunks(ids: Sequence[str], characters: int) -> Iterator[Sequence[str]]:
    """`ids` in consecutive runs of at most `characters` characters (quotes and commas
    included), each at least one id long."""
    start, size = 0, 0
    for i, event_id in enumerate(ids):
        size += len(event_id) + 3
        if size > characters and i > start:
            yield ids[start:i]
            start, size = i, len(event_id) + 3
    if start < len(ids):
        yield ids[start:]


class EngagementSink:
    def __init__(
        self,
        store: Store,
        *,
        window_days: int = 7,
        clock: Callable[[], float] = time.time,
        max_backoff: float = 5.0,
    ) -> None:
        self.store = store
        self.clock = clock
        """Seconds since the epoch: what "now" is for the dedupe window (tests move it)."""
        self.seen = SeenIds(window_days, self.now_ms())
        self._expired_ms = self.now_ms()
        self.stored = 0
        """Rows this sink has inserted since it was created."""
        self.max_backoff = max_backoff

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def load_seen(self) -> int:
        """Add to the known ids the streamed ids in the store of the window's days.

        One scan of the window's partitions, grouped by day in the store (~0.35 s per million
        ids on chDB; the ids cost ~100 bytes each in memory). Added to, not replaced: the
        consumer fetches and claims batches while this runs (the assignment callback does not
        hold it back), and a claimed id must stay known until the store has it. The window's
        start stays where it is: a poll being decoded meanwhile routed its events by it.
        """
        started = time.perf_counter()
        # Batch loads have their own id space (`csv:<hash>`) and their own duplicate check.
        columns = await self.store.query_columns(
            "SELECT intDiv(toUnixTimestamp64Milli(event_time), 86400000) AS day,"
            " groupArray(event_id)"
            " FROM engagement_events"
            " WHERE source = 'stream' AND event_time >= fromUnixTimestamp64Milli({start:Int64})"
            " GROUP BY day",
            {"start": self.seen.start_ms},
        )
        self.seen.merge(zip(*columns, strict=True) if columns else ())
        log.info(
            "sink.seen_loaded",
            ids=len(self.seen),
            spans=len(self.seen.spans),
            seconds=round(time.perf_counter() - started, 3),
        )
        return len(self.seen)

    def claim(self, batch: EventBatch) -> None:
        """Count the batch's ids of the window as seen from now on, before its insert: the next
        batch is decoded while this one is written. Should the write never happen (the worker
        stops with the store down), the offsets are not committed and the ids are reloaded from
        the store on the next assignment, so nothing is lost.

        At most once a minute, first forgets the days that have left the window.
        """
        now_ms = self.now_ms()
        if abs(now_ms - self._expired_ms) >= EXPIRE_EVERY_MS:
            self._expired_ms = now_ms
            dropped = self.seen.expire(now_ms)
            if dropped:
                log.info(
                    "sink.seen_expired", ids=dropped, kept=len(self.seen), start=self.seen.start_ms
                )
        self.seen.add(batch)

    async def stored_before(
        self,
        ids: Collection[str],
        *,
        before_ms: int,
        stopping: asyncio.Event | None = None,
    ) -> set[str]:
        """Which of `ids` the store holds for streamed events older than `before_ms` (the
        window's start: the window's ids are in `seen`).

        Exact by id at any age, so no lower time bound: the bound prunes only the window's
        partitions, and the scan reads the id, time and source columns of the rest (~65 ms per
        5M stored events on chDB). One query for the usual poll (more for ids of over 256 KiB).
        Retries with back-off while the store is unavailable; raises `StoreUnavailable` only
        when `stopping` is set mid-retry.
        """
        found: set[str] = set()
        delay = 0.2
        for chunk in _chunks(list(ids), _QUERY_ID_CHARACTERS):
            while True:
                try:
                    columns = await self.store.query_columns(
                        "SELECT event_id FROM engagement_events"
                        " WHERE source = 'stream'"
                        " AND event_time < fromUnixTimestamp64Milli({before:Int64})"
                        " AND event_id IN {ids:Array(String)}",
                        {"before": before_ms, "ids": chunk},
                    )
                    break
                except StoreUnavailable as exc:
                    log.warning("sink.check_failed", error=str(exc), ids=len(chunk), retry_in=delay)
                    if stopping is not None and stopping.is_set():
                        raise
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.max_backoff)
            found.update(columns[0] if columns else ())
        return found

    async def write(
        self, batch: EventBatch, *, stopping: asyncio.Event | None = None
    ) -> list[tuple[int, str]]:
        """Insert the batch, retrying with back-off while the store is unavailable. Its ids
        were claimed (`claim`) when it was decoded.

        Rows the store refuses (`StoreRejected`: sending them again fails again) are isolated by
        halving the insert until each refused row stands alone; every other row lands. Returns
        the refused rows as (index in the batch, the store's reason), for the dead-letter topic.

        Raises `StoreUnavailable` only when `stopping` is set mid-retry: the caller must then not
        commit offsets, so the batch is read again after the restart.
        """
        if not batch:
            return []
        table = await asyncio.to_thread(batch.arrow)  # off the event loop: ~10 ms a batch
        refused: list[tuple[int, str]] = []
        await self._insert(table, 0, refused, stopping)
        metrics.SINK_BATCH_ROWS.observe(len(batch))
        ENGAGEMENT_WRITES.bump()
        return refused

    async def _insert(
        self,
        table: pa.Table,
        first: int,
        refused: list[tuple[int, str]],
        stopping: asyncio.Event | None,
    ) -> None:
        delay = 0.2
        while True:
            started = time.perf_counter()
            try:
                await self.store.insert_arrow("engagement_events", table, _INSERT_SETTINGS)
                break
            except StoreRejected as exc:
                metrics.SINK_FAILURES.inc()
                if table.num_rows == 1:
                    log.warning("sink.row_refused", error=str(exc), row=first)
                    refused.append((first, str(exc)))
                    return
                half = table.num_rows // 2
                await self._insert(table.slice(0, half), first, refused, stopping)
                await self._insert(table.slice(half), first + half, refused, stopping)
                return
            except StoreUnavailable as exc:
                metrics.SINK_FAILURES.inc()
                log.warning(
                    "sink.insert_failed", error=str(exc), rows=table.num_rows, retry_in=delay
                )
                if stopping is not None and stopping.is_set():
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
        metrics.SINK_INSERT_SECONDS.observe(time.perf_counter() - started)
        self.stored += table.num_rows

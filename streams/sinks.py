"""The engagement sink: writes first-seen events to `engagement_events`, once per
(organisation, eventId).

Exactly-once effect on top of at-least-once delivery: the sink remembers hashes of the keys of
the dedupe window (`FK_DEDUPE_WINDOW_DAYS` of event time; reloaded from the store whenever
partitions are assigned, so keys written before a crash or by another worker are known), answers
for older events and for held hashes from the store by exact key, and the consumer drops keys
found either way before inserting.
Offsets are committed after the insert, so a crash replays at most the uncommitted batch, whose
ids are then found and dropped.
"""

import asyncio
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from operator import itemgetter

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import structlog

from core import metrics
from core.changes import ENGAGEMENT_WRITES
from core.clickhouse import Store, StoreRejected, StoreUnavailable
from core.repositories import engagement as engagement_store
from core.rollups import EngagementRollups
from streams.transforms import EventBatch

log = structlog.get_logger(__name__)

DAY_MS = 86_400_000
EXPIRE_EVERY_MS = 60_000
"""How often, at most, `claim` forgets the days that left the window."""

_QUERY_ID_CHARACTERS = 256 * 1024
"""Ids per store check, in characters: an HTTP server reads the ids from the request's URI,
which ClickHouse caps at 1 MiB (`http_max_uri_size`), quoting included."""

_event_time = itemgetter(1)


Key = tuple[str, str]
"""What makes an event a duplicate: (organisation, eventId)."""

_MAX_RUNS_PER_DAY = 24
"""Sorted runs a day may hold before the smallest are merged (bounds a probe's cost)."""


def _stored_rows(
    batch: EventBatch, refused: set[int]
) -> Iterator[tuple[str, str, str, int, int, int, int, int, int]]:
    """What the rollups take of each stored row of the batch (all but the refused)."""
    for i, (row, org) in enumerate(zip(batch.rows, batch.orgs, strict=True)):
        if i not in refused:
            yield org, row[3], row[2], row[1], row[6], row[7], row[8], row[9], row[10]


def _wall_ms() -> int:
    """Now, by the wall clock: what the rollups' windows move with (reads use it too)."""
    return int(time.time() * 1000)


def key_hashes(keys: Iterable[Key], count: int) -> npt.NDArray[np.int64]:
    """64-bit hashes of (organisation, eventId) keys, as the window holds them (this process's
    string hash: the window is rebuilt from the store at every start)."""
    return np.fromiter(map(hash, keys), np.int64, count)


class SeenIds:
    """The dedupe window: a 64-bit hash of every known streamed (organisation, eventId) whose
    event time is at or after `start_ms`, 8 bytes per id.

    A hash found here means "maybe seen": the consumer confirms it by the exact key (in the
    batches not stored yet, else in the store), so a collision costs one store check and never
    drops an event. A hash not found means new. Hashes are held per UTC day of event time in a
    few sorted runs (a claimed batch adds a run; runs of similar size are merged, so a day holds
    about log2 of its ids' runs), and expiry forgets whole days. The window is whole UTC days:
    `start_ms` is midnight of the day `window_days` before now, so between `window_days` and
    `window_days + 1` days of ids are held. It never moves back, so an event routed by it to
    memory or to the store is answered for by that side.
    """

    def __init__(self, window_days: int, now_ms: int) -> None:
        if window_days < 1:
            raise ValueError("the dedupe window is at least one day")
        self.window_ms = window_days * DAY_MS
        self.start_ms = self.window_start(now_ms)
        self.days: dict[int, list[npt.NDArray[np.int64]]] = {}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        return sum(run.nbytes for runs in self.days.values() for run in runs)

    def window_start(self, now_ms: int) -> int:
        """Midnight UTC of the first day of the window at `now_ms`."""
        return (now_ms - self.window_ms) // DAY_MS * DAY_MS

    def add(self, times_ms: npt.NDArray[np.int64], hashes: npt.NDArray[np.int64]) -> None:
        """Hold these hashes (of events at these times); those before `start_ms` are not held:
        the store answers for an older event once its batch is written."""
        keep = times_ms >= self.start_ms
        if not keep.all():
            times_ms, hashes = times_ms[keep], hashes[keep]
        if not len(hashes):
            return
        days = times_ms // DAY_MS
        first, last = int(days.min()), int(days.max())
        if first == last:
            self._add_run(first, hashes)
            return
        for day in np.unique(days).tolist():
            self._add_run(int(day), hashes[days == day])

    def holds(self, hashes: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """Which of `hashes` may have been seen (held in any day of the window)."""
        found = np.zeros(len(hashes), dtype=bool)
        if not len(hashes):
            return found
        for runs in self.days.values():
            for run in runs:
                at = np.searchsorted(run, hashes)
                np.minimum(at, len(run) - 1, out=at)
                found |= run[at] == hashes
        return found

    def expire(self, now_ms: int) -> int:
        """Move the window's start to that of `now_ms` (never back) and forget the ids of the
        days before it; return how many were forgotten."""
        self.start_ms = max(self.start_ms, self.window_start(now_ms))
        start_day = self.start_ms // DAY_MS
        dropped = 0
        for day in [d for d in self.days if d < start_day]:
            dropped += sum(len(run) for run in self.days.pop(day))
        self._size -= dropped
        return dropped

    def _add_run(self, day: int, hashes: npt.NDArray[np.int64]) -> None:
        runs = self.days.setdefault(day, [])
        runs.append(np.sort(hashes))
        self._size += len(hashes)
        # Merge while the last run is at least half the one before it (sizes stay geometric),
        # and merge the two smallest if a day still holds too many runs.
        while len(runs) > 1 and (
            2 * len(runs[-1]) >= len(runs[-2]) or len(runs) > _MAX_RUNS_PER_DAY
        ):
            last = runs.pop()
            runs[-1] = np.sort(np.concatenate((runs[-1], last)))


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
        default_org: str = "demo",
        clock: Callable[[], float] = time.time,
        max_backoff: float = 5.0,
        rollups: EngagementRollups | None = None,
    ) -> None:
        self.store = store
        self.rollups = rollups
        """Told of every stored event (the embedded API answers metrics from them)."""
        self.default_org = default_org
        """The organisation of events stored before events carried one (their `org` is '')."""
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
        """Add to the window the streamed events in the store of the window's days.

        One scan of the window's partitions (~0.5 s per million ids on chDB, hashing included;
        8 bytes per id held). Added to, not replaced: the consumer fetches and claims batches
        while this runs (the assignment callback does not hold it back), and a claimed id must
        stay known until the store has it. The window's start stays where it is: a poll being
        decoded meanwhile routed its events by it.
        """
        started = time.perf_counter()
        # Batch loads have their own id space (`csv:<hash>`) and their own duplicate check.
        columns = await engagement_store.streamed_event_times(
            self.store, self.seen.start_ms, self.default_org
        )
        if columns and len(columns[0]):
            times, orgs, ids = columns
            count = len(ids)
            self.seen.add(
                np.asarray(times, dtype=np.int64), key_hashes(zip(orgs, ids, strict=True), count)
            )
        log.info(
            "sink.seen_loaded",
            ids=len(self.seen),
            bytes=self.seen.nbytes,
            seconds=round(time.perf_counter() - started, 3),
        )
        return len(self.seen)

    def claim(self, batch: EventBatch) -> None:
        """Count the batch's events of the window as seen from now on, before its insert: the
        next batch is decoded while this one is written. Should the write never happen (the
        worker stops with the store down), the offsets are not committed and the ids are
        reloaded from the store on the next assignment, so nothing is lost.

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
        rows = batch.rows
        if rows:
            times = np.fromiter(map(_event_time, rows), np.int64, len(rows))
            self.seen.add(times, key_hashes(batch.keys(), len(rows)))

    async def stored_keys(
        self,
        keys: Collection[Key],
        *,
        before_ms: int | None,
        stopping: asyncio.Event | None = None,
    ) -> set[Key]:
        """Which of these (organisation, eventId) keys the store holds for streamed events
        (older than `before_ms` when given: the window's start, for events the window does not
        hold).

        Exact by key at any age, so no lower time bound: the bound prunes only the window's
        partitions, and the scan reads the id, time and source columns of the rest (~65 ms per
        5M stored events on chDB). One query for the usual poll (more for ids of over 256 KiB).
        Retries with back-off while the store is unavailable; raises `StoreUnavailable` only
        when `stopping` is set mid-retry.
        """
        wanted = set(keys)
        found: set[Key] = set()
        delay = 0.2
        ids = sorted({event_id for _, event_id in wanted})
        for chunk in _chunks(ids, _QUERY_ID_CHARACTERS):
            while True:
                try:
                    columns = await engagement_store.streamed_event_keys(
                        self.store, chunk, before_ms=before_ms, default_org=self.default_org
                    )
                    break
                except StoreUnavailable as exc:
                    log.warning("sink.check_failed", error=str(exc), ids=len(chunk), retry_in=delay)
                    if stopping is not None and stopping.is_set():
                        raise
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.max_backoff)
            if columns:
                found.update(k for k in zip(*columns, strict=True) if k in wanted)
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
        if self.rollups is not None:
            self.rollups.add_rows(_stored_rows(batch, {i for i, _ in refused}), _wall_ms())
        metrics.SINK_BATCH_ROWS.observe(len(batch))
        ENGAGEMENT_WRITES.bump(set(zip(batch.orgs, (row[3] for row in batch.rows), strict=True)))
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
                await engagement_store.insert_event_table(self.store, table)
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

"""The engagement sink: writes first-seen events to `engagement_events`, once per eventId.

Exactly-once effect on top of at-least-once delivery: the sink remembers every eventId it has
stored (reloaded from the store whenever partitions are assigned, so ids written before a crash
or by another worker are known), drops ids it has seen, and only then inserts. Offsets are
committed after the insert, so a crash replays at most the uncommitted batch, whose ids are then
found in the store and dropped.
"""

import asyncio
import time

import structlog

from core import metrics
from core.changes import ENGAGEMENT_WRITES
from core.clickhouse import Store, StoreUnavailable
from streams.transforms import EventBatch

log = structlog.get_logger(__name__)


class EngagementSink:
    def __init__(self, store: Store, *, max_backoff: float = 5.0) -> None:
        self.store = store
        self.seen: set[str] = set()
        self.stored = 0
        """Rows this sink has inserted since it was created."""
        self.max_backoff = max_backoff

    async def load_seen(self) -> int:
        """Replace the known ids with every streamed id in the store (a column scan, ~0.1 s per
        million ids on chDB; the set costs ~90 bytes per id)."""
        started = time.perf_counter()
        # Batch loads have their own id space (`csv:<hash>`) and their own duplicate check.
        columns = await self.store.query_columns(
            "SELECT event_id FROM engagement_events WHERE source = 'stream'"
        )
        # In place: a batch being decoded holds a reference to this set.
        self.seen.clear()
        self.seen.update(columns[0] if columns else ())
        log.info(
            "sink.seen_loaded", ids=len(self.seen), seconds=round(time.perf_counter() - started, 3)
        )
        return len(self.seen)

    def claim(self, batch: EventBatch) -> None:
        """Count the batch's ids as seen from now on, before its insert: the next batch is
        decoded while this one is written. Should the write never happen (the worker stops
        with the store down), the offsets are not committed and the ids are reloaded from the
        store on the next assignment, so nothing is lost."""
        self.seen |= batch.ids

    async def write(self, batch: EventBatch, *, stopping: asyncio.Event | None = None) -> None:
        """Insert the batch, retrying with back-off while the store is unavailable. Its ids
        were claimed (`claim`) when it was decoded.

        Raises `StoreUnavailable` only when `stopping` is set mid-retry: the caller must then not
        commit offsets, so the batch is read again after the restart.
        """
        if not batch:
            return
        delay = 0.2
        table = await asyncio.to_thread(batch.arrow)  # off the event loop: ~10 ms a batch
        while True:
            started = time.perf_counter()
            try:
                await self.store.insert_arrow("engagement_events", table)
                break
            except StoreUnavailable as exc:
                metrics.SINK_FAILURES.inc()
                log.warning("sink.insert_failed", error=str(exc), rows=len(batch), retry_in=delay)
                if stopping is not None and stopping.is_set():
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
        metrics.SINK_INSERT_SECONDS.observe(time.perf_counter() - started)
        metrics.SINK_BATCH_ROWS.observe(len(batch))
        self.stored += len(batch)
        ENGAGEMENT_WRITES.bump()

"""The engagement consumer: `engagement-events` → validate → dedupe → store, in batches.

A Faust service hosting a batch aiokafka consumer (see docs/batch-consumer.md): Faust's
per-message path tops out near 4k events/s on two cores, while `getmany` batches reach the
pipeline target. Offsets are committed only after the store has the batch and the dead letters
are acknowledged by the broker, so delivery is at-least-once and the sink makes it exactly-once
in effect.
"""

import asyncio
import gc
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import mode
import numpy as np
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError

from core import metrics
from core.changes import STORED
from core.clickhouse import Store, StoreUnavailable
from core.kafka import client_security
from core.rollups import EngagementRollups
from core.settings import Settings
from schemas.events import (
    ORG_KAFKA_HEADER,
    REQUEST_ID_KAFKA_HEADER,
    DeadLetterReason,
)
from streams.sinks import EngagementSink, Key, key_hashes
from streams.stalls import StallWatch, awaiting
from streams.transforms import EventBatch, Rejection, Row, decode_rows

log = structlog.get_logger(__name__)

_YIELD_EVERY = 1000
_BACKLOG = 10
"""A poll of at least 1/_BACKLOG of `FK_SINK_MAX_BATCH` records means the consumer is behind."""

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""Largest message the consumer fetches and the dead-letter producer forwards unchanged."""


_COLLECT_EVERY_SECONDS = 1.0


class _Collector:
    """Keeps Python's cyclic garbage collector paused while polls are read and decoded, and
    lets it run at most once a second in between.

    A poll creates a record object per message and decoding keeps a row per event alive until
    the insert, so the collector would run every 700 allocations and re-scan the batch each
    time: about a third of the per-event cost (docs/faust-profiling.md). Run once per poll, a
    collection still scans the live batch (14 % of the consumer's time at 8 polls a second), so
    it runs once a second instead: the rest of the process (the embedded API shares the loop)
    keeps its reference cycles freed, a second late at most. The batch holds no cycles.
    """

    def __init__(self) -> None:
        self.deferred = False
        """True while the collector is off because of us, not because someone else turned it
        off: `resume` turns it back on once it is due."""
        self.collected = time.monotonic()

    @contextmanager
    def paused(self) -> Iterator[None]:
        was_enabled = gc.isenabled() or self.deferred
        gc.disable()
        try:
            yield
        finally:
            if was_enabled:
                self.resume(force=False)

    def resume(self, *, force: bool = True) -> None:
        """Turn the collector back on if it is off because of us (when due, unless `force`)."""
        now = time.monotonic()
        if force or now - self.collected >= _COLLECT_EVERY_SECONDS:
            self.collected = now
            self.deferred = False
            gc.enable()
        else:
            self.deferred = True


_COLLECTOR = _Collector()


def _org(record: ConsumerRecord[bytes, bytes], default: str) -> str:
    """The organisation the record's event belongs to: its `fk-org` header, else `default`."""
    for name, value in record.headers or ():
        if name == ORG_KAFKA_HEADER and value:
            return str(value.decode("utf-8", "replace"))
    return default


def _request_id(record: ConsumerRecord[bytes, bytes]) -> str | None:
    """The id of the HTTP request that published the record, when one did."""
    for name, value in record.headers or ():
        if name == REQUEST_ID_KAFKA_HEADER:
            return str(value.decode("latin-1"))
    return None


class _SettleAndReload(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, service: "EngagementConsumer") -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        """Land what was read (stored and committed) before the partitions move on."""
        await self.service.flush()

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        await self.service.sink.load_seen()
        metrics.ASSIGNED_PARTITIONS.set(len(list(assigned)))


@dataclass(slots=True)
class _Decoded:
    """Decoded polls: what to store, what to dead-letter, what to commit."""

    records: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    events: EventBatch
    rejected: list[tuple[ConsumerRecord[bytes, bytes], Rejection]]
    duplicates: int
    received: int

    def absorb(self, later: "_Decoded") -> None:
        """Append a later poll's records (the two then land as one batch)."""
        for tp, records in later.records.items():
            self.records.setdefault(tp, []).extend(records)
        self.events.extend(later.events)
        self.rejected.extend(later.rejected)
        self.duplicates += later.duplicates
        self.received += later.received


class EngagementConsumer(mode.Service):
    """Consumes `engagement-events` in batches and lands them in the store.

    `clock` (seconds since the epoch) is what "now" is for the future-timestamp check and the
    dedupe window. `rollups`, when given, is told of every stored event.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        rollups: EngagementRollups | None = None,
        **kwargs: Any,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.sink = EngagementSink(
            store,
            window_days=settings.dedupe_window_days,
            default_org=settings.default_org,
            clock=clock,
            rollups=rollups,
        )
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self._stopping = asyncio.Event()
        self._landing: asyncio.Future[None] | None = None
        self._pending: _Decoded | None = None
        self._in_flight: _Decoded | None = None
        """The batch being landed, until the store has it."""
        self._consuming: asyncio.Task[Any] | None = None
        self.watch = StallWatch("engagement", lambda: self.consumer, self._watched)
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        s = self.settings
        self.producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap,
            **client_security(s),
            acks="all",
            linger_ms=5,
            max_request_size=MAX_MESSAGE_BYTES + 64 * 1024,
        )
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap,
            **client_security(s),
            group_id=s.consumer_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=s.kafka_session_timeout_ms,
            heartbeat_interval_ms=s.kafka_heartbeat_interval_ms,
            max_poll_records=s.sink_max_batch,
            max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
            fetch_max_bytes=64 * 1024 * 1024,
            # The embedded API answers POST /events once this consumer stored them: do not let
            # the broker hold an idle fetch for aiokafka's default 500 ms.
            fetch_max_wait_ms=20,
        )
        self.consumer.subscribe([s.engagement_topic], listener=_SettleAndReload(self))
        await self.producer.start()
        await self.consumer.start()
        log.info("engagement.started", topic=s.engagement_topic, group=s.consumer_group)

    async def on_stop(self) -> None:
        self._stopping.set()
        try:
            await self.flush()
        except StoreUnavailable:
            log.warning("engagement.stopped_unstored", detail="the last batch is read again")
        if self.consumer is not None:
            await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()

    async def on_shutdown(self) -> None:
        # After the consume task has ended: its last poll may have left the collector off.
        if _COLLECTOR.deferred:
            _COLLECTOR.resume()

    @mode.Service.task
    async def _consume(self) -> None:
        """Poll and decode, landing one batch while the next is read and decoded.

        At most one batch is in flight: it is stored and its offsets committed before the next
        one starts landing, so commits stay in order and a crash replays only uncommitted
        batches. The store insert runs in a thread, so this overlap is real parallelism.

        A poll of at least a tenth of `FK_SINK_MAX_BATCH` records means a backlog: the next
        poll joins the same insert, up to that many records, because fewer, larger inserts cost
        the store less (its merge CPU halved on million-event runs: docs/faust-profiling.md).
        A smaller poll means the consumer has caught up, and lands as soon as the batch before
        it is stored and `FK_SINK_MIN_INSERT_INTERVAL_MS` after the previous insert began (polls
        meanwhile join it: a steady stream makes at most a few inserts a second, each of which
        costs the store a part per table it feeds); the last poll of a backlog waits at most one
        poll timeout (100 ms).
        """
        assert self.consumer is not None
        self._consuming = asyncio.current_task()
        timeout = self.settings.sink_poll_timeout_ms
        limit = self.settings.sink_max_batch
        interval = self.settings.sink_min_insert_interval_ms / 1000
        landed_at = -interval
        while not self.should_stop:
            pending = self._pending
            # Before the next insert may start, poll only until it may.
            wait = landed_at + interval - time.monotonic()
            poll_ms = (
                timeout if pending is None or wait <= 0 else max(1, min(timeout, int(wait * 1000)))
            )
            # Reading a poll allocates a record object per message: the collector waits until
            # the poll is decoded, and runs at most once a second (see `_Collector`).
            with _COLLECTOR.paused():
                batch = await self.consumer.getmany(
                    timeout_ms=poll_ms,
                    max_records=max(limit - (pending.received if pending else 0), 1),
                )
            polled = 0
            if batch:
                self.watch.read()
                try:
                    decoded = await self.decode(batch)
                except StoreUnavailable:  # only while stopping: not landed, so read again
                    log.warning("engagement.stopped_unstored", detail="the last poll is read again")
                    return
                polled = decoded.received
                if self._pending is None:  # read again: a rebalance may have landed it
                    self._pending = decoded
                else:
                    self._pending.absorb(decoded)
            pending = self._pending
            # A small poll means the consumer has caught up: land now. A large one means a
            # backlog: gather the next poll into the same insert, up to the limit.
            caught_up = polled < limit // _BACKLOG
            due = time.monotonic() >= landed_at + interval
            if pending is not None and ((caught_up and due) or pending.received >= limit):
                await self.settle()
                landed_at = time.monotonic()
                self._land_pending()

    @mode.Service.task
    async def _watch(self) -> None:
        """Reports a stalled consumer and reconnects it (`streams.stalls`)."""
        await self.watch.run(lambda: self.should_stop, self.sleep)

    def _watched(self) -> dict[str, Any]:
        return {
            "pending_records": self._pending.received if self._pending else 0,
            "in_flight_records": self._in_flight.received if self._in_flight else 0,
            "consume_task": awaiting(self._consuming),
            "landing_task": awaiting(self._landing),
        }

    async def settle(self) -> None:
        """Wait until the batch in flight, if any, is stored and committed."""
        while self._landing is not None:
            landing, self._landing = self._landing, None
            await landing

    def _land_pending(self) -> None:
        """Start landing the polls gathered so far (the batch before them is settled)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self._in_flight = pending
            self._landing = asyncio.ensure_future(self.land(pending))

    async def flush(self) -> None:
        """Land the batch in flight and then the one gathered meanwhile, if any."""
        await self.settle()
        self._land_pending()
        await self.settle()

    async def decode(
        self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> _Decoded:
        """Validate and dedupe one poll's records against every key stored or in flight; an
        event's key is (organisation, eventId).

        An event of the dedupe window is looked up in memory (`sink.seen`, by hash, after the
        loop, for the whole poll at once); one whose hash is held, and one older than the window,
        is set aside and checked by its exact key against the batches not stored yet and the
        store, all of the poll's in one query (`_drop_known`). Raises `StoreUnavailable` only
        when the consumer stops while the store is down: the poll is then read again after the
        restart.
        """
        now_ms = int(self.clock() * 1000)
        max_future_ms = self.settings.max_future_skew_seconds * 1000
        default_org = self.settings.default_org
        events = EventBatch()
        rejected: list[tuple[ConsumerRecord[bytes, bytes], Rejection]] = []
        duplicates = 0
        received = 0
        window_start_ms = self.sink.seen.start_ms
        # The poll's events older than the window (first copies, by key): checked after the loop.
        older: dict[Key, tuple[Row, int, int]] = {}
        with _COLLECTOR.paused():
            for tp, records in batch.items():
                received += len(records)
                partition = tp.partition
                for start in range(0, len(records), _YIELD_EVERY):
                    if start:
                        await asyncio.sleep(0)  # let the API and heartbeats run between chunks
                    chunk = records[start : start + _YIELD_EVERY]
                    decoded = decode_rows(
                        [record.value for record in chunk],
                        now_ms=now_ms,
                        max_future_ms=max_future_ms,
                    )
                    rows: list[Row] = []
                    offsets: list[int] = []
                    orgs: list[str] = []
                    for record, row in zip(chunk, decoded, strict=True):
                        if isinstance(row, Rejection):
                            rejected.append((record, row))
                            continue
                        org = _org(record, default_org) if record.headers else default_org
                        if row[1] < window_start_ms:
                            key = (org, row[0])
                            if key in older:
                                duplicates += 1
                            else:
                                older[key] = (row, partition, record.offset)
                            continue
                        rows.append(row)
                        offsets.append(record.offset)
                        orgs.append(org)
                    duplicates += events.add_rows(
                        rows, partitions=[partition] * len(rows), offsets=offsets, orgs=orgs
                    )
        held = self.sink.seen.holds(key_hashes(events.keys(), len(events))) if events else None
        if held is not None and held.any():
            # Maybe seen before: set aside with the older events for the exact check.
            maybe = events
            events = EventBatch()
            for i, keep in enumerate(held.tolist()):
                if keep:
                    key = (maybe.orgs[i], maybe.rows[i][0])
                    older[key] = (maybe.rows[i], maybe.partitions[i], maybe.offsets[i])
                else:
                    events.add_row(
                        maybe.rows[i],
                        partition=maybe.partitions[i],
                        offset=maybe.offsets[i],
                        org=maybe.orgs[i],
                    )
        if older:
            duplicates += await self._drop_known(older, events.ids, window_start_ms)
            for (org, _), (row, partition, offset) in older.items():
                events.add_row(row, partition=partition, offset=offset, org=org)
        self.sink.claim(events)
        metrics.PIPELINE_EVENTS_IN.inc(received)
        return _Decoded(batch, events, rejected, duplicates, received)

    async def _drop_known(
        self, candidates: dict[Key, tuple[Row, int, int]], ids: set[Key], window_start_ms: int
    ) -> int:
        """Remove from `candidates` (a poll's events older than the window, and those of the
        window whose hash the window holds) those whose key is known, and return how many.

        Known: among the poll's other events (`ids`), in a batch decoded but not stored yet, or
        in the store. The batches not stored are looked at before the store is asked, so one
        stored meanwhile is found by one or the other. An older event whose hash the window
        does not hold can only match a stored event older than the window (the store check is
        bounded to those partitions); the others are checked at any time.
        """
        unstored = [d.events.ids for d in (self._in_flight, self._pending) if d is not None]
        known = [k for k in candidates if k in ids or any(k in u for u in unstored)]
        for key in known:
            del candidates[key]
        if not candidates:
            return len(known)
        started = time.perf_counter()
        keys = list(candidates)
        held = self.sink.seen.holds(key_hashes(keys, len(keys)))
        anywhen = [k for k, h in zip(keys, held.tolist(), strict=True) if h]
        older = [
            k
            for k, h in zip(keys, held.tolist(), strict=True)
            if not h and candidates[k][0][1] < window_start_ms
        ]
        stored: set[Key] = set()
        if anywhen:
            stored |= await self.sink.stored_keys(anywhen, before_ms=None, stopping=self._stopping)
        if older:
            stored |= await self.sink.stored_keys(
                older, before_ms=window_start_ms, stopping=self._stopping
            )
        for key in stored:
            del candidates[key]
        log.debug(
            "engagement.keys_checked",
            events=len(candidates) + len(stored),
            stored=len(stored),
            seconds=round(time.perf_counter() - started, 3),
        )
        return len(known) + len(stored)

    async def land(self, decoded: _Decoded) -> None:
        """Dead-letter the rejects, store the events, then commit the batch's offsets."""
        assert self.consumer is not None
        batch, events = decoded.records, decoded.events
        await self._dead_letter(decoded.rejected)
        refused = await self.sink.write(events, stopping=self._stopping)
        if refused:
            await self._dead_letter(self._refused_records(decoded, refused))
        if self._in_flight is decoded:
            self._in_flight = None
        # The effects are durable now: the embedded API may acknowledge these records' writers.
        STORED.advance(
            self.settings.engagement_topic,
            {tp.partition: rs[-1].offset + 1 for tp, rs in batch.items()},
        )
        try:
            await self.consumer.commit(
                {tp: records[-1].offset + 1 for tp, records in batch.items()}
            )
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced while we worked: the batch is stored, its offsets are not, so
            # whoever owns the partitions now reads it again and the sink drops it as seen.
            log.warning("engagement.commit_failed", error=type(exc).__name__, events=len(events))

        done = time.time()
        metrics.PIPELINE_EVENTS_STORED.inc(len(events))
        metrics.PIPELINE_DUPLICATES.inc(decoded.duplicates)
        for tp, records in batch.items():
            high = self.consumer.highwater(tp)
            if high is not None:
                metrics.CONSUMER_LAG.labels(str(tp.partition)).set(high - records[-1].offset - 1)
            sent = np.fromiter((r.timestamp for r in records), np.float64, len(records))
            ages = np.maximum(done - sent / 1000, 0.0)
            metrics.observe_many(metrics.PIPELINE_FRESHNESS_SECONDS, ages)

    @staticmethod
    def _refused_records(
        decoded: _Decoded, refused: list[tuple[int, str]]
    ) -> list[tuple[ConsumerRecord[bytes, bytes], Rejection]]:
        """The consumed records of the batch's rows the store refused, with its reasons."""
        events = decoded.events
        by_position = {
            (tp.partition, record.offset): record
            for tp, records in decoded.records.items()
            for record in records
        }
        return [
            (
                by_position[events.partitions[row], events.offsets[row]],
                Rejection(DeadLetterReason.store_rejected, error),
            )
            for row, error in refused
        ]

    async def _dead_letter(
        self, rejected: list[tuple[ConsumerRecord[bytes, bytes], Rejection]]
    ) -> None:
        """Forward each rejected message's raw bytes unchanged, the reason in its headers."""
        if not rejected:
            return
        assert self.producer is not None
        topic = self.settings.engagement_dlq_topic
        sends = []
        for record, rejection in rejected:
            headers = [
                ("fk-dlq-reason", rejection.reason.value.encode()),
                ("fk-dlq-error", rejection.error.encode()[:1024]),
                ("fk-source-topic", record.topic.encode()),
                ("fk-source-partition", str(record.partition).encode()),
                ("fk-source-offset", str(record.offset).encode()),
            ]
            sends.append(
                await self.producer.send(topic, value=record.value, key=record.key, headers=headers)
            )
            metrics.PIPELINE_DEAD_LETTERS.labels(rejection.reason.value).inc()
            log.info(
                "engagement.dead_letter",
                request_id=_request_id(record),
                reason=rejection.reason.value,
                error=rejection.error,
                partition=record.partition,
                offset=record.offset,
            )
        await asyncio.gather(*sends)

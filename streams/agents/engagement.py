"""The engagement consumer: `engagement-events` → validate → dedupe → store, in batches.

A Faust service hosting a batch aiokafka consumer (see README, "Why a batch consumer"): Faust's
per-message path tops out near 4k events/s on two cores, while `getmany` batches reach the
pipeline target. Offsets are committed only after the store has the batch and the dead letters
are acknowledged by the broker, so delivery is at-least-once and the sink makes it exactly-once
in effect.
"""

import asyncio
import time
from collections.abc import Iterable
from typing import Any

import mode
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError

from core import metrics
from core.changes import STORED
from core.clickhouse import Store
from core.settings import Settings
from schemas.events import REQUEST_ID_KAFKA_HEADER
from streams.sinks import EngagementSink
from streams.transforms import EventBatch, Rejection, decode_event

log = structlog.get_logger(__name__)

_YIELD_EVERY = 1000

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""Largest message the consumer fetches and the dead-letter producer forwards unchanged."""


def _request_id(record: ConsumerRecord[bytes, bytes]) -> str | None:
    """The id of the HTTP request that published the record, when one did."""
    for name, value in record.headers or ():
        if name == REQUEST_ID_KAFKA_HEADER:
            return str(value.decode("latin-1"))
    return None


class _ReloadOnAssign(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, sink: EngagementSink) -> None:
        self.sink = sink

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        """Nothing to flush: every processed batch is committed before the next poll."""

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        await self.sink.load_seen()
        metrics.ASSIGNED_PARTITIONS.set(len(list(assigned)))


class EngagementConsumer(mode.Service):
    """Consumes `engagement-events` in batches and lands them in the store."""

    def __init__(self, settings: Settings, store: Store, **kwargs: Any) -> None:
        self.settings = settings
        self.sink = EngagementSink(store)
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self._stopping = asyncio.Event()
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        s = self.settings
        self.producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap,
            acks="all",
            linger_ms=5,
            max_request_size=MAX_MESSAGE_BYTES + 64 * 1024,
        )
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap,
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
        self.consumer.subscribe([s.engagement_topic], listener=_ReloadOnAssign(self.sink))
        await self.producer.start()
        await self.consumer.start()
        log.info("engagement.started", topic=s.engagement_topic, group=s.consumer_group)

    async def on_stop(self) -> None:
        self._stopping.set()
        if self.consumer is not None:
            await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()

    @mode.Service.task
    async def _consume(self) -> None:
        assert self.consumer is not None
        timeout = self.settings.sink_poll_timeout_ms
        while not self.should_stop:
            batch = await self.consumer.getmany(
                timeout_ms=timeout, max_records=self.settings.sink_max_batch
            )
            if batch:
                await self.process(batch)

    async def process(
        self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> None:
        """Validate, dead-letter, dedupe and store one poll's records, then commit them."""
        assert self.consumer is not None
        assert self.producer is not None
        now_ms = int(time.time() * 1000)
        max_future_ms = self.settings.max_future_skew_seconds * 1000
        events = EventBatch()
        rejected: list[tuple[ConsumerRecord[bytes, bytes], Rejection]] = []
        duplicates = 0
        received = 0
        is_new = self.sink.is_new
        for tp, records in batch.items():
            received += len(records)
            for n, record in enumerate(records, 1):
                if n % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # let the API and heartbeats run between chunks
                result = decode_event(record.value, now_ms=now_ms, max_future_ms=max_future_ms)
                if isinstance(result, Rejection):
                    rejected.append((record, result))
                elif is_new(result.event_id) and result.event_id not in events.ids:
                    events.add(
                        result, source="stream", partition=tp.partition, offset=record.offset
                    )
                else:
                    duplicates += 1
        metrics.PIPELINE_EVENTS_IN.inc(received)

        await self._dead_letter(rejected)
        await self.sink.write(events, stopping=self._stopping)
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
        metrics.PIPELINE_DUPLICATES.inc(duplicates)
        for tp, records in batch.items():
            high = self.consumer.highwater(tp)
            if high is not None:
                metrics.CONSUMER_LAG.labels(str(tp.partition)).set(high - records[-1].offset - 1)
            for record in records:
                metrics.PIPELINE_FRESHNESS_SECONDS.observe(max(0.0, done - record.timestamp / 1000))

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

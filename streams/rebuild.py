"""`fk rebuild`: the store's views replayed from the topics into a fresh database.

`campaign-events` gives the campaigns table (every version) and the live insights;
`engagement-events` gives the events table and everything the store keeps from it (post totals,
follower gauges, hashtag minutes) through the engagement consumer itself, under a group of its
own. What the topics never carried (webhook endpoints and delivery history, CSV loads, briefs,
idempotency keys of campaign commands) is not rebuilt. A topic whose oldest messages are gone
(retention) gives a partial rebuild, refused unless asked for.
"""

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from pydantic import ValidationError

from core.clickhouse import Store
from core.kafka import client_security
from core.repositories import campaigns as campaign_store
from core.repositories import engagement as engagement_store
from core.settings import Settings
from schemas.campaigns import CampaignEvent
from schemas.insights import CampaignInsight
from streams.agents.campaigns import decode_campaign_message, project
from streams.agents.engagement import EngagementConsumer
from streams.transforms import Rejection

log = structlog.get_logger(__name__)

_CAMPAIGN_BATCH = 5000


class RebuildRefused(Exception):
    """The rebuild cannot give the same answers as the store it replaces (the message says
    why); nothing was written."""


@dataclass(frozen=True, slots=True)
class TopicExtent:
    """Per partition, the oldest offset the broker still has and the end when the rebuild
    began; `lost` is how many messages retention removed before the oldest kept."""

    topic: str
    start: dict[int, int]
    end: dict[int, int]

    @property
    def lost(self) -> int:
        return sum(self.start.values())

    @property
    def messages(self) -> int:
        return sum(self.end[p] - self.start[p] for p in self.end)


@dataclass
class RebuildReport:
    database: str
    campaign_events: int = 0
    campaign_versions: int = 0
    insights: int = 0
    engagement_records: int = 0
    skipped: int = 0
    """Messages of `campaign-events` that were neither a campaign event nor an insight."""
    partial: list[str] = field(default_factory=list)
    """The topics whose oldest messages retention removed (empty for a complete rebuild)."""


async def rebuild(
    settings: Settings,
    target: Store,
    *,
    engagement: bool = True,
    allow_partial: bool = False,
    timeout: float = 3600.0,
) -> RebuildReport:
    """Replay `campaign-events` and (with `engagement`) `engagement-events` from their oldest
    retained message to their end when called, into `target`, an empty database.

    Raises RebuildRefused when `target` already holds events or campaigns, or when retention
    removed messages of a replayed topic and `allow_partial` is False."""
    await _refuse_unless_empty(target)
    topics = [settings.campaign_topic] + ([settings.engagement_topic] if engagement else [])
    extents = await _extents(settings, topics)
    partial = [e.topic for e in extents.values() if e.lost]
    if partial and not allow_partial:
        detail = ", ".join(f"{e.topic}: {e.lost} messages" for e in extents.values() if e.lost)
        raise RebuildRefused(
            f"retention removed the oldest messages ({detail}); the rebuilt store would miss"
            " them (--allow-partial rebuilds from what is left)"
        )
    report = RebuildReport(target.database, partial=partial)
    deadline = time.monotonic() + timeout
    await _replay_campaigns(settings, target, extents[settings.campaign_topic], report, deadline)
    if engagement:
        extent = extents[settings.engagement_topic]
        await _replay_engagement(settings, target, extent, deadline)
        report.engagement_records = extent.messages
    log.info("rebuild.done", **{k: v for k, v in vars(report).items() if k != "partial"})
    return report


async def _refuse_unless_empty(target: Store) -> None:
    if await engagement_store.count_events(target) or await campaign_store.count_campaign_rows(
        target
    ):
        raise RebuildRefused(
            f"database {target.database!r} already holds events or campaigns: rebuild into a"
            " new one"
        )


def _consumer(settings: Settings) -> AIOKafkaConsumer:
    """A reader of whole partitions, without a group (it commits nothing)."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        # The embedded broker holds a fetch for the whole wait even when it has data to send.
        fetch_max_wait_ms=20,
        **client_security(settings),
    )


async def _extents(settings: Settings, topics: Sequence[str]) -> dict[str, TopicExtent]:
    consumer = _consumer(settings)
    await consumer.start()
    try:
        known = await consumer.topics()
        tps = []
        for topic in topics:
            if topic not in known:
                raise RebuildRefused(f"topic {topic} does not exist (run `fk init`)")
            tps += [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        start = await consumer.beginning_offsets(tps)
        end = await _high_watermarks(consumer, tps)
        return {
            topic: TopicExtent(
                topic,
                {tp.partition: start[tp] for tp in tps if tp.topic == topic},
                {tp.partition: end[tp] for tp in tps if tp.topic == topic},
            )
            for topic in topics
        }
    finally:
        await consumer.stop()


async def _high_watermarks(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], timeout: float = 30.0
) -> dict[TopicPartition, int]:
    """Each partition's end as a fetch reports it. The embedded broker (Tansu 0.6) answers a
    ListOffsets for the end with its last batch's base offset plus one (`end_offsets` gave
    1 for a partition of five records sent in one batch), so the fetch's high watermark is
    taken too, and the larger one kept."""
    listed = await consumer.end_offsets(tps)
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    deadline = time.monotonic() + timeout
    while unknown := [tp for tp in tps if consumer.highwater(tp) is None]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no fetch answered for {unknown}")
        await consumer.getmany(*unknown, timeout_ms=200, max_records=1)
    return {tp: max(listed[tp], consumer.highwater(tp) or 0) for tp in tps}


async def _replay_campaigns(
    settings: Settings,
    target: Store,
    extent: TopicExtent,
    report: RebuildReport,
    deadline: float,
) -> None:
    """Every campaign version and insight, read once in offset order per partition."""
    consumer = _consumer(settings)
    await consumer.start()
    try:
        tps = [TopicPartition(extent.topic, p) for p in extent.end]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        remaining = {tp for tp in tps if extent.end[tp.partition] > extent.start[tp.partition]}
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{extent.topic} not replayed before the deadline")
            batch = await consumer.getmany(*remaining, timeout_ms=500, max_records=_CAMPAIGN_BATCH)
            records: list[ConsumerRecord[bytes, bytes]] = []
            for tp, polled in batch.items():
                end = extent.end[tp.partition]
                records += [r for r in polled if r.offset < end]
                if polled and polled[-1].offset + 1 >= end:
                    remaining.discard(tp)
            await _store_campaign_records(target, records, report)
    finally:
        await consumer.stop()


async def _store_campaign_records(
    target: Store, records: list[ConsumerRecord[bytes, bytes]], report: RebuildReport
) -> None:
    """As the campaign projection stores them (its webhook deliveries left out: they went out
    when the events were new)."""
    events: list[CampaignEvent | CampaignInsight] = []
    for record in records:
        try:
            events.append(decode_campaign_message(record.value or b""))
        except ValidationError:
            report.skipped += 1
            log.warning(
                "rebuild.bad_campaign_event", partition=record.partition, offset=record.offset
            )
    await project(target, events)
    report.campaign_events += len(records)
    report.campaign_versions += sum(isinstance(e, CampaignEvent) for e in events)
    report.insights += sum(isinstance(e, CampaignInsight) for e in events)


class _Replaying(EngagementConsumer):
    """The engagement consumer, storing into the rebuilt database: the messages it rejects
    went to the dead-letter topic when they first arrived, so they are not sent there again."""

    async def _dead_letter(
        self, rejected: list[tuple[ConsumerRecord[bytes, bytes], Rejection]]
    ) -> None:
        if rejected:
            log.info("rebuild.rejected_again", records=len(rejected))


async def _replay_engagement(
    settings: Settings, target: Store, extent: TopicExtent, deadline: float
) -> None:
    """Run the engagement consumer under a group of its own until it has committed every
    partition's end (as it was when the rebuild began)."""
    group = f"{settings.consumer_group}-rebuild-{uuid.uuid4().hex[:12]}"
    replay_settings = settings.model_copy(update={"consumer_group": group})
    consumer = _Replaying(replay_settings, target)
    await consumer.start()
    try:
        wanted = {
            TopicPartition(extent.topic, p): end
            for p, end in extent.end.items()
            if end > extent.start[p]
        }
        while wanted:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{extent.topic} not replayed before the deadline")
            assert consumer.consumer is not None
            committed: dict[TopicPartition, Any] = {
                tp: await consumer.consumer.committed(tp) for tp in wanted
            }
            wanted = {tp: end for tp, end in wanted.items() if (committed[tp] or 0) < end}
            if wanted:
                await asyncio.sleep(0.2)
    finally:
        await consumer.stop()

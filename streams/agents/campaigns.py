"""The campaign worker: `campaign-events` → the campaigns table (the durable projection) and one
pending webhook delivery per matching endpoint, handed to the dispatcher; plus the clock that
moves campaigns on at their start and end dates.

Offsets are committed (in the background, while the next batch is fetched) after the
projection and the pending deliveries are stored, so a crash re-reads at most the uncommitted
events; events that already have deliveries in the store (only
events published before this worker got the partition are looked up) are not fanned out again.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import mode
import orjson
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from core import lifecycle, metrics
from core.changes import STORED
from core.clickhouse import Store, StoreError
from core.kafka import client_security
from core.ledger import CampaignLedger, CommandNotPublished
from core.repositories import campaigns as campaign_store
from core.repositories import insights as insight_store
from core.repositories import webhooks as webhook_store
from core.repositories.webhooks import Delivery
from core.settings import Settings
from schemas.campaigns import CAMPAIGN_EVENT, Campaign, CampaignEvent
from schemas.insights import INSIGHT_EVENT, CampaignInsight
from streams.agents.webhooks import Dispatcher
from streams.deliveries import fan_out
from streams.stalls import StallWatch, awaiting

log = structlog.get_logger(__name__)


def decode_campaign_message(value: bytes) -> CampaignEvent | CampaignInsight:
    """A message of `campaign-events`: a campaign's new version, or an insight (which changes no
    campaign). Raises the campaign event's ValidationError when it is neither."""
    try:
        return CAMPAIGN_EVENT.validate_json(value)
    except ValidationError as exc:
        try:
            return INSIGHT_EVENT.validate_json(value)
        except ValidationError:
            raise exc from None


async def project(store: Store, events: Sequence[CampaignEvent | CampaignInsight]) -> None:
    """The store's views of `campaign-events`: the insights and every campaign version. The
    projection stores them once a batch's deliveries are stored; `fk rebuild` replays them."""
    await insight_store.insert_insights(
        store, [e for e in events if isinstance(e, CampaignInsight)]
    )
    await campaign_store.insert_campaigns(
        store, [e.current for e in events if isinstance(e, CampaignEvent)]
    )


class _Assignment(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(
        self, dispatcher: Dispatcher, store: Store, committed: Callable[[], Awaitable[None]]
    ) -> None:
        self.dispatcher = dispatcher
        self.store = store
        self.committed = committed
        self.assigned_at_ms = 0

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        """Each batch is stored before its offsets are committed; the commits still pending
        are made before the partitions go."""
        await self.committed()

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self.assigned_at_ms = int(time.time() * 1000)
        partitions = {tp.partition for tp in assigned}
        pending = await self.dispatcher.pending(partitions)
        await roll_forward(self.store, pending)
        await self.dispatcher.assign(partitions)


async def roll_forward(store: Store, pending: list[Delivery]) -> list[Campaign]:
    """Record the campaign versions that stored deliveries announce but the campaigns table
    lacks. A batch stores its deliveries before its campaigns rows; a crash in between (with the
    embedded broker's copy of the events gone) would otherwise leave webhooks announcing a
    version the campaign never shows."""
    newest: dict[tuple[str, str], Campaign] = {}
    for delivery in pending:
        try:
            event = CampaignEvent.model_validate(orjson.loads(delivery.payload)["data"])
        except (ValueError, KeyError, TypeError):
            continue
        key = (event.org, event.campaign_id)
        known = newest.get(key)
        if known is None or event.current.version > known.version:
            newest[key] = event.current
    behind = []
    for campaign in newest.values():
        recorded = await campaign_store.campaign_by_id(store, campaign.org, campaign.id)
        if recorded is None or recorded.version < campaign.version:
            behind.append(campaign)
    await campaign_store.insert_campaigns(store, behind)
    for campaign in behind:
        log.warning(
            "campaigns.rolled_forward",
            org=campaign.org,
            campaign_id=campaign.id,
            version=campaign.version,
        )
    return behind


class CampaignConsumer(mode.Service):
    def __init__(
        self, settings: Settings, store: Store, dispatcher: Dispatcher, **kwargs: Any
    ) -> None:
        self.settings = settings
        self.store = store
        self.dispatcher = dispatcher
        self.assignment = _Assignment(dispatcher, store, self.committed)
        self.consumer: AIOKafkaConsumer | None = None
        self._to_commit: dict[TopicPartition, int] = {}
        self._committing: asyncio.Task[None] | None = None
        self._consuming: asyncio.Task[Any] | None = None
        self.watch = StallWatch(
            "campaigns", lambda: self.consumer, lambda: {"consume_task": awaiting(self._consuming)}
        )
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        s = self.settings
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap,
            group_id=f"{s.consumer_group}-campaigns",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=s.kafka_session_timeout_ms,
            heartbeat_interval_ms=s.kafka_heartbeat_interval_ms,
            max_poll_records=1000,
            # Campaign events are few and latency matters: do not let the broker hold fetches.
            fetch_max_wait_ms=20,
            **client_security(s),
        )
        self.consumer.subscribe([s.campaign_topic], listener=self.assignment)
        await self.consumer.start()
        log.info("campaigns.started", topic=s.campaign_topic)

    async def on_stop(self) -> None:
        if self.consumer is not None:
            await self.committed()
            await self.consumer.stop()

    def _commit_soon(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit in the background: the next batch is fetched meanwhile (a commit is a broker
        round trip, and commands wait for the batches after it to be stored)."""
        self._to_commit.update(offsets)
        if self._committing is None or self._committing.done():
            self._committing = asyncio.create_task(self._commit_pending())

    async def _commit_pending(self) -> None:
        assert self.consumer is not None
        while self._to_commit:
            offsets, self._to_commit = self._to_commit, {}
            try:
                await self.consumer.commit(offsets)
            except KafkaError as exc:  # re-read after a restart, deduplicated
                log.warning("campaigns.commit_failed", error=type(exc).__name__)

    async def committed(self) -> None:
        """Returns once every offset handed to `_commit_soon` was committed (or failed)."""
        if self._committing is not None:
            await self._committing
        if self._to_commit:
            await self._commit_pending()

    @mode.Service.task
    async def _consume(self) -> None:
        assert self.consumer is not None
        self._consuming = asyncio.current_task()
        while not self.should_stop:
            batch = await self.consumer.getmany(timeout_ms=100, max_records=1000)
            if not batch:
                continue
            self.watch.read()
            while True:
                try:
                    await self.process(batch)
                    break
                except StoreError as exc:
                    log.warning("campaigns.store_failed", error=str(exc))
                    if self.should_stop:
                        return
                    await asyncio.sleep(0.5)

    @mode.Service.task
    async def _watch(self) -> None:
        """Reports a stalled consumer and reconnects it (`streams.stalls`)."""
        await self.watch.run(lambda: self.should_stop, self.sleep)

    async def process(
        self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> list[Delivery]:
        assert self.consumer is not None
        events: list[tuple[int, CampaignEvent | CampaignInsight]] = []
        maybe_seen: set[str] = set()
        assigned_at_ms = self.assignment.assigned_at_ms
        for tp, records in batch.items():
            metrics.CAMPAIGN_EVENTS_CONSUMED.inc(len(records))
            for record in records:
                try:
                    event = decode_campaign_message(record.value or b"")
                except ValidationError as exc:
                    # Only the ledger and the insights agent write this topic; a bad message
                    # is a bug to see, not retry.
                    log.error("campaigns.bad_event", offset=record.offset, error=str(exc)[:300])
                    continue
                events.append((tp.partition, event))
                if record.timestamp <= assigned_at_ms:
                    # Published before we owned the partition: a previous owner may have handled
                    # it without committing. Newer events cannot have been seen by anyone.
                    maybe_seen.add(event.event_id)
        _, seen_events = await asyncio.gather(
            self.dispatcher.reload_endpoints(),
            webhook_store.known_webhook_ids(self.store, maybe_seen),
        )
        endpoints = self.dispatcher.matching_endpoints()
        now = time.time()
        fresh = [
            d
            for p, e in events
            if e.event_id not in seen_events
            for d in fan_out(e, endpoints, partition=p, now=now)
        ]
        # Deliveries before the projection: a version the campaigns table shows always has its
        # webhooks stored; a crash in between is rolled forward on assignment (`roll_forward`).
        await webhook_store.insert_delivery_states(
            self.store, [webhook_store.DeliveryState(d, "pending", "", 0) for d in fresh]
        )
        await project(self.store, [e for _, e in events])
        STORED.advance(
            self.settings.campaign_topic,
            {tp.partition: rs[-1].offset + 1 for tp, rs in batch.items()},
        )
        self._commit_soon({tp: rs[-1].offset + 1 for tp, rs in batch.items()})
        self.dispatcher.enqueue(fresh)
        return fresh


class CampaignClock(mode.Service):
    """Runs due transitions (scheduled → live at startDate, live → completed at endDate) from the
    campaigns table, so timers survive any restart; each organisation's campaign of an id on its
    own dates. Only the worker owning partition 0 of
    `campaign-events` runs it."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        dispatcher: Dispatcher,
        ledger: CampaignLedger | None = None,
        **kwargs: Any,
    ) -> None:
        self.settings = settings
        self.store = store
        self.dispatcher = dispatcher
        self.ledger = ledger
        self._producer: AIOKafkaProducer | None = None
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        if self.ledger is None:
            self._producer = AIOKafkaProducer(
                bootstrap_servers=self.settings.bootstrap,
                acks="all",
                linger_ms=2,
                **client_security(self.settings),
            )
            await self._producer.start()
            self.ledger = CampaignLedger(self.settings, self.store, self._producer)

    async def on_stop(self) -> None:
        if self._producer is not None:
            assert self.ledger is not None
            await self.ledger.stop()
            await self._producer.stop()

    @mode.Service.task
    async def _tick(self) -> None:
        while not self.should_stop:
            if 0 in self.dispatcher.partitions:
                try:
                    await self.run_due(datetime.now(UTC))
                except StoreError as exc:
                    log.warning("clock.failed", error=str(exc))
            await asyncio.sleep(self.settings.scheduler_interval_seconds)

    async def run_due(self, now: datetime) -> int:
        assert self.ledger is not None
        done = 0
        for campaign in await campaign_store.due_campaigns(self.store, now):
            target = lifecycle.due_transition(campaign, now)
            if target is None:
                continue
            try:
                changed = await self.ledger.advance(campaign, target)
            except (lifecycle.InvalidChange, CommandNotPublished) as exc:
                log.warning(
                    "clock.not_advanced", org=campaign.org, campaign_id=campaign.id, error=str(exc)
                )
                changed = None
            if changed is not None:
                done += 1
                metrics.CAMPAIGN_CLOCK_TRANSITIONS.labels(target.value).inc()
                log.info(
                    "clock.transition",
                    org=campaign.org,
                    campaign_id=campaign.id,
                    status=target.value,
                )
        return done

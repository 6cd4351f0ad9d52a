"""Live insights: the rollup publisher (per closed minute, per organisation's campaign and
creator, to `engagement-rollups`) and the insights agent (a Faust agent on that topic feeding
`insights.detect.Detector`, each raised or cleared episode a `CampaignInsight` on
`campaign-events`).

The detector's state lives in memory. A (re)started agent rebuilds it from the store before it
reads a rollup: the last 2 h 15 min of stored events, minute by minute, and the insight events
already stored, so an episode raised before the restart is not sent again, one still open is
not lost, and the minutes the worker was down are read as what was stored, not as a stall.

Each worker judges only the scopes whose rollups it reads (the partitions of
`engagement-rollups` Faust assigned to it, `InsightsDetector.assign`), and rebuilds its detector
for them whenever that share changes. A worker that kept every scope it read from the store
would see the other workers' campaigns fall silent once their rollups went elsewhere, and raise
stalls for them.
"""

import asyncio
import hashlib
import time
import zlib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import faust
import mode
import orjson
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from core import metrics
from core.clickhouse import Store, StoreError
from core.kafka import client_security
from core.repositories import campaigns as campaign_store
from core.repositories import engagement as engagement_store
from core.repositories import insights as insight_store
from core.rollups import MINUTE_MS, MinuteRollups
from core.settings import Settings
from insights.detect import Detector, Insight, Scope
from schemas.insights import (
    ROLLUPS,
    CampaignInsight,
    EngagementRollup,
    InsightScope,
    MinuteWindow,
)

log = structlog.get_logger(__name__)

CLOSE_GRACE_MS = 10_000
"""A minute is judged this long after it ends: its rollups are published within a second of
its end and need a moment to arrive."""
LATE_MINUTES = 15
"""Rollups of minutes older than this are not published (the detector refuses them)."""


ROLLUPS_PER_MESSAGE = 1000
"""A minute of a busy platform closes tens of thousands of scopes: one message each cost the
worker's Faust consumer ~1 ms of its event loop per rollup, and campaign commands queued behind
them (seconds under the reference mix). ~100 bytes a rollup: ~100 KB a message."""


def rollup_key(org: str, kind: str, scope_id: str) -> bytes:
    return f"{org}/{kind}/{scope_id}".encode()


def rollup_partition(key: bytes, partitions: int) -> int:
    """The partition of a scope's rollups (stable across processes, so a worker knows which
    scopes are its own)."""
    return zlib.crc32(key) % partitions


class RollupPublisher(mode.Service):
    """Publishes the minutes `minutes` holds once the wall clock closed them: a rollup per
    (organisation, campaign) and (organisation, creator) and minute, sent on the scope's
    partition in messages of up to `ROLLUPS_PER_MESSAGE` rollups (a JSON array). Runs in the
    process that stores engagement events (the sink tells `minutes` of each stored row)."""

    def __init__(
        self,
        settings: Settings,
        minutes: MinuteRollups,
        *,
        clock: Callable[[], float] = time.time,
        **kwargs: Any,
    ) -> None:
        self.settings = settings
        self.minutes = minutes
        self.clock = clock
        self.producer: AIOKafkaProducer | None = None
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap,
            acks="all",
            linger_ms=20,
            **client_security(self.settings),
        )
        await self.producer.start()

    async def on_stop(self) -> None:
        if self.producer is not None:
            await self.publish()
            await self.producer.stop()

    @mode.Service.timer(1.0)
    async def _every_second(self) -> None:
        await self.publish()

    async def publish(self) -> int:
        """Send every closed minute; returns how many rollups were sent."""
        assert self.producer is not None
        now_ms = int(self.clock() * 1000)
        oldest = now_ms // MINUTE_MS - LATE_MINUTES
        closed = self.minutes.close(now_ms)
        if not closed:
            return 0
        partitions = self.settings.engagement_partitions
        by_partition: dict[int, list[bytes]] = {}
        late = 0
        for minute, (org, kind, scope_id), views, engagements in closed:
            if minute < oldest:
                late += 1
                continue
            partition = rollup_partition(rollup_key(org, kind, scope_id), partitions)
            by_partition.setdefault(partition, []).append(
                orjson.dumps(
                    {
                        "org": org,
                        "kind": kind,
                        "id": scope_id,
                        "minute": minute,
                        "views": views,
                        "engagements": engagements,
                    }
                )
            )
        pending = []
        for partition, rollups in by_partition.items():
            for start in range(0, len(rollups), ROLLUPS_PER_MESSAGE):
                value = b"[" + b",".join(rollups[start : start + ROLLUPS_PER_MESSAGE]) + b"]"
                pending.append(
                    await self.producer.send(self.settings.rollup_topic, value, partition=partition)
                )
        sent = sum(len(rollups) for rollups in by_partition.values())
        try:
            for future in pending:
                await future
        except KafkaError as exc:
            # The detector then sees a quiet minute; a restart rebuilds it from the store.
            log.warning("rollups.publish_failed", error=str(exc), rollups=sent)
        metrics.ROLLUPS_PUBLISHED.labels("sent").inc(sent)
        metrics.ROLLUPS_PUBLISHED.labels("late").inc(late)
        return sent


def insight_event(found: Insight) -> CampaignInsight:
    """The event of a detector decision; its ids are a function of the episode (scope, kind,
    metric, first minute), so deciding it again gives the same ids."""
    scope = found.scope
    digest = hashlib.blake2b(
        f"{scope.org}\x00{scope.kind}\x00{scope.id}\x00{found.kind}\x00{found.metric}"
        f"\x00{found.first_seen}".encode(),
        digest_size=8,
    ).hexdigest()
    insight_id = f"ins_{digest}"

    def at(minute: int) -> datetime:
        return datetime.fromtimestamp(minute * 60, UTC)

    return CampaignInsight(
        event_id=f"{insight_id}:{found.status}",
        insight_id=insight_id,
        status=found.status,
        org=scope.org,
        campaign_id=scope.id if scope.kind == "campaign" else "",
        kind=found.kind,
        scope=InsightScope(kind=scope.kind, id=scope.id),
        metric=found.metric,
        observed=round(found.observed, 4),
        expected=round(found.expected, 4),
        score=round(found.score, 3),
        window=MinuteWindow(start=at(found.window_start), end=at(found.window_end)),
        baseline_window=MinuteWindow(start=at(found.baseline_start), end=at(found.baseline_end)),
        first_seen=at(found.first_seen),
        occurred_at=at(found.at),
    )


class InsightsDetector:
    """The insights agent's state and decisions: rollups in (`observe`), closed minutes out as
    `CampaignInsight` events (`tick`), stalls of campaigns that are not live dropped."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        detector: Detector | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.detector = detector if detector is not None else Detector()
        self.restored_through = 0
        """Rollups of minutes before this were read from the store at start: skipped."""
        self.live: set[tuple[str, str]] = set()
        self._live_at = -1
        self.sent: set[str] = set()
        """Event ids sent or found stored (not sent again)."""
        self.producer: AIOKafkaProducer | None = None
        self.ready = asyncio.Event()
        """Set once restored: rollups wait for it."""
        self.owned: frozenset[int] | None = None
        """The rollup partitions whose scopes this detector judges; None = every scope."""
        self._assigning = asyncio.Lock()
        self._assignment: frozenset[int] | None = None
        self._assigned: asyncio.Task[None] | None = None
        self._ticking = False
        self._held: list[EngagementRollup] = []
        """Rollups observed while a tick runs in its thread: added once it is done."""
        self._waiting: set[asyncio.Future[None]] = set()

    def judged_before(self) -> int:
        """The minute `tick` closes up to (exclusive) now."""
        return (int(self.clock() * 1000) - CLOSE_GRACE_MS) // MINUTE_MS

    async def start(self) -> None:
        """Judge every scope (`owned` unset) or the share assigned already."""
        async with self._assigning:
            await self._rebuild()

    async def assign(self, partitions: Iterable[int]) -> None:
        """Judge the scopes of these rollup partitions only: the detector is rebuilt from the
        store for them (rollups wait meanwhile), as at a restart: every minute judged so far
        is read from the store; rollups already read of the minute that closed in the last
        seconds (not judged yet) are not read again."""
        async with self._assigning:
            owned = frozenset(partitions)
            if owned == self.owned and self.ready.is_set():
                return
            self.owned = owned
            await self._rebuild()

    def assigned(self, partitions: Iterable[int]) -> None:
        """`assign` in the background (from Faust's rebalance signal, which must not wait for
        the store); the newest assignment is the one that stays."""
        self._assignment = frozenset(partitions)
        if self._assigned is None or self._assigned.done():
            self._assigned = asyncio.ensure_future(self._assign_newest())

    async def _assign_newest(self) -> None:
        while self._assignment is not None and self._assignment != self.owned:
            try:
                await self.assign(self._assignment)
            except StoreError as exc:
                log.warning("insights.restore_failed", error=str(exc))
                await asyncio.sleep(1.0)

    async def _rebuild(self) -> None:
        self.ready.clear()
        if self.producer is None:
            self.producer = AIOKafkaProducer(
                bootstrap_servers=self.settings.bootstrap,
                acks="all",
                **client_security(self.settings),
            )
            await self.producer.start()
        self.detector = Detector(self.detector.config)
        await self.restore()
        self.ready.set()

    def owns(self, org: str, kind: str, scope_id: str) -> bool:
        return self.owned is None or (
            rollup_partition(rollup_key(org, kind, scope_id), self.settings.engagement_partitions)
            in self.owned
        )

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()

    async def restore(self) -> int:
        """Rebuild the detector from the stored events of the last `ring` minutes and learn
        which insight events are stored; send the episodes open now that the store lacks.
        Returns how many stored minutes were read."""
        until = self.judged_before()
        since = until - self.detector.config.ring_minutes
        stored = await engagement_store.stored_minutes(self.store, since, until)
        self.sent |= await insight_store.stored_event_ids(
            self.store, datetime.fromtimestamp((since - 24 * 60) * 60, UTC)
        )
        open_now: dict[str, Insight] = {}
        i = 0
        for minute in range(since, until):
            while i < len(stored) and stored[i].minute == minute:
                _, org, kind, scope_id, views, engagements = stored[i]
                if self.owns(org, kind, scope_id):
                    self.detector.observe(Scope(org, kind, scope_id), minute, views, engagements)  # type: ignore[arg-type]
                i += 1
            # Each minute closes over every scope (tens of milliseconds at 60,000 scopes, half
            # a second when the baseline is refreshed), in a thread: the loop serves the API
            # and the other agents meanwhile.
            for found in await asyncio.to_thread(self.detector.tick, minute + 1):
                insight_id = insight_event(found).insight_id
                if found.status == "raised":
                    open_now[insight_id] = found
                else:
                    open_now.pop(insight_id, None)
        self.restored_through = until
        await self._refresh_live(force=True)
        await self._send([f for f in open_now.values() if self._keep(f)])
        log.info("insights.restored", minutes=len(stored), open=len(open_now), through=until)
        return len(stored)

    def observe(self, rollup: EngagementRollup) -> None:
        if self._ticking:
            self._held.append(rollup)
            return
        if rollup.minute < self.restored_through or not self.owns(
            rollup.org, rollup.kind, rollup.id
        ):
            return
        self.detector.observe(
            Scope(rollup.org, rollup.kind, rollup.id),
            rollup.minute,
            rollup.views,
            rollup.engagements,
        )

    def _observe_when_ready(self, rollups: list[EngagementRollup]) -> None:
        """Add `rollups` now, or once a rebuild that began meanwhile is done (a rebuild's
        replay closes minutes in threads: nothing may be added to its detector before)."""
        if self.ready.is_set():
            for rollup in rollups:
                self.observe(rollup)
            return

        async def later() -> None:
            await self.ready.wait()
            for rollup in rollups:
                self.observe(rollup)

        task = asyncio.ensure_future(later())
        self._waiting.add(task)
        task.add_done_callback(self._waiting.discard)

    async def tick(self) -> list[CampaignInsight]:
        """Close the minutes due and send their insights; the events sent. The minutes close
        in a thread (see `restore`); rollups that arrive meanwhile are held and added after, as
        if they had come just after the tick."""
        self._ticking = True
        detector = self.detector
        try:
            found = await asyncio.to_thread(detector.tick, self.judged_before())
        finally:
            self._ticking = False
            held, self._held = self._held, []
            if held:
                self._observe_when_ready(held)
        if not found or detector is not self.detector:
            # Rebuilt meanwhile (a new assignment): the rebuild decides from the store what is
            # open, and this detector's findings are dropped with it.
            return []
        await self._refresh_live()
        return await self._send([f for f in found if self._keep(f)])

    def _keep(self, found: Insight) -> bool:
        """Stalls only of live campaigns (the detector reads a silent campaign as zeros)."""
        if found.kind != "stall" or found.status == "cleared":
            return True
        return (found.scope.org, found.scope.id) in self.live

    async def _refresh_live(self, *, force: bool = False) -> None:
        minute = int(self.clock()) // 60
        if force or minute != self._live_at:
            try:
                self.live = await campaign_store.live_campaigns(self.store)
                self._live_at = minute
            except StoreError as exc:
                log.warning("insights.live_campaigns_failed", error=str(exc))

    async def _send(self, found: list[Insight]) -> list[CampaignInsight]:
        assert self.producer is not None
        events = [e for e in map(insight_event, found) if e.event_id not in self.sent]
        for event in events:
            await self.producer.send_and_wait(
                self.settings.campaign_topic,
                event.model_dump_json(by_alias=True).encode(),
                key=(event.campaign_id or event.scope.id).encode(),
            )
            self.sent.add(event.event_id)
            metrics.INSIGHTS_SENT.labels(event.kind, event.status).inc()
            log.info(
                "insights.sent",
                kind=event.kind,
                status=event.status,
                org=event.org,
                scope=f"{event.scope.kind}/{event.scope.id}",
                metric=event.metric,
                score=event.score,
            )
        return events


def add_insights_agent(app: faust.App, settings: Settings, store: Store) -> InsightsDetector:
    """Register the insights agent (and its once-a-second tick) on the worker's Faust app."""
    brain = InsightsDetector(settings, store)
    topic = app.topic(
        settings.rollup_topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.engagement_partitions,
    )

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]
    async def owned(sender: faust.App, **kwargs: Any) -> None:
        name = topic.get_topic_name()
        brain.assigned(tp.partition for tp in sender.consumer.assignment() if tp.topic == name)

    # Faust's decorators are untyped.
    @app.agent(topic, name="insights")  # type: ignore[arg-type]
    async def detect(stream: faust.Stream[bytes]) -> None:
        async for raw in stream:
            # Rebuilt from the store after a rebalance: its rollups wait meanwhile.
            await brain.ready.wait()
            try:
                for rollup in ROLLUPS.validate_json(raw):
                    brain.observe(rollup)
            except ValidationError as exc:
                log.error("insights.bad_rollup", error=str(exc)[:300])

    @app.timer(1.0)  # type: ignore[untyped-decorator]
    async def _tick() -> None:
        if brain.ready.is_set():
            await brain.tick()

    return brain

"""Live insights wired: per-minute rollups published once per closed minute, the insights
agent's detector rebuilt from the store on (re)start (an open episode sent once, never twice),
stalls only for live campaigns, and a `CampaignInsight` on `campaign-events` reaching the
webhooks that subscribed to it, Slack, the delivery log and the insights table, with no
campaign version change."""

import asyncio
import itertools
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from core.clickhouse import Store
from core.repositories import campaigns as campaign_store
from core.repositories.insights import insert_insights
from core.rollups import MINUTE_MS, MinuteRollups
from core.settings import Settings
from insights.detect import Detector, Insight
from schemas.campaigns import Campaign, CampaignStatus
from schemas.insights import INSIGHT_EVENT, ROLLUPS, CampaignInsight, EngagementRollup
from streams.agents.insights import (
    InsightsDetector,
    RollupPublisher,
    rollup_key,
    rollup_partition,
)
from streams.app import Orchestrator
from tests.api.test_top_performers import insert_rows
from tests.conftest import free_port, wait_until
from tests.receivers import Receiver

SLACK_PORT = free_port()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "webhook_allowed_hosts": "127.0.0.1",
            "webhook_sweep_seconds": 0.5,
            "slack_webhook_url": f"http://127.0.0.1:{SLACK_PORT}/slack",
        }
    )


@pytest.fixture
async def slack() -> AsyncIterator[Receiver]:
    r = await Receiver().start(port=SLACK_PORT)
    yield r
    await r.stop()


async def read_topic(settings: Settings, topic: str, expected: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records += batch
            if len(records) >= expected:
                # A moment more to notice records beyond the expected ones.
                for batch in (await consumer.getmany(timeout_ms=300)).values():
                    records += batch
                break
    finally:
        await consumer.stop()
    return records


def row(
    org: str, campaign: str, creator: str, at_ms: int, views: int, likes: int
) -> tuple[Any, ...]:
    return (org, campaign, creator, at_ms, views, likes, 1, 1, 5)


def test_minute_rollups_hand_over_each_closed_minute_once() -> None:
    minutes = MinuteRollups()
    m = 29_000_000
    minutes.add_rows(
        [
            row("acme", "c1", "i1", m * MINUTE_MS + 5, 10, 2),
            row("acme", "c1", "i2", m * MINUTE_MS + 50_000, 5, 1),
            row("acme", "", "i1", (m + 1) * MINUTE_MS, 7, 0),
        ]
    )
    assert minutes.close(m * MINUTE_MS + 59_999) == []  # the minute is still open
    closed = minutes.close((m + 1) * MINUTE_MS)
    assert sorted(closed) == [
        (m, ("acme", "campaign", "c1"), 15, 7),  # saves are not engagements
        (m, ("acme", "creator", "i1"), 10, 4),
        (m, ("acme", "creator", "i2"), 5, 3),
    ]
    assert minutes.close((m + 1) * MINUTE_MS) == []
    assert minutes.pending() == 1  # minute m + 1, no campaign
    # A late event of a minute already handed over makes another rollup of it.
    minutes.add_rows([row("acme", "c1", "i1", m * MINUTE_MS, 1, 0)])
    assert minutes.close((m + 2) * MINUTE_MS)[0] == (m, ("acme", "campaign", "c1"), 1, 2)


async def publish_once(settings: Settings, minutes: MinuteRollups, now: float) -> int:
    """What a publisher started at `now` sends of `minutes`: how many rollups."""
    publisher = RollupPublisher(settings, minutes, clock=lambda: now)
    await publisher.start()
    try:
        return await publisher.publish()
    finally:
        await publisher.stop()


async def test_publisher_sends_closed_minutes_by_scope_and_drops_late_ones(
    settings: Settings, topics: None
) -> None:
    now = time.time()
    minute = int(now * 1000) // MINUTE_MS
    minutes = MinuteRollups()
    minutes.add_rows(
        [
            row("acme", "c1", "i1", (minute - 1) * MINUTE_MS, 100, 10),
            row("acme", "c1", "i1", (minute - 30) * MINUTE_MS, 100, 10),  # too late to judge
            row("acme", "c1", "i1", minute * MINUTE_MS, 100, 10),  # not closed yet
        ]
    )
    assert await publish_once(settings, minutes, now) == 2
    records = await read_topic(settings, settings.rollup_topic, 3)
    on_partition = [(r.partition, one) for r in records for one in ROLLUPS.validate_json(r.value)]
    rollups = sorted((one for _, one in on_partition), key=lambda r: r.kind)
    assert [(r.kind, r.id, r.minute, r.views, r.engagements) for r in rollups] == [
        ("campaign", "c1", minute - 1, 100, 12),
        ("creator", "i1", minute - 1, 100, 12),
    ]
    for partition, one in on_partition:
        key = rollup_key(one.org, one.kind, one.id)
        assert partition == rollup_partition(key, settings.engagement_partitions)


async def test_publisher_sends_many_rollups_in_few_messages_on_their_scopes_partitions(
    settings: Settings, topics: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("streams.agents.insights.ROLLUPS_PER_MESSAGE", 10)
    now = time.time()
    minute = int(now * 1000) // MINUTE_MS
    minutes = MinuteRollups()
    minutes.add_rows(
        [row("acme", f"c{n}", f"i{n}", (minute - 1) * MINUTE_MS, 10, 1) for n in range(60)]
    )
    assert await publish_once(settings, minutes, now) == 120
    # 120 rollups on their scopes' partitions, at most 10 a message.
    partitions = settings.engagement_partitions
    scopes = [("campaign", f"c{n}") for n in range(60)] + [("creator", f"i{n}") for n in range(60)]
    per_partition = Counter(
        rollup_partition(rollup_key("acme", kind, scope_id), partitions)
        for kind, scope_id in scopes
    )
    messages = sum(-(-n // 10) for n in per_partition.values())
    records = await read_topic(settings, settings.rollup_topic, messages)
    assert len(records) == messages
    seen = []
    for record in records:
        batch = ROLLUPS.validate_json(record.value)
        assert 1 <= len(batch) <= 10
        for one in batch:
            key = rollup_key(one.org, one.kind, one.id)
            assert record.partition == rollup_partition(key, partitions)
            seen.append((one.kind, one.id))
    assert sorted(seen) == sorted(scopes)


def store_series(
    store: Store, campaign: str, creator: str, until: int, *, spike: int = 0, low: int = 0
) -> None:
    """140 minutes of 100 views and 10 likes a minute ending at minute `until` (exclusive);
    the last `spike` minutes at 6x, the last `low` minutes at a tenth."""
    rows = []
    for minute in range(until - 140, until):
        factor = 6.0 if minute >= until - spike else 0.1 if minute >= until - low else 1.0
        rows.append(
            {
                "event_time": datetime.fromtimestamp(minute * 60 + 1, UTC),
                "campaign_id": campaign,
                "influencer_id": creator,
                "views": int(100 * factor),
                "likes": int(10 * factor),
            }
        )
    insert_rows(store, rows)


async def live_campaign(store: Store, campaign_id: str) -> None:
    now = datetime.now(UTC)
    await campaign_store.insert_campaigns(
        store,
        [
            Campaign(
                id=campaign_id,
                org="acme",
                name=campaign_id,
                status=CampaignStatus.live,
                version=3,
                created_at=now,
                updated_at=now,
            )
        ],
    )


async def test_restart_sends_open_episodes_once_and_stalls_only_of_live_campaigns(
    settings: Settings, store: Store, topics: None
) -> None:
    now = time.time()
    until = (int(now * 1000) - 10_000) // MINUTE_MS  # what the detector judges up to
    store_series(store, "spiky", "inf_spiky", until, spike=3)
    store_series(store, "stalled", "inf_stalled", until, low=20)
    store_series(store, "paused", "inf_paused", until, low=20)
    await live_campaign(store, "stalled")

    first = InsightsDetector(settings, store, clock=lambda: now)
    seen: list[int | None] = []

    async def watch() -> None:
        while True:
            seen.append(first.detector._next)
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    await first.start()
    watcher.cancel()
    await first.stop()
    # The restore replays the ring's minutes one at a time and lets the loop (the API's and
    # the other agents') run between them, not only once all are replayed.
    replayed = sorted({m for m in seen if m is not None})
    assert len(replayed) >= first.detector.config.ring_minutes - 1
    assert max(b - a for a, b in itertools.pairwise(replayed)) == 1
    records = await read_topic(settings, settings.campaign_topic, 3)
    sent = [INSIGHT_EVENT.validate_json(r.value) for r in records]
    found = {(e.scope.kind, e.scope.id, e.kind, e.metric, e.status) for e in sent}
    assert ("campaign", "spiky", "spike", "views", "raised") in found
    assert ("creator", "inf_spiky", "spike", "views", "raised") in found
    assert ("campaign", "stalled", "stall", "engagements", "raised") in found
    assert not any(e.scope.id == "paused" and e.kind == "stall" for e in sent)
    spike = next(e for e in sent if e.scope.id == "spiky" and e.metric == "views")
    assert spike.campaign_id == "spiky"
    assert spike.event_id == f"{spike.insight_id}:raised"
    assert spike.observed > 3 * spike.expected
    assert spike.baseline_window.end <= spike.window.start

    # The campaign worker stored them; a restarted agent decides the same episodes, same ids,
    # and sends none again.
    await insert_insights(store, sent)
    again = InsightsDetector(settings, store, clock=lambda: now)
    await again.start()
    await again.stop()
    assert len(await read_topic(settings, settings.campaign_topic, len(sent))) == len(sent)


async def test_rollups_that_arrive_while_minutes_close_in_a_thread_are_added_after(
    settings: Settings, store: Store
) -> None:
    entered, release = threading.Event(), threading.Event()

    class Slow(Detector):
        def tick(self, now: int) -> list[Insight]:
            entered.set()
            release.wait(10)
            return super().tick(now)

    brain = InsightsDetector(settings, store, detector=Slow(), clock=time.time)
    brain.ready.set()  # restored

    def rollup(n: int) -> EngagementRollup:
        minute = brain.judged_before() - 1  # the minute the next tick closes
        return EngagementRollup(
            org="o", kind="campaign", id=f"c{n}", minute=minute, views=5, engagements=1
        )

    ticking = asyncio.create_task(brain.tick())
    assert await asyncio.to_thread(entered.wait, 10)
    # The loop runs while the minutes close; what arrives meanwhile waits for the tick.
    brain.observe(rollup(1))
    assert len(brain.detector) == 0
    release.set()
    assert await ticking == []
    assert len(brain.detector) == 1

    # A rebuild that begins during a tick (its replay closes minutes in threads too): what
    # arrived meanwhile is added once the rebuild is done, not into its replay.
    entered.clear()
    release.clear()
    ticking = asyncio.create_task(brain.tick())
    assert await asyncio.to_thread(entered.wait, 10)
    brain.observe(rollup(2))
    brain.ready.clear()
    release.set()
    assert await ticking == []
    assert len(brain.detector) == 1
    brain.ready.set()
    await wait_until(lambda: len(brain.detector) == 2, timeout=5)


async def test_each_worker_judges_only_the_scopes_of_its_rollup_partitions(
    settings: Settings, store: Store, topics: None
) -> None:
    """Two workers share the rollup partitions: each rebuilds and judges its own scopes only.
    One that kept every scope it read from the store saw the other's live campaign fall silent
    (its rollups go to the other) and raised a stall for it."""
    clock = [time.time()]
    until = (int(clock[0] * 1000) - 10_000) // MINUTE_MS
    store_series(store, "steady", "inf_steady", until)
    await live_campaign(store, "steady")
    partitions = settings.engagement_partitions
    mine = rollup_partition(rollup_key("acme", "campaign", "steady"), partitions)
    owner = InsightsDetector(settings, store, clock=lambda: clock[0])
    other = InsightsDetector(settings, store, clock=lambda: clock[0])
    await owner.assign([mine])
    await other.assign(p for p in range(partitions) if p != mine)
    assert owner.owns("acme", "campaign", "steady")
    assert not other.owns("acme", "campaign", "steady")

    sent = []
    for minute in range(until, until + 40):  # 40 more minutes at the campaign's usual level
        rollup = EngagementRollup(
            org="acme", kind="campaign", id="steady", minute=minute, views=100, engagements=10
        )
        owner.observe(rollup)  # on the owner's partition: the other never reads it
        clock[0] += 60
        sent += await owner.tick() + await other.tick()
    assert [(e.scope.id, e.kind) for e in sent] == []

    # Handed every partition (the owner left), it judges the campaign, rebuilt from the store.
    await other.assign(range(partitions))
    assert other.owns("acme", "campaign", "steady")
    assert len(other.detector) >= 1
    await owner.stop()
    await other.stop()


def make_insight(campaign_id: str, **overrides: Any) -> CampaignInsight:
    """The schema's example insight, of the `client` fixture's organisation."""
    example = CampaignInsight.model_json_schema()["examples"][0]
    body = {
        **example,
        "org": "acme",
        "campaignId": campaign_id,
        "scope": {"kind": "campaign", "id": campaign_id},
    }
    return INSIGHT_EVENT.validate_python({**body, **overrides})


@pytest.mark.usefixtures("campaign_agent")  # it commands campaigns
async def test_an_insight_reaches_subscribers_slack_the_log_and_the_store_not_the_version(
    client: httpx.AsyncClient,
    orchestrator: Orchestrator,
    receiver: Receiver,
    slack: Receiver,
    producer: AIOKafkaProducer,
    settings: Settings,
    store: Store,
) -> None:
    other = await Receiver().start()
    try:
        response = await client.post(
            "/webhooks/endpoints", json={"url": receiver.url, "eventTypes": ["CampaignInsight"]}
        )
        assert response.status_code == 201, response.text
        response = await client.post(
            "/webhooks/endpoints",
            json={"url": other.url, "eventTypes": ["CampaignStatusChanged"]},
        )
        assert response.status_code == 201, response.text
        campaign = (await client.post("/campaigns", json={"name": "Spring"})).json()
        insight = make_insight(campaign["id"], eventId="ins_1:raised", insightId="ins_1")
        await producer.send_and_wait(
            settings.campaign_topic, insight.model_dump_json(by_alias=True).encode()
        )
        await wait_until(lambda: len(receiver.received) == 1 and len(slack.received) == 1)
        delivered = receiver.received[0]
        assert delivered.webhook_id == "ins_1:raised"
        assert delivered.body["type"] == "CampaignInsight"
        assert delivered.body["data"]["kind"] == "spike"
        assert delivered.body["data"]["scope"] == {"kind": "campaign", "id": campaign["id"]}
        text = slack.received[0].body["text"]
        assert text.startswith(f"Campaign {campaign['id']}: spike in views, 3120.0 against")

        async def logged() -> list[dict[str, Any]]:
            page = await client.get("/logs", params={"campaignId": campaign["id"]})
            items: list[dict[str, Any]] = page.json()["items"]
            return [i for i in items if i["eventType"] == "CampaignInsight"]

        await wait_until(logged)
        rows = store.query_rows_sync(
            "SELECT insight_id, status, kind, campaign_id FROM campaign_insights"
        )
        assert rows == [("ins_1", "raised", "spike", campaign["id"])]
        assert other.received == []  # subscribed to status changes only
        current = (await client.get(f"/campaigns/{campaign['id']}")).json()
        assert current["version"] == 1
    finally:
        await other.stop()

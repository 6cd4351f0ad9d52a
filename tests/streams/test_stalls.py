"""A consumer whose broker connection hangs (a fetch or commit whose answer never comes) is
reported stalled (by a fetch unanswered for seconds, or by unread records it does not read) and
reconnects at once, instead of waiting out the client's 40 s request
timeout: the engagement consumer (every `POST /events` waits for it) and the campaign worker
(every campaign command waits for it)."""

import asyncio
from collections.abc import AsyncIterator, MutableMapping
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog
from aiokafka import AIOKafkaProducer

from core import lifecycle
from core.clickhouse import Store
from core.kafka import EmbeddedBroker, ensure_topics
from core.repositories import campaigns as campaign_store
from core.settings import Settings
from schemas.campaigns import CampaignCreate
from streams.agents.engagement import EngagementConsumer
from streams.app import Orchestrator
from streams.topics import platform_topics
from tests.conftest import free_port, wait_until
from tests.factories import encode, make_event
from tests.proxy import SilencingProxy


@pytest.fixture
async def proxied(settings: Settings) -> AsyncIterator[tuple[Settings, SilencingProxy]]:
    """A broker of its own whose clients connect through a proxy that can silence them."""
    port, advertised = free_port(), free_port()
    broker = EmbeddedBroker(port, advertised_port=advertised)
    proxy = SilencingProxy(advertised, port)
    await proxy.start()
    await asyncio.to_thread(broker.start)
    settings = settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{advertised}"})
    try:
        await ensure_topics(settings.bootstrap, platform_topics(settings))
        yield settings, proxy
    finally:
        await proxy.stop()
        await asyncio.to_thread(broker.stop)


async def send(settings: Settings, topic: str, value: bytes) -> None:
    """From a producer of its own: a new connection, which the proxy lets through."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=b"k")
    finally:
        await producer.stop()


def said(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == name]


async def test_the_engagement_consumer_reconnects_and_lands_what_waits(
    proxied: tuple[Settings, SilencingProxy], store: Store
) -> None:
    settings, proxy = proxied
    consumer = EngagementConsumer(settings, store)
    # Found by its hung fetch alone (the other test finds a stall by its unread records).
    consumer.watch.stall_seconds, consumer.watch.fetch_seconds = 600.0, 1.0
    consumer.watch.watch_every = 0.2
    await consumer.start()
    try:
        with structlog.testing.capture_logs() as logs:
            events = [make_event(campaignId="cmp_hung", influencerId="inf_h") for _ in range(2)]
            await send(settings, settings.engagement_topic, encode(events[0]))
            await wait_until(lambda: consumer.sink.stored >= 1, timeout=30)
            assert proxy.silence() >= 1
            await send(settings, settings.engagement_topic, encode(events[1]))
            # Within half the client's request timeout: only a reconnect gets it there.
            await wait_until(lambda: consumer.sink.stored >= 2, timeout=20)
        stalled = said(logs, "engagement.stalled")[0]
        assert stalled["hung_fetch"]
        assert stalled["fetches_in_flight"]
        assert {"consume_task", "landing_task"} <= stalled.keys()
        assert said(logs, "engagement.reconnected")[0]["connections"] >= 1
        rows = await store.query_rows(
            "SELECT count() FROM engagement_events WHERE campaign_id = 'cmp_hung'"
        )
        assert rows == [(2,)]
    finally:
        await consumer.stop()


async def test_the_campaign_worker_reconnects_and_records_what_waits(
    proxied: tuple[Settings, SilencingProxy], store: Store
) -> None:
    settings, proxy = proxied
    service = Orchestrator(settings, store)
    watch = service.campaigns.watch
    watch.stall_seconds, watch.fetch_seconds, watch.watch_every = 1.0, 600.0, 0.2
    await service.start()
    try:
        await wait_until(
            lambda: len(service.dispatcher.partitions) == settings.campaign_partitions, timeout=30
        )
        with structlog.testing.capture_logs() as logs:
            for name in ("before", "after"):
                if name == "after":
                    assert proxy.silence() >= 1
                event = lifecycle.create(
                    "acme", f"cmp_{name}", CampaignCreate(name=name), datetime.now(UTC)
                )
                await send(
                    settings, settings.campaign_topic, event.model_dump_json(by_alias=True).encode()
                )

                async def recorded(campaign_id: str = f"cmp_{name}") -> bool:
                    return (
                        await campaign_store.campaign_by_id(store, "acme", campaign_id) is not None
                    )

                await wait_until(recorded, timeout=20 if name == "after" else 30)
        stalled = said(logs, "campaigns.stalled")[0]
        assert stalled["unread"] or stalled["error"]
        assert not stalled["hung_fetch"]
        assert said(logs, "campaigns.reconnected")[0]["connections"] >= 1
    finally:
        await service.stop()

"""The embedded platform acknowledges writes once they are stored (found by `make chaos`: the
embedded broker keeps messages in memory only, so events answered 202, and campaign changes
answered 200/201, were lost with it when `fk up` was killed before the worker had consumed them:
totals short by the last batches, webhooks never sent)."""

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from api.main import create_app
from core.clickhouse import Store
from core.ledger import CampaignLedger
from core.settings import Settings
from streams.agents.engagement import EngagementConsumer
from streams.app import Orchestrator
from tests.conftest import free_port, wait_until
from tests.factories import make_event

# Campaign commands are answered by the campaign agent.
pytestmark = pytest.mark.usefixtures("campaign_agent")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"webhook_allowed_hosts": "127.0.0.1", "ack_store_timeout_seconds": 1.0}
    )


@pytest.fixture
async def embedded_client(
    settings: Settings, store: Store, topics: None, token: str, producer: AIOKafkaProducer
) -> AsyncIterator[httpx.AsyncClient]:
    """The API as `fk up` builds it: writes acknowledged once the in-process worker stored them."""
    ledger = CampaignLedger(settings, store, producer, ack_after_store=True, sole_writer=True)
    app = create_app(settings, store=store, ledger=ledger, ack_after_store=True)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://api",
            headers={"Authorization": f"Bearer {token}"},
        ) as c:
            yield c
    await ledger.stop()


async def stored_events(store: Store, ids: list[str]) -> int:
    rows = await store.query_rows(
        "SELECT count() FROM engagement_events WHERE event_id IN {ids:Array(String)}", {"ids": ids}
    )
    return int(rows[0][0])


async def test_events_are_stored_when_the_202_leaves(
    embedded_client: httpx.AsyncClient, store: Store, pipeline: EngagementConsumer
) -> None:
    now_ms = int(time.time() * 1000)
    for round_ in range(3):
        events = [
            make_event(eventId=f"ack-{round_}-{i}", timestamp=now_ms, campaignId="cmp_ack")
            for i in range(40)
        ]
        response = await embedded_client.post("/events", json=events)
        assert response.status_code == 202, response.text
        assert await stored_events(store, [e["eventId"] for e in events]) == 40


async def test_events_nobody_stores_are_503_and_a_resend_counts_once(
    embedded_client: httpx.AsyncClient, settings: Settings, store: Store
) -> None:
    events = [make_event(eventId=f"late-{i}", campaignId="cmp_late") for i in range(5)]
    response = await embedded_client.post("/events", json=events)  # no worker runs yet
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "same eventIds" in response.json()["detail"]

    consumer = EngagementConsumer(settings, store)
    await consumer.start()
    try:
        response = await embedded_client.post("/events", json=events)
        assert response.status_code == 202, response.text
        await wait_until(lambda: stored_events(store, [e["eventId"] for e in events]))
        assert await stored_events(store, [e["eventId"] for e in events]) == 5
    finally:
        await consumer.stop()


async def pending_deliveries(store: Store, campaign_id: str) -> dict[int, Any]:
    rows = await store.query_rows(
        "SELECT JSONExtractInt(payload, 'data', 'version') AS v, uniqExact(delivery_id) "
        "FROM webhook_deliveries WHERE campaign_id = {c:String} GROUP BY v",
        {"c": campaign_id},
    )
    return {int(v): n for v, n in rows}


async def test_campaign_commands_answer_after_their_webhooks_are_stored(
    embedded_client: httpx.AsyncClient, settings: Settings, store: Store
) -> None:
    orchestrator = Orchestrator(settings, store)
    await orchestrator.start()
    try:
        await wait_until(
            lambda: len(orchestrator.dispatcher.partitions) == settings.campaign_partitions
        )
        url = f"http://127.0.0.1:{free_port()}/hook"
        response = await embedded_client.post("/webhooks/endpoints", json={"url": url})
        assert response.status_code == 201, response.text

        created = await embedded_client.post("/campaigns", json={"name": "Durable"})
        assert created.status_code == 201, created.text
        campaign = created.json()
        assert await pending_deliveries(store, campaign["id"]) == {1: 1}

        changed = await embedded_client.patch(
            f"/campaigns/{campaign['id']}", json={"budget": 10}, headers={"If-Match": '"1"'}
        )
        assert changed.status_code == 200, changed.text
        assert await pending_deliveries(store, campaign["id"]) == {1: 1, 2: 1}
        # The projection recorded each version before the answer; the ledger adds no second row.
        rows = await store.query_rows(
            "SELECT version, count() FROM campaigns WHERE id = {c:String} GROUP BY version"
            " ORDER BY version",
            {"c": campaign["id"]},
        )
        assert rows == [(1, 1), (2, 1)]
    finally:
        await orchestrator.stop()

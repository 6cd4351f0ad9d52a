"""A crash between the campaign worker's two writes of a batch (found by `make chaos`): the
event's pending webhook deliveries were stored, its campaigns row and the embedded broker's copy
of the event were not. The version the webhooks announce must become the campaign's state when
the partitions are assigned again, or the state and the webhooks disagree."""

import time
from datetime import UTC, datetime

import httpx
import pytest
from aiokafka import TopicPartition

from core import lifecycle
from core.clickhouse import Store
from core.encryption import SecretCipher
from core.repositories import campaigns as campaign_store
from core.repositories import webhooks as webhook_store
from core.repositories.webhooks import EndpointConfig
from core.settings import Settings
from schemas.campaigns import CampaignCreate, CampaignPatch
from streams.agents.campaigns import roll_forward
from streams.app import Orchestrator
from streams.deliveries import fan_out
from tests.conftest import wait_until
from tests.receivers import Receiver

# Campaign commands are answered by the campaign agent.
pytestmark = pytest.mark.usefixtures("campaign_agent")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"webhook_allowed_hosts": "127.0.0.1", "webhook_sweep_seconds": 0.5}
    )


async def test_stored_deliveries_of_an_unrecorded_version_roll_the_campaign_forward(
    client: httpx.AsyncClient, settings: Settings, store: Store, receiver: Receiver
) -> None:
    endpoint = await client.post("/webhooks/endpoints", json={"url": receiver.url})
    assert endpoint.status_code == 201, endpoint.text
    receiver.secrets.append(endpoint.json()["secret"])
    created = await client.post("/campaigns", json={"name": "Crash", "budget": 100})
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]

    # The state a kill -9 left: version 2's deliveries stored, its campaigns row not.
    v1 = await campaign_store.campaign_by_id(store, "acme", campaign_id)
    assert v1 is not None
    event = lifecycle.change(v1, CampaignPatch(budget=5), datetime.now(UTC))
    assert event is not None
    endpoints = await webhook_store.registered_endpoints(
        store, settings.webhook_max_endpoints_per_org, cipher=SecretCipher(settings.secrets_key)
    )
    deliveries = fan_out(event, endpoints, partition=0, now=time.time())
    assert len(deliveries) == 1
    await webhook_store.insert_delivery_states(
        store, [webhook_store.DeliveryState(d, "pending", "", 0) for d in deliveries]
    )

    orchestrator = Orchestrator(settings, store)
    await orchestrator.start()
    try:

        async def version() -> int:
            found = await campaign_store.campaign_by_id(store, "acme", campaign_id)
            return found.version if found else 0

        # The roll-forward runs on assignment, before the dispatcher sends anything.
        await wait_until(lambda: receiver.ids() >= {event.event_id}, timeout=20)
        assert await version() == 2
        answer = await client.get(f"/campaigns/{campaign_id}")
        assert answer.json()["version"] == 2
        assert float(answer.json()["budget"]) == 5
    finally:
        await orchestrator.stop()


async def test_the_roll_forward_compares_each_organisations_own_campaign(store: Store) -> None:
    """A stored delivery of A's version 2 rolls A's campaign forward even when B's campaign of
    the same id is at a later version, and leaves B's as it is."""
    now = datetime.now(UTC)
    mine = lifecycle.create("acme", "cmp_rf", CampaignCreate(name="A"), now).current
    theirs = lifecycle.create("globex", "cmp_rf", CampaignCreate(name="B"), now).current
    for budget in (1, 2):
        event = lifecycle.change(theirs, CampaignPatch(budget=budget), now)
        assert event is not None
        theirs = event.current
    await campaign_store.insert_campaigns(store, [mine, theirs])
    event = lifecycle.change(mine, CampaignPatch(budget=5), now)
    assert event is not None
    endpoint = EndpointConfig(id="ep_a", org="acme", url="https://hooks.example.com/a")
    pending = fan_out(event, [endpoint], partition=0, now=time.time())
    assert [c.org for c in await roll_forward(store, pending)] == ["acme"]
    assert await campaign_store.campaign_by_id(store, "acme", "cmp_rf") == event.current
    assert await campaign_store.campaign_by_id(store, "globex", "cmp_rf") == theirs


async def test_offsets_are_committed_after_their_batch_is_stored(
    client: httpx.AsyncClient, orchestrator: Orchestrator, settings: Settings
) -> None:
    """Commits go out in the background, after each batch is stored: every stored event's
    offset is committed soon after."""
    consumer = orchestrator.campaigns.consumer
    assert consumer is not None
    partitions = [
        TopicPartition(settings.campaign_topic, p) for p in range(settings.campaign_partitions)
    ]

    async def committed() -> int:
        return sum([(await consumer.committed(tp)) or 0 for tp in partitions])

    for n in range(5):
        response = await client.post("/campaigns", json={"name": f"c{n}"})
        assert response.status_code == 201, response.text

    # The client's ledger answers before the worker stores (no ack after store here).
    async def all_committed() -> bool:
        return await committed() == 5

    assert await wait_until(all_committed)

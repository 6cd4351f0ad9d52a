"""One organisation's backlog of pending webhook deliveries does not keep another's out of the
dispatcher: the pending deliveries loaded on assignment and by every sweep are bounded per
organisation, each organisation's soonest first. The real store, broker and dispatcher; A's
endpoint is a real HTTP receiver on 127.0.0.1, B's a server there that never answers."""

import time
from dataclasses import replace
from datetime import UTC, datetime

import httpx
import pytest

from core import lifecycle
from core.clickhouse import Store
from core.encryption import SecretCipher
from core.repositories import campaigns as campaign_store
from core.repositories import webhooks as webhook_store
from core.repositories.webhooks import Delivery
from core.settings import Settings
from schemas.campaigns import CampaignCreate, CampaignPatch
from streams.app import Orchestrator
from streams.deliveries import fan_out
from tests.conftest import wait_until
from tests.receivers import Receiver, Silent
from tests.security.conftest import ORG_A, ORG_B, bearer

# Campaign commands are answered by the campaign agent.
pytestmark = pytest.mark.usefixtures("campaign_agent")

B_BACKLOG = 10_050
"""More than a sweep loaded in all before it was bounded per organisation (10,000)."""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "webhook_allowed_hosts": "127.0.0.1",
            "webhook_sweep_seconds": 0.5,
            "webhook_timeout_seconds": 5.0,
        }
    )


def _backlog(template: Delivery, n: int, *, due_from: float, partitions: int) -> list[Delivery]:
    """`n` pending deliveries like `template`, a millisecond apart from `due_from` on, over the
    `campaign-events` partitions."""
    return [
        replace(
            template,
            delivery_id=f"{template.delivery_id}:{i}",
            webhook_id=f"{template.webhook_id}:{i}",
            partition=i % partitions,
            due_at=due_from + i / 1000,
        )
        for i in range(n)
    ]


async def test_another_organisations_backlog_does_not_keep_an_organisations_deliveries_unloaded(
    client: httpx.AsyncClient, settings: Settings, store: Store, receiver: Receiver
) -> None:
    """B has more pending deliveries, all due sooner, than a sweep loaded in all; A's pending
    delivery (stored before a restart, its campaigns row not: the state a crash leaves) still
    rolls A's campaign forward on assignment and is sent by the dispatcher at once."""
    silent = Silent()
    port = await silent.start()
    try:
        endpoint = await client.post("/webhooks/endpoints", json={"url": receiver.url})
        assert endpoint.status_code == 201, endpoint.text
        receiver.secrets.append(endpoint.json()["secret"])
        b = bearer(settings, ORG_B)
        hung = await client.post(
            "/webhooks/endpoints", json={"url": f"http://127.0.0.1:{port}/never"}, headers=b
        )
        assert hung.status_code == 201, hung.text
        created = await client.post("/campaigns", json={"name": "A", "budget": 100})
        assert created.status_code == 201, created.text
        campaign_id = created.json()["id"]

        v1 = await campaign_store.campaign_by_id(store, ORG_A, campaign_id)
        assert v1 is not None
        event = lifecycle.change(v1, CampaignPatch(budget=5), datetime.now(UTC))
        assert event is not None
        endpoints = await webhook_store.registered_endpoints(
            store,
            settings.webhook_max_endpoints_per_org,
            cipher=SecretCipher(settings.secrets_key),
        )
        now = time.time()
        mine = fan_out(event, endpoints, partition=0, now=now)
        assert [d.org for d in mine] == [ORG_A]
        theirs = lifecycle.create(ORG_B, "cmp_backlog", CampaignCreate(name="B"), datetime.now(UTC))
        await campaign_store.insert_campaigns(store, [theirs.current])
        [template] = fan_out(theirs, endpoints, partition=0, now=now)
        backlog = _backlog(
            template, B_BACKLOG, due_from=now - 3600, partitions=settings.campaign_partitions
        )
        await webhook_store.insert_delivery_states(
            store, [webhook_store.DeliveryState(d, "pending", "", 0) for d in [*backlog, *mine]]
        )

        orchestrator = Orchestrator(settings, store)
        await orchestrator.start()
        try:
            await wait_until(lambda: event.event_id in receiver.ids(), timeout=20)
            assert receiver.bad == []
            # Loaded on assignment, where the campaign worker rolls campaigns forward too.
            answer = await client.get(f"/campaigns/{campaign_id}")
            assert answer.json()["version"] == 2
            # B's backlog is being attempted meanwhile (on its endpoint that never answers).
            assert silent.connections >= 1
        finally:
            await orchestrator.stop()
    finally:
        await silent.stop()


def _pending(org: str, n: int, *, due_from: float) -> list[Delivery]:
    return [
        Delivery(
            delivery_id=f"{org}:{i}",
            webhook_id=f"{org}:{i}",
            org=org,
            endpoint_id=f"ep_{org}",
            campaign_id="cmp",
            event_type="CampaignCreated",
            partition=0,
            payload="{}",
            due_at=due_from + i,
        )
        for i in range(n)
    ]


async def test_the_pending_deliveries_are_each_organisations_soonest_in_turn(
    store: Store,
) -> None:
    """At most `per_org` per organisation, soonest first; when the whole bound cuts the load,
    every organisation's first comes before any organisation's second, whatever their due
    times."""
    now = time.time()
    pending = {
        "late": _pending("late", 2, due_from=now),
        "early": _pending("early", 10, due_from=now - 3600),
        "middle": _pending("middle", 5, due_from=now - 60),
    }
    rows = [webhook_store.DeliveryState(d, "pending", "", 0) for ds in pending.values() for d in ds]
    await webhook_store.insert_delivery_states(store, rows)

    def ids(loaded: list[Delivery], org: str) -> list[str]:
        return [d.delivery_id for d in loaded if d.org == org]

    def soonest(org: str, n: int) -> list[str]:
        return [d.delivery_id for d in pending[org][:n]]

    loaded = await webhook_store.pending_deliveries(store, {0}, per_org=3)
    for org, n in (("late", 2), ("early", 3), ("middle", 3)):
        assert ids(loaded, org) == soonest(org, n)
    loaded = await webhook_store.pending_deliveries(store, {0}, per_org=3, limit=6)
    assert len(loaded) == 6
    for org in pending:
        assert ids(loaded, org) == soonest(org, 2)
    loaded = await webhook_store.pending_deliveries(store, {0}, per_org=3, limit=2)
    assert [d.org for d in loaded] == ["early", "middle"]
    assert await webhook_store.pending_deliveries(store, {1}, per_org=3) == []

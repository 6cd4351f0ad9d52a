"""API1 (broken object-level authorization), generated from the app's own routes: every operation
that names an object (a path parameter, or a query parameter ending in `Id`) is either checked --
the object is created by one organisation and requested with another's token, which must get
404 problem details, never the object, a 403 or an error that confirms it exists -- or exempt
with a reason. A new route that names an object fails the classification test until it is."""

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from core.clickhouse import Store
from core.repositories.insights import insert_insights
from core.repositories.webhooks import (
    Delivery,
    DeliveryState,
    dead_deliveries,
    insert_delivery_states,
)
from core.settings import Settings
from streams.demo import demo_events
from tests.api.test_http import assert_problem
from tests.api.test_insights import make_insight
from tests.briefs.conftest import insert_events
from tests.conftest import wait_until
from tests.factories import make_event
from tests.security.conftest import ORG_A, ORG_B, Operation, api_client, bearer, operations

# Campaign commands are answered by the campaign agent.
pytestmark = pytest.mark.usefixtures("campaign_agent")


@dataclass
class Call:
    """A request naming one of org A's objects, and what org A itself gets for it."""

    method: str
    url: str
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    owner_status: int = 200
    owner_sees: Callable[[httpx.Response], bool] = lambda _: True
    other_sees_nothing: Callable[[httpx.Response], bool] | None = None
    """For list-shaped answers that are 200 for everyone: what the other organisation's answer
    must look like (instead of a 404)."""


Setup = Callable[[httpx.AsyncClient, dict[str, str], Store], Awaitable[Call]]


async def _campaign(client: httpx.AsyncClient, owner: dict[str, str]) -> str:
    response = await client.post("/campaigns", json={"name": "Owned"}, headers=owner)
    assert response.status_code == 201, response.text
    campaign_id: str = response.json()["id"]
    return campaign_id


async def _endpoint(client: httpx.AsyncClient, owner: dict[str, str]) -> str:
    response = await client.post(
        "/webhooks/endpoints", json={"url": "https://hooks.example.com/fk"}, headers=owner
    )
    assert response.status_code == 201, response.text
    endpoint_id: str = response.json()["id"]
    return endpoint_id


async def get_campaign(client: httpx.AsyncClient, owner: dict[str, str], _: Store) -> Call:
    return Call("GET", f"/campaigns/{await _campaign(client, owner)}")


async def patch_campaign(client: httpx.AsyncClient, owner: dict[str, str], _: Store) -> Call:
    campaign_id = await _campaign(client, owner)
    return Call(
        "PATCH", f"/campaigns/{campaign_id}", json={"name": "Taken"}, headers={"If-Match": '"1"'}
    )


async def campaign_metrics(client: httpx.AsyncClient, owner: dict[str, str], st: Store) -> Call:
    campaign_id = await _campaign(client, owner)
    insert_events(st, [make_event(campaignId=campaign_id, influencerId="inf_owned")])
    return Call(
        "GET",
        f"/campaigns/{campaign_id}/metrics",
        owner_sees=lambda r: r.json()["total"]["events"] == 1,
    )


async def campaign_forecast(client: httpx.AsyncClient, owner: dict[str, str], st: Store) -> Call:
    campaign_id = await _campaign(client, owner)
    two_hours_ago = int(time.time() * 1000) - 2 * 3_600_000
    insert_events(st, [make_event(campaignId=campaign_id, timestamp=two_hours_ago)])
    return Call(
        "GET",
        f"/campaigns/{campaign_id}/forecast",
        owner_sees=lambda r: r.json()["campaignId"] == campaign_id,
    )


async def update_endpoint(client: httpx.AsyncClient, owner: dict[str, str], _: Store) -> Call:
    endpoint_id = await _endpoint(client, owner)
    return Call("PATCH", f"/webhooks/endpoints/{endpoint_id}", json={"enabled": False})


async def rotate_secret(client: httpx.AsyncClient, owner: dict[str, str], _: Store) -> Call:
    endpoint_id = await _endpoint(client, owner)
    return Call("POST", f"/webhooks/endpoints/{endpoint_id}/rotate-secret")


async def get_brief(client: httpx.AsyncClient, owner: dict[str, str], st: Store) -> Call:
    insert_events(st, [orjson.loads(m.value) for m in demo_events(300)])
    response = await client.post(
        "/generate-brief",
        json={
            "brand": "Glowlab",
            "product": "Vitamin C serum",
            "goal": "Awareness",
            "platform": "instagram",
            "audience": "Skincare fans",
        },
        headers=owner,
    )
    assert response.status_code == 201, response.text
    return Call("GET", f"/briefs/{response.json()['id']}")


async def rejected_rows(client: httpx.AsyncClient, owner: dict[str, str], _: Store) -> Call:
    csv = (
        b"campaignId,influencerId,platform,views,likes,comments,shares\n"
        b"cmp_csv,inf_1,instagram,100,1,1,1\n"
        b"cmp_csv,inf_2,instagram,lots,1,1,1\n"
    )
    response = await client.post(
        "/etl/uploads", files={"file": ("p.csv", csv, "text/csv")}, headers=owner
    )
    assert response.status_code == 200, response.text
    return Call("GET", response.json()["rejectedFile"], owner_sees=lambda r: b"lots" in r.content)


async def delivery_log(client: httpx.AsyncClient, owner: dict[str, str], st: Store) -> Call:
    campaign_id = await _campaign(client, owner)
    attempt = {
        "id": f"att_{uuid.uuid4().hex}",
        "org": ORG_A,
        "webhook_id": "msg_1",
        "delivery_id": "dl_1",
        "event_type": "CampaignCreated",
        "campaign_id": campaign_id,
        "endpoint_id": "ep_1",
        "endpoint_url": "https://hooks.example.com/fk",
        "attempt": 1,
        "status": "delivered",
        "http_status": 200,
        "error": "",
        "latency_ms": 12.0,
        "timestamp": datetime.now(UTC),
    }
    st.insert_sync("webhook_attempts", [[v] for v in attempt.values()], list(attempt))
    return Call(
        "GET",
        f"/logs?campaignId={campaign_id}",
        owner_sees=lambda r: len(r.json()["items"]) == 1,
        other_sees_nothing=lambda r: r.json()["items"] == [],
    )


async def campaign_insights(client: httpx.AsyncClient, owner: dict[str, str], st: Store) -> Call:
    campaign_id = await _campaign(client, owner)
    insight = make_insight(campaign_id, org=ORG_A)
    await insert_insights(st, [insight])
    return Call(
        "GET",
        f"/insights?campaignId={campaign_id}",
        owner_sees=lambda r: [i["eventId"] for i in r.json()["items"]] == [insight.event_id],
        # As for an id nobody uses: an empty page.
        other_sees_nothing=lambda r: (
            r.json() == {"items": [], "nextCursor": None, "campaignNames": {}}
        ),
    )


async def top_performers(client: httpx.AsyncClient, owner: dict[str, str], st: Store) -> Call:
    campaign_id = await _campaign(client, owner)
    insert_events(st, [make_event(campaignId=campaign_id, influencerId="inf_owned")])
    return Call(
        "GET",
        f"/top-performers?campaignId={campaign_id}",
        owner_sees=lambda r: [c["influencerId"] for c in r.json()["items"]] == ["inf_owned"],
        # The other organisation's own events for that id: none (as for an id nobody uses).
        other_sees_nothing=lambda r: r.json()["items"] == [],
    )


async def creator_metrics(client: httpx.AsyncClient, owner: dict[str, str], st: Store) -> Call:
    insert_events(st, [make_event(influencerId="inf_of_a", campaignId=None)], org=ORG_A)
    return Call(
        "GET",
        "/influencers/inf_of_a/metrics",
        owner_sees=lambda r: r.json()["total"]["events"] == 1,
    )


CHECKED: dict[tuple[str, str], Setup] = {
    ("GET", "/campaigns/{campaign_id}"): get_campaign,
    ("PATCH", "/campaigns/{campaign_id}"): patch_campaign,
    ("GET", "/campaigns/{campaign_id}/metrics"): campaign_metrics,
    ("GET", "/campaigns/{campaign_id}/forecast"): campaign_forecast,
    ("PATCH", "/webhooks/endpoints/{endpoint_id}"): update_endpoint,
    ("POST", "/webhooks/endpoints/{endpoint_id}/rotate-secret"): rotate_secret,
    ("GET", "/briefs/{brief_id}"): get_brief,
    ("GET", "/etl/uploads/{load_id}/rejected"): rejected_rows,
    ("GET", "/logs"): delivery_log,
    ("GET", "/insights"): campaign_insights,
    ("GET", "/top-performers"): top_performers,
    ("GET", "/influencers/{influencer_id}/metrics"): creator_metrics,
}

EXEMPT: dict[tuple[str, str], str] = {}


def names_an_object(operation: Operation) -> bool:
    return bool(operation.parameters("path")) or any(
        p["name"].endswith("Id") for p in operation.parameters("query")
    )


def test_every_route_that_names_an_object_is_checked_or_exempt(
    settings: Settings,
) -> None:
    from api.main import create_app

    schema = create_app(settings).openapi()
    naming = {op.key for op in operations(schema) if names_an_object(op)}
    assert not CHECKED.keys() & EXEMPT.keys()
    unclassified = naming - CHECKED.keys() - EXEMPT.keys()
    assert not unclassified, f"add these to CHECKED (or EXEMPT with a reason): {unclassified}"
    stale = (CHECKED.keys() | EXEMPT.keys()) - naming
    assert not stale, f"these routes no longer exist: {stale}"
    assert all(len(reason) > 20 for reason in EXEMPT.values())


@pytest.mark.parametrize("route", sorted(CHECKED), ids=lambda r: f"{r[0]} {r[1]}")
async def test_another_organisation_cannot_reach_the_object(
    settings: Settings, store: Store, topics: None, route: tuple[str, str]
) -> None:
    owner, other = bearer(settings, ORG_A), bearer(settings, ORG_B)
    async with api_client(settings, store) as client:
        call = await CHECKED[route](client, owner, store)
        assert call.method == route[0]
        foreign = await client.request(
            call.method, call.url, json=call.json, headers={**call.headers, **other}
        )
        if call.other_sees_nothing is None:
            body = assert_problem(foreign, 404)
            assert ORG_A not in str(body)
        else:
            assert foreign.status_code == 200, foreign.text
            assert call.other_sees_nothing(foreign), foreign.text
        # The same request with the owner's token reaches the object (the 404 is not a typo).
        own = await client.request(
            call.method, call.url, json=call.json, headers={**call.headers, **owner}
        )
        assert own.status_code == call.owner_status, own.text
        assert call.owner_sees(own), own.text


async def test_dead_letter_replay_is_scoped_to_the_callers_organisation(
    settings: Settings, store: Store, topics: None
) -> None:
    """`POST /webhooks/dlq/replay` names endpoints and campaigns in its body (so the route
    classification above does not see them): the command carries the caller's organisation, the
    body cannot name another, and the dispatcher's lookup only returns that organisation's dead
    deliveries, even for another's endpoint or campaign id."""
    dead = [
        Delivery(
            f"dl_{org}", f"msg_{org}", org, "ep_shared", "cmp_shared", "CampaignCreated", 0, "{}"
        )
        for org in (ORG_A, ORG_B)
    ]
    await insert_delivery_states(store, [DeliveryState(d, "dead", "HTTP 500", 1) for d in dead])
    for endpoint_id, campaign_id in ((None, None), ("ep_shared", None), (None, "cmp_shared")):
        found = await dead_deliveries(
            store, ORG_B, endpoint_id=endpoint_id, campaign_id=campaign_id
        )
        assert [d.org for d in found] == [ORG_B]

    async with api_client(settings, store) as client:
        other = bearer(settings, ORG_B)
        smuggled = await client.post("/webhooks/dlq/replay", json={"org": ORG_A}, headers=other)
        assert_problem(smuggled, 422)
        accepted = await client.post(
            "/webhooks/dlq/replay", json={"campaignId": "cmp_shared"}, headers=other
        )
        assert accepted.status_code == 202, accepted.text
    consumer = AIOKafkaConsumer(
        settings.webhook_commands_topic,
        bootstrap_servers=settings.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        commands: list[dict[str, Any]] = []

        async def published() -> bool:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                commands.extend(orjson.loads(r.value or b"") for r in records)
            return bool(commands)

        await wait_until(published)
    finally:
        await consumer.stop()
    assert [(c["org"], c["campaignId"]) for c in commands] == [(ORG_B, "cmp_shared")]

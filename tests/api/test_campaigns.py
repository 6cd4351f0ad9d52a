"""Campaign commands over HTTP: create (idempotent), read, list, optimistic concurrency, the
state machine, organisation scoping, and the events they publish."""

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from core.auth import issue_token
from core.lifecycle import TRANSITIONS, apply_event
from core.settings import Settings
from schemas.campaigns import CAMPAIGN_EVENT, Campaign, CampaignEvent, CampaignStatus
from tests.api.test_http import assert_problem

# Campaign commands are answered by the campaign agent.
pytestmark = pytest.mark.usefixtures("campaign_agent")

S = CampaignStatus
PATH_TO: dict[CampaignStatus, list[CampaignStatus]] = {
    S.draft: [],
    S.scheduled: [S.scheduled],
    S.live: [S.scheduled, S.live],
    S.paused: [S.scheduled, S.live, S.paused],
    S.completed: [S.scheduled, S.live, S.completed],
    S.cancelled: [S.cancelled],
}


def other_org(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(settings.jwt_secret, org='globex')}"}


async def create(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    body.setdefault("name", f"Campaign {uuid.uuid4().hex[:6]}")
    response = await client.post("/campaigns", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    assert response.headers["etag"] == f'"{result["version"]}"'
    return result


async def patch(client: httpx.AsyncClient, campaign: dict[str, Any], **body: Any) -> httpx.Response:
    return await client.patch(
        f"/campaigns/{campaign['id']}",
        json=body,
        headers={"If-Match": f'"{campaign["version"]}"'},
    )


async def walk(
    client: httpx.AsyncClient, campaign: dict[str, Any], path: list[CampaignStatus]
) -> dict[str, Any]:
    for step in path:
        response = await patch(client, campaign, status=step.value)
        assert response.status_code == 200, response.text
        campaign = response.json()
    return campaign


async def read_events(
    settings: Settings, expected: int, timeout: float = 20
) -> list[CampaignEvent]:
    consumer = AIOKafkaConsumer(
        settings.campaign_topic,
        bootstrap_servers=settings.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    events: list[CampaignEvent] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(events) < expected and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                events += [CAMPAIGN_EVENT.validate_json(r.value or b"") for r in records]
        # A moment more to notice events beyond the expected ones.
        for records in (await consumer.getmany(timeout_ms=300)).values():
            events += [CAMPAIGN_EVENT.validate_json(r.value or b"") for r in records]
    finally:
        await consumer.stop()
    return events


async def test_create_needs_only_a_name_and_starts_as_draft(client: httpx.AsyncClient) -> None:
    created = await create(client)
    assert created["status"] == "draft"
    assert created["version"] == 1
    assert created["id"].startswith("cmp_")
    fetched = await client.get(f"/campaigns/{created['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == created
    assert fetched.headers["etag"] == '"1"'


async def test_create_with_every_field_and_a_chosen_id(client: httpx.AsyncClient) -> None:
    created = await create(
        client,
        id="cmp_full",
        brand="Acme",
        budget=1500.5,
        currency="EUR",
        platforms=["instagram", "tiktok"],
        startDate="2030-01-01T00:00:00Z",
        endDate="2030-02-01T00:00:00+01:00",
    )
    assert created["id"] == "cmp_full"
    assert created["endDate"].startswith("2030-01-31T23:00:00")
    again = await client.post("/campaigns", json={"id": "cmp_full", "name": "x"})
    assert_problem(again, 409)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "x", "currency": "euro"},
        {"name": "x", "budget": -1},
        {"name": "x", "platforms": ["myspace"]},
        {"name": "x", "startDate": "2030-01-01T00:00:00"},
        {"name": "x", "endDate": 0},  # found by the schema fuzzer: a number read as 1970
        {"name": "x", "startDate": 1893456000},
        {"name": "x", "startDate": "2030-01-02T00:00:00Z", "endDate": "2030-01-01T00:00:00Z"},
        {"name": "x", "status": "live"},
        {"name": "x", "id": "has space"},
    ],
)
async def test_invalid_bodies_are_422(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    assert_problem(await client.post("/campaigns", json=body), 422)


async def test_idempotency_key_same_body_same_campaign_other_body_422(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    headers = {"Idempotency-Key": "k-1"}
    first = await client.post("/campaigns", json={"name": "Summer"}, headers=headers)
    second = await client.post("/campaigns", json={"name": "Summer"}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["idempotent-replayed"] == "true"
    assert_problem(await client.post("/campaigns", json={"name": "Winter"}, headers=headers), 422)
    # The key is the organisation's: another org using it creates its own campaign.
    other = await client.post(
        "/campaigns", json={"name": "Summer"}, headers={**headers, **other_org(settings)}
    )
    assert other.status_code == 201
    assert other.json()["id"] != first.json()["id"]
    listed = (await client.get("/campaigns")).json()["items"]
    assert [c["name"] for c in listed] == ["Summer"]


async def test_concurrent_retries_with_one_key_create_one_campaign(
    client: httpx.AsyncClient,
) -> None:
    headers = {"Idempotency-Key": "k-burst"}
    answers = await asyncio.gather(
        *(client.post("/campaigns", json={"name": "Burst"}, headers=headers) for _ in range(20))
    )
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1


async def test_patch_changes_fields_and_bumps_the_version(client: httpx.AsyncClient) -> None:
    created = await create(client, name="Before", budget=10)
    response = await patch(client, created, name="After", budget=20)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["budget"], body["version"]) == ("After", "20", 2)
    assert response.headers["etag"] == '"2"'
    # Nothing to change: same version, no event.
    same = await patch(client, body, name="After")
    assert same.json()["version"] == 2


async def test_stale_missing_or_malformed_if_match(client: httpx.AsyncClient) -> None:
    created = await create(client)
    assert (await patch(client, created, name="v2")).status_code == 200
    stale = await patch(client, created, name="v2 again")
    assert_problem(stale, 412)
    assert stale.headers["etag"] == '"2"'
    url = f"/campaigns/{created['id']}"
    assert_problem(await client.patch(url, json={"name": "x"}), 428)
    assert_problem(await client.patch(url, json={"name": "x"}, headers={"If-Match": "*"}), 412)
    # The version field stands in for If-Match.
    ok = await client.patch(url, json={"name": "v3", "version": 2})
    assert ok.status_code == 200
    assert ok.json()["version"] == 3


async def test_lifecycle_through_every_allowed_transition(client: httpx.AsyncClient) -> None:
    campaign = await create(client)
    campaign = await walk(client, campaign, [S.scheduled, S.live, S.paused, S.live, S.completed])
    assert (campaign["status"], campaign["version"]) == ("completed", 6)
    cancelled = await walk(client, await create(client), [S.scheduled, S.cancelled])
    assert cancelled["status"] == "cancelled"


@pytest.mark.parametrize("start", list(CampaignStatus))
async def test_every_invalid_transition_is_409_and_leaves_no_trace(
    client: httpx.AsyncClient, start: CampaignStatus
) -> None:
    campaign = await walk(client, await create(client), PATH_TO[start])
    assert campaign["status"] == start.value
    invalid = [t for t in CampaignStatus if t != start and t not in TRANSITIONS[start]]
    assert invalid
    for target in invalid:
        response = await patch(client, campaign, status=target.value, name="sneaky")
        body = assert_problem(response, 409)
        allowed = sorted(t.value for t in TRANSITIONS[start])
        assert body["errors"][0]["allowedTransitions"] == allowed  # type: ignore[index]
        for name in allowed:
            assert name in str(body["detail"])
    after = (await client.get(f"/campaigns/{campaign['id']}")).json()
    assert after == campaign


async def test_final_states_refuse_field_changes(client: httpx.AsyncClient) -> None:
    campaign = await walk(client, await create(client), [S.cancelled])
    assert_problem(await patch(client, campaign, name="revived"), 422)


async def test_100_concurrent_patches_with_one_version_exactly_one_wins(
    client: httpx.AsyncClient,
) -> None:
    campaign = await create(client)
    answers = await asyncio.gather(
        *(patch(client, campaign, name=f"writer {i}") for i in range(100))
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] + [412] * 99
    winner = next(a.json() for a in answers if a.status_code == 200)
    final = (await client.get(f"/campaigns/{campaign['id']}")).json()
    assert final == winner
    assert final["version"] == 2


async def test_another_organisation_gets_404_everywhere(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    campaign = await create(client, id="cmp_private")
    foreign = other_org(settings)
    assert_problem(await client.get("/campaigns/cmp_private", headers=foreign), 404)
    response = await client.patch(
        "/campaigns/cmp_private", json={"name": "mine"}, headers={**foreign, "If-Match": '"1"'}
    )
    assert_problem(response, 404)
    assert (await client.get("/campaigns", headers=foreign)).json()["items"] == []
    assert_problem(await client.get("/campaigns/cmp_private/metrics", headers=foreign), 404)
    assert (await client.get(f"/campaigns/{campaign['id']}")).json()["name"] == campaign["name"]


@pytest.mark.parametrize("kind", ["missing", "expired", "forged"])
async def test_campaign_routes_need_a_valid_token(
    client: httpx.AsyncClient, settings: Settings, kind: str
) -> None:
    tokens = {
        "missing": "",
        "expired": f"Bearer {issue_token(settings.jwt_secret, org='acme', ttl_seconds=-10)}",
        "forged": f"Bearer {issue_token('another-secret-of-at-least-32-bytes!', org='acme')}",
    }
    headers = {"Authorization": tokens[kind]}
    assert_problem(await client.post("/campaigns", json={"name": "x"}, headers=headers), 401)
    assert_problem(await client.get("/campaigns/cmp_x", headers=headers), 401)
    assert_problem(await client.get("/logs?campaignId=cmp_x", headers=headers), 401)


async def test_list_filters_by_status_and_pages(client: httpx.AsyncClient) -> None:
    ids = []
    for i in range(5):
        c = await create(client, id=f"cmp_list_{i}")
        ids.append(c["id"])
        if i % 2 == 0:
            await walk(client, c, [S.scheduled])
    scheduled = (await client.get("/campaigns", params={"status": "scheduled"})).json()
    assert [c["id"] for c in scheduled["items"]] == ["cmp_list_0", "cmp_list_2", "cmp_list_4"]
    page1 = (await client.get("/campaigns", params={"limit": 3})).json()
    page2 = (
        await client.get("/campaigns", params={"limit": 3, "cursor": page1["nextCursor"]})
    ).json()
    assert [c["id"] for c in page1["items"] + page2["items"]] == ids
    assert page2["nextCursor"] is None


async def test_events_are_the_source_of_truth(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    a = await walk(client, await create(client, id="cmp_ev_a"), [S.scheduled, S.live])
    b = await create(client, id="cmp_ev_b")
    b = (await patch(client, b, name="renamed")).json()
    await patch(client, a, status="draft")  # refused: leaves no event
    events = await read_events(settings, expected=5)
    # Ordered per campaign (its key's partition), not across campaigns.
    assert sorted((e.campaign_id, e.type.value, e.version) for e in events) == [
        ("cmp_ev_a", "CampaignCreated", 1),
        ("cmp_ev_a", "CampaignStatusChanged", 2),
        ("cmp_ev_a", "CampaignStatusChanged", 3),
        ("cmp_ev_b", "CampaignCreated", 1),
        ("cmp_ev_b", "CampaignUpdated", 2),
    ]
    changed = next(e for e in events if e.version == 3)
    assert changed.previous is not None
    assert (changed.previous.status, changed.current.status) == (S.scheduled, S.live)
    state: dict[tuple[str, str], Campaign] = {}
    for event in [*events, *events]:  # at-least-once: replaying twice changes nothing
        apply_event(state, event)
    rebuilt = {k: v.model_dump(mode="json", by_alias=True) for k, v in state.items()}
    assert rebuilt == {("acme", "cmp_ev_a"): a, ("acme", "cmp_ev_b"): b}


async def test_metrics_of_uncreated_campaigns_stay_readable_by_anyone(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    # Nobody created cmp_free: 404 only because it has no events, for every org alike.
    mine = await client.get("/campaigns/cmp_free/metrics")
    theirs = await client.get("/campaigns/cmp_free/metrics", headers=other_org(settings))
    assert mine.status_code == theirs.status_code == 404
    assert "has events" in mine.json()["detail"]
    assert "has events" in theirs.json()["detail"]


async def test_a_created_campaign_without_events_has_zero_metrics_for_its_owner_only(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    await create(client, id="cmp_quiet")
    response = await client.get("/campaigns/cmp_quiet/metrics")
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == {
        "views": 0,
        "likes": 0,
        "comments": 0,
        "shares": 0,
        "saves": 0,
        "engagements": 0,
        "engagementRate": 0.0,
        "events": 0,
    }
    assert body["window1h"] == body["window24h"] == body["total"]
    other = await client.get("/campaigns/cmp_quiet/metrics", headers=other_org(settings))
    assert other.status_code == 404


async def test_openapi_links_a_created_campaign_to_its_reads_and_changes(
    client: httpx.AsyncClient,
) -> None:
    """The links the stateful schema fuzz run follows: create → read, change (with the ETag as
    If-Match), metrics and delivery log; change → change again. Every link names an operation of
    the document, and the headers it reads are documented."""
    schema = (await client.get("/openapi.json")).json()
    operation_ids = {
        op["operationId"] for operations in schema["paths"].values() for op in operations.values()
    }
    created = schema["paths"]["/campaigns"]["post"]["responses"]["201"]
    changed = schema["paths"]["/campaigns/{campaign_id}"]["patch"]["responses"]["200"]
    read = schema["paths"]["/campaigns/{campaign_id}"]["get"]["responses"]["200"]
    assert {"ETag", "Location"} <= set(created["headers"])
    assert "ETag" in changed["headers"]
    assert "ETag" in read["headers"]
    assert len(created["links"]) >= 4
    assert changed["links"]
    for link in [*created["links"].values(), *changed["links"].values()]:
        assert link["operationId"] in operation_ids, link
    patch_link = next(
        link for link in created["links"].values() if link["operationId"].startswith("patch_")
    )
    assert patch_link["parameters"]["header.if-match"] == "$response.header.ETag"

"""The dashboard's read endpoints on real chDB (busiest campaigns, trending hashtags, recent
campaign changes, webhook health) and the page itself: scoping, 401, 422, the dev token rule."""

import itertools
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from api.main import create_app
from api.routes.dashboard import CONTENT_SECURITY_POLICY
from core.auth import issue_token, verify_token
from core.clickhouse import Store
from core.repositories.campaigns import insert_campaigns
from core.settings import Settings
from schemas.campaigns import Campaign, CampaignStatus
from tests.api.test_http import assert_problem
from tests.api.test_top_performers import insert_rows as insert_creator_rows

_attempt_ids = itertools.count()


def insert_rows(store: Store, rows: list[dict[str, Any]]) -> None:
    insert_creator_rows(store, [{"influencer_id": "inf_a", **r} for r in rows])


def ago(**delta: float) -> datetime:
    return datetime.now(UTC) - timedelta(**delta)


async def add_campaign(
    store: Store,
    campaign_id: str,
    org: str,
    *,
    name: str = "A campaign",
    status: CampaignStatus = CampaignStatus.draft,
    version: int = 1,
    updated_at: datetime | None = None,
) -> None:
    at = updated_at or datetime.now(UTC)
    campaign = Campaign(
        id=campaign_id,
        org=org,
        name=name,
        status=status,
        version=version,
        created_at=at,
        updated_at=at,
    )
    await insert_campaigns(store, [campaign])


def add_attempts(store: Store, rows: list[dict[str, Any]]) -> None:
    defaults: dict[str, Any] = {
        "org": "acme",
        "webhook_id": "wh",
        "delivery_id": "dl",
        "event_type": "CampaignStatusChanged",
        "campaign_id": "cmp_a",
        "endpoint_id": "ep_1",
        "endpoint_url": "https://hooks.example.com/a",
        "attempt": 1,
        "status": "delivered",
        "http_status": 200,
        "error": "",
        "latency_ms": 10.0,
        "timestamp": ago(minutes=5),
    }
    full = [{**defaults, "id": f"att-{next(_attempt_ids)}", **r} for r in rows]
    columns = ["id", *defaults]
    store.insert_sync("webhook_attempts", [[r[c] for r in full] for c in columns], columns)


async def get_json(client: httpx.AsyncClient, path: str, **params: Any) -> dict[str, Any]:
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# -- GET /engagement/campaigns ----------------------------------------------------------------


async def test_busiest_campaigns_have_three_windows_in_scope(
    client: httpx.AsyncClient, store: Store
) -> None:
    insert_rows(
        store,
        [
            {"campaign_id": "cmp_busy", "event_time": ago(minutes=10), "views": 100, "likes": 5},
            {"campaign_id": "cmp_busy", "event_time": ago(hours=3), "views": 200, "comments": 4},
            {"campaign_id": "cmp_busy", "event_time": ago(days=3), "views": 700, "shares": 1},
            {"campaign_id": "cmp_quiet", "event_time": ago(hours=2), "views": 10, "likes": 1},
            {"campaign_id": "cmp_mine", "event_time": ago(days=5), "views": 50},
            # Another organisation's events (naming its own campaign) are out of scope.
            {
                "campaign_id": "cmp_theirs",
                "event_time": ago(minutes=1),
                "views": 999,
                "org": "other",
            },
            {"campaign_id": "", "event_time": ago(minutes=1), "views": 5},  # organic
        ],
    )
    await add_campaign(store, "cmp_mine", "acme", name="Mine", status=CampaignStatus.live)
    await add_campaign(store, "cmp_theirs", "other")

    body = await get_json(client, "/engagement/campaigns")
    ids = [c["campaignId"] for c in body["items"]]
    # By events in the last 24 h, then all time; never another organisation's campaign.
    assert ids == ["cmp_busy", "cmp_quiet", "cmp_mine"]
    busy = body["items"][0]
    assert (busy["window1h"]["views"], busy["window24h"]["views"], busy["total"]["views"]) == (
        100,
        300,
        1000,
    )
    assert busy["window24h"]["engagements"] == 9
    assert busy["window24h"]["engagementRate"] == 3.0
    assert (busy["window1h"]["events"], busy["window24h"]["events"], busy["total"]["events"]) == (
        1,
        2,
        3,
    )
    assert busy["name"] is None
    mine = body["items"][2]
    assert (mine["name"], mine["status"], mine["window24h"]["events"]) == ("Mine", "live", 0)
    assert body["limit"] == 10
    assert "asOf" in body

    limited = await get_json(client, "/engagement/campaigns", limit=1)
    assert [c["campaignId"] for c in limited["items"]] == ["cmp_busy"]


async def test_the_owner_sees_its_campaign_and_no_one_else_does(
    client: httpx.AsyncClient, store: Store, settings: Settings
) -> None:
    insert_rows(
        store, [{"campaign_id": "cmp_theirs", "event_time": ago(minutes=1), "org": "other"}]
    )
    await add_campaign(store, "cmp_theirs", "other", name="Theirs")
    other = issue_token(settings.jwt_secret, org="other")
    response = await client.get(
        "/engagement/campaigns", headers={"Authorization": f"Bearer {other}"}
    )
    assert [c["name"] for c in response.json()["items"]] == ["Theirs"]
    assert (await get_json(client, "/engagement/campaigns"))["items"] == []


# -- GET /trends/hashtags ---------------------------------------------------------------------


async def test_trending_hashtags_by_recent_events_with_platform_filter(
    client: httpx.AsyncClient, store: Store
) -> None:
    insert_rows(
        store,
        [
            {"hashtags": ["#a", "#b"], "event_time": ago(hours=1), "views": 100, "likes": 10},
            {"hashtags": ["#a"], "event_time": ago(hours=2), "platform": "tiktok"},
            {"hashtags": ["#b"], "event_time": ago(hours=30)},
            {"hashtags": ["#old"], "event_time": ago(hours=30)},
        ],
    )
    body = await get_json(client, "/trends/hashtags")
    assert body["platform"] is None
    assert [(t["tag"], t["events24h"], t["previous24h"]) for t in body["items"]] == [
        ("#a", 2, 0),
        ("#b", 1, 1),
    ]
    assert body["items"][1]["engagementRate"] == 10.0

    tiktok = await get_json(client, "/trends/hashtags", platform="tiktok")
    assert tiktok["platform"] == "tiktok"
    assert [t["tag"] for t in tiktok["items"]] == ["#a"]
    assert len((await get_json(client, "/trends/hashtags", limit=1))["items"]) == 1


# -- GET /activity/campaigns ------------------------------------------------------------------


async def test_recent_campaign_changes_are_the_organisations_newest_versions(
    client: httpx.AsyncClient, store: Store
) -> None:
    await add_campaign(store, "cmp_1", "acme", name="First", updated_at=ago(hours=2))
    await add_campaign(
        store, "cmp_1", "acme", name="First", status=CampaignStatus.scheduled, version=2
    )
    await add_campaign(store, "cmp_2", "acme", name="Second", updated_at=ago(hours=1))
    await add_campaign(store, "cmp_3", "other", name="Not ours")
    body = await get_json(client, "/activity/campaigns")
    assert [(c["campaignId"], c["status"], c["version"]) for c in body["items"]] == [
        ("cmp_1", "scheduled", 2),
        ("cmp_2", "draft", 1),
    ]
    assert len((await get_json(client, "/activity/campaigns", limit=1))["items"]) == 1


# -- GET /webhooks/health ---------------------------------------------------------------------


async def test_webhook_health_summarises_the_organisations_attempts(
    client: httpx.AsyncClient, store: Store
) -> None:
    assert await get_json(client, "/webhooks/health") | {"asOf": None} == {
        "attempts": 0,
        "delivered": 0,
        "retrying": 0,
        "dead": 0,
        "successRate": None,
        "endpoints": [],
        "asOf": None,
    }


async def test_webhook_health_counts_per_endpoint_failing_first(
    client: httpx.AsyncClient, store: Store
) -> None:
    add_attempts(
        store,
        [
            {"endpoint_id": "ep_ok", "latency_ms": 20.0},
            {"endpoint_id": "ep_ok", "latency_ms": 40.0, "timestamp": ago(minutes=1)},
            {"endpoint_id": "ep_bad", "status": "retrying", "http_status": 500},
            {"endpoint_id": "ep_bad", "status": "dead", "timestamp": ago(minutes=1)},
            {"endpoint_id": "ep_old", "timestamp": ago(hours=30)},  # outside the window
            {"endpoint_id": "ep_theirs", "org": "other", "status": "dead"},
        ],
    )
    body = await get_json(client, "/webhooks/health")
    assert (body["attempts"], body["delivered"], body["retrying"], body["dead"]) == (4, 2, 1, 1)
    assert body["successRate"] == 50.0
    endpoints = {e["endpointId"]: e for e in body["endpoints"]}
    assert list(endpoints) == ["ep_bad", "ep_ok"]
    assert endpoints["ep_bad"]["lastStatus"] == "dead"
    assert (endpoints["ep_ok"]["delivered"], endpoints["ep_ok"]["lastStatus"]) == (2, "delivered")
    assert 20.0 <= endpoints["ep_ok"]["p95LatencyMs"] <= 40.0


async def test_webhook_times_are_rfc3339_with_an_offset(
    client: httpx.AsyncClient, store: Store
) -> None:
    """The store hands DateTime64 values back without a zone; the answers must still carry one
    (OpenAPI `date-time`), as the schema fuzzer found."""
    response = await client.post("/webhooks/endpoints", json={"url": "https://hooks.example.com/a"})
    assert response.status_code == 201, response.text
    add_attempts(store, [{"endpoint_id": response.json()["id"]}])
    endpoint = (await get_json(client, "/webhooks/endpoints"))["items"][0]
    attempt = (await get_json(client, "/logs", campaignId="cmp_a"))["items"][0]
    health = (await get_json(client, "/webhooks/health"))["endpoints"][0]
    for value in (
        endpoint["createdAt"],
        endpoint["updatedAt"],
        attempt["timestamp"],
        health["lastAttemptAt"],
    ):
        assert datetime.fromisoformat(value).utcoffset() == timedelta(0), value


# -- auth and validation ----------------------------------------------------------------------

_READS = [
    "/engagement/campaigns",
    "/insights",
    "/top-performers",
    "/trends/hashtags",
    "/activity/campaigns",
    "/webhooks/health",
]


@pytest.mark.parametrize("path", _READS)
async def test_reads_need_a_token(client: httpx.AsyncClient, path: str) -> None:
    assert_problem(await client.get(path, headers={"Authorization": ""}), 401)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/engagement/campaigns", {"limit": 0}),
        ("/engagement/campaigns", {"limit": 101}),
        ("/trends/hashtags", {"platform": "myspace"}),
        ("/trends/hashtags", {"limit": 51}),
        ("/activity/campaigns", {"limit": "many"}),
    ],
)
async def test_bad_parameters_are_422(
    client: httpx.AsyncClient, path: str, params: dict[str, Any]
) -> None:
    body = assert_problem(await client.get(path, params=params), 422)
    assert body["errors"]


# -- GET /dashboard ---------------------------------------------------------------------------


def page_token(page: str) -> str:
    found = re.search(r'<meta name="fk-dev-token" content="([^"]*)">', page)
    assert found is not None, page
    return found.group(1)


async def serve_page(settings: Settings, store: Store) -> httpx.Response:
    app = create_app(settings, store=store)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c,
    ):
        return await c.get("/dashboard")


async def test_page_needs_no_token_and_has_a_strict_policy(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/dashboard", headers={"Authorization": ""})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY
    assert response.headers["cache-control"] == "no-store"
    page = response.text
    assert "<script>" not in page  # no inline code: the policy would refuse it
    # The test settings (env=test, an external broker) never hand out a token.
    assert page_token(page) == ""
    for asset in re.findall(r'(?:src|href)="(/dashboard/assets/[^"]+)"', page):
        served = await client.get(asset, headers={"Authorization": ""})
        assert served.status_code == 200, asset
    assert (await client.get("/dashboard/assets/nope.js")).status_code == 404


async def test_every_panel_has_its_table_and_reads_a_documented_endpoint(
    client: httpx.AsyncClient,
) -> None:
    """The script's reads are the `_READS` above (so each is checked for its token and its
    OpenAPI entry), one per panel of the page, each panel with its table."""
    page = (await client.get("/dashboard")).text
    script = (await client.get("/dashboard/assets/dashboard.js")).text
    panels = re.findall(r'id="([a-z]+)-panel"', page)
    assert panels == ["campaigns", "insights", "performers", "hashtags", "activity", "webhooks"]
    for panel in panels:
        assert f'<table id="{panel}">' in page
        assert f'id: "{panel}-panel"' in script
    reads = re.findall(r'path: \(\) => [`"](/[a-z/-]+)', script)
    assert sorted(reads) == sorted(_READS)


async def test_embedded_development_mode_injects_a_demo_token(
    settings: Settings, store: Store, topics: None
) -> None:
    # The broker is the test session's, so the API can start; only the settings say "embedded".
    dev = settings.model_copy(update={"env": "dev", "kafka_bootstrap": None})
    dev = dev.model_copy(update={"kafka_embedded_port": int(settings.bootstrap.split(":")[1])})
    token = page_token((await serve_page(dev, store)).text)
    assert verify_token(dev.jwt_secret, token).org == "demo"

    external = settings.model_copy(update={"env": "dev"})  # FK_KAFKA_BOOTSTRAP set
    assert page_token((await serve_page(external, store)).text) == ""


def test_openapi_documents_the_page_as_public_and_the_reads_as_bearer(
    settings: Settings, store: Store
) -> None:
    schema = create_app(settings, store=store).openapi()
    assert "security" not in schema["paths"]["/dashboard"]["get"]
    for path in _READS:
        operation = schema["paths"][path]["get"]
        assert operation["security"] == [{"bearerAuth": []}]
        assert operation["responses"]["200"]["content"]["application/json"]["schema"]

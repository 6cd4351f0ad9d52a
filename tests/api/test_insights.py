"""`GET /insights`: the caller's organisation's insight events as the campaign worker stored
them, newest first, filtered by campaign, kind and time, paged by cursor without gaps or
repeats; another organisation's never shown; bad parameters are 422 problem details."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from core.clickhouse import Store
from core.repositories.insights import insert_insights
from core.settings import Settings
from schemas.insights import INSIGHT_EVENT, CampaignInsight, InsightKind
from streams.app import Orchestrator
from tests.api.test_dashboard import add_campaign
from tests.api.test_http import assert_problem
from tests.api.test_logs import BAD_CURSORS
from tests.conftest import wait_until

T0 = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
METRIC = {"spike": "views", "stall": "engagements", "rateDrop": "engagementRate"}


def make_insight(
    campaign_id: str = "cmp_a",
    *,
    minute: int = 0,
    kind: InsightKind = "spike",
    status: str = "raised",
    org: str = "acme",
    episode: str | None = None,
    **overrides: Any,
) -> CampaignInsight:
    """An insight event of `org`, decided `minute` minutes after T0 (the schema's example
    otherwise)."""
    at = T0 + timedelta(minutes=minute)
    insight_id = episode or f"ins_{org}_{campaign_id}_{kind}_{minute}"
    example = CampaignInsight.model_json_schema()["examples"][0]
    body = {
        **example,
        "eventId": f"{insight_id}:{status}",
        "insightId": insight_id,
        "status": status,
        "org": org,
        "campaignId": campaign_id,
        "kind": kind,
        "metric": METRIC[kind],
        "scope": {"kind": "campaign", "id": campaign_id},
        "firstSeen": at.isoformat(),
        "occurredAt": at.isoformat(),
    }
    return INSIGHT_EVENT.validate_python({**body, **overrides})


async def all_pages(client: httpx.AsyncClient, **params: Any) -> list[list[str]]:
    """The event ids of every page, following `nextCursor` to the end."""
    pages: list[list[str]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/insights", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append([item["eventId"] for item in page["items"]])
        cursor = page["nextCursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "the cursor does not advance"


async def test_newest_first_with_the_event_as_sent(client: httpx.AsyncClient, store: Store) -> None:
    older = make_insight(minute=1)
    newer = make_insight("cmp_b", minute=5, kind="stall")
    cleared = make_insight(minute=9, status="cleared", episode=older.insight_id)
    await insert_insights(store, [older, cleared, newer])
    response = await client.get("/insights")
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["nextCursor"] is None
    assert [i["eventId"] for i in page["items"]] == [
        cleared.event_id,
        newer.event_id,
        older.event_id,
    ]
    assert page["items"][1] == newer.model_dump(mode="json", by_alias=True)
    assert page["items"][0]["insightId"] == page["items"][2]["insightId"]


async def test_pages_follow_each_other_without_gaps_or_repeats(
    client: httpx.AsyncClient, store: Store
) -> None:
    """23 events, several sharing a minute (a page boundary falls inside a minute), read 5 at a
    time: every event once, in the order of one big page."""
    insights = [
        make_insight(f"cmp_{n % 4}", minute=n // 3, kind=("spike", "stall", "rateDrop")[n % 3])
        for n in range(23)
    ]
    await insert_insights(store, insights)
    [whole] = await all_pages(client, limit=1000)
    assert len(whole) == 23
    expected = sorted(insights, key=lambda i: (i.occurred_at, i.event_id), reverse=True)
    assert whole == [i.event_id for i in expected]
    pages = await all_pages(client, limit=5)
    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    assert [e for p in pages for e in p] == whole
    # Exactly a page's worth: the last full page still points on, to an empty page.
    pages = await all_pages(client, campaignId="cmp_0", limit=3)
    assert [len(p) for p in pages] == [3, 3, 0]


async def test_events_stored_between_pages_do_not_shift_the_cursor(
    client: httpx.AsyncClient, store: Store
) -> None:
    await insert_insights(store, [make_insight(minute=m) for m in range(6)])
    first = (await client.get("/insights", params={"limit": 3})).json()
    # A newer event arrives, and one of the page already read is stored again (at-least-once).
    await insert_insights(store, [make_insight(minute=10), make_insight(minute=4)])
    second = (
        await client.get("/insights", params={"limit": 3, "cursor": first["nextCursor"]})
    ).json()
    minutes = [i["occurredAt"][11:16] for i in first["items"] + second["items"]]
    assert minutes == ["09:05", "09:04", "09:03", "09:02", "09:01", "09:00"]


async def test_an_event_stored_twice_is_listed_once(
    client: httpx.AsyncClient, store: Store
) -> None:
    insight = make_insight()
    await insert_insights(store, [insight])
    await insert_insights(store, [insight])
    response = await client.get("/insights")
    assert [i["eventId"] for i in response.json()["items"]] == [insight.event_id]


async def test_filters_by_campaign_kind_and_time(client: httpx.AsyncClient, store: Store) -> None:
    await insert_insights(
        store,
        [
            make_insight("cmp_a", minute=0, kind="spike"),
            make_insight("cmp_a", minute=10, kind="stall"),
            make_insight("cmp_a", minute=20, kind="rateDrop"),
            make_insight("cmp_b", minute=30, kind="spike"),
        ],
    )

    async def ids(**params: Any) -> list[str]:
        response = await client.get("/insights", params=params)
        assert response.status_code == 200, response.text
        return [f"{i['campaignId']}/{i['kind']}" for i in response.json()["items"]]

    assert await ids(campaignId="cmp_a") == ["cmp_a/rateDrop", "cmp_a/stall", "cmp_a/spike"]
    assert await ids(kind="spike") == ["cmp_b/spike", "cmp_a/spike"]
    assert await ids(campaignId="cmp_a", kind="spike") == ["cmp_a/spike"]
    since = (T0 + timedelta(minutes=10)).isoformat()
    assert await ids(since=since) == ["cmp_b/spike", "cmp_a/rateDrop", "cmp_a/stall"]
    # The same moment in another offset; `since` is inclusive.
    assert await ids(since="2026-12-05T10:10:00+01:00", kind="stall") == ["cmp_a/stall"]
    assert await ids(since="2026-12-05T09:10:00.001Z", kind="stall") == []
    assert await ids(campaignId="cmp_c") == []
    # Moments the store cannot hold are clamped, not a store error.
    assert len(await ids(since="0001-01-01T00:00:00Z")) == 4
    assert await ids(since="9999-12-31T23:59:59Z") == []


async def test_a_cursor_keeps_the_filters_it_is_used_with(
    client: httpx.AsyncClient, store: Store
) -> None:
    await insert_insights(
        store,
        [make_insight("cmp_a", minute=m) for m in range(5)]
        + [make_insight("cmp_b", minute=m) for m in range(5)],
    )
    pages = await all_pages(client, campaignId="cmp_b", limit=2)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert all("cmp_b" in e for p in pages for e in p)


async def test_another_organisations_insights_are_never_listed(
    client: httpx.AsyncClient, store: Store
) -> None:
    """Organisation `rival` has insights on a campaign id acme also uses and on one only it
    uses: acme sees its own only, and the rival-only id answers as an unused id does."""
    own = make_insight("cmp_shared", minute=1)
    await insert_insights(
        store,
        [
            own,
            make_insight("cmp_shared", minute=2, org="rival"),
            make_insight("cmp_rival", minute=3, org="rival"),
        ],
    )
    response = await client.get("/insights")
    assert [i["eventId"] for i in response.json()["items"]] == [own.event_id]
    assert "rival" not in response.text
    shared = await client.get("/insights", params={"campaignId": "cmp_shared"})
    assert [i["eventId"] for i in shared.json()["items"]] == [own.event_id]
    rivals = await client.get("/insights", params={"campaignId": "cmp_rival"})
    unused = await client.get("/insights", params={"campaignId": "cmp_nobody"})
    assert rivals.status_code == unused.status_code == 200
    assert rivals.json() == unused.json() == {"items": [], "nextCursor": None, "campaignNames": {}}


async def test_the_page_names_the_organisations_own_campaigns(
    client: httpx.AsyncClient, store: Store
) -> None:
    """Names at their newest version; a campaign id the rival created and acme only has
    insights for (events sent with that id) is not named after the rival's campaign."""
    await add_campaign(store, "cmp_own", "acme", name="Spring launch")
    await add_campaign(store, "cmp_own", "acme", name="Spring launch, renamed", version=2)
    await add_campaign(store, "cmp_theirs", "rival", name="Rival secret")
    creator = make_insight(
        "", minute=3, episode="ins_creator", scope={"kind": "creator", "id": "inf_1"}
    )
    await insert_insights(
        store, [make_insight("cmp_own", minute=1), make_insight("cmp_theirs", minute=2), creator]
    )
    response = await client.get("/insights")
    assert response.json()["campaignNames"] == {"cmp_own": "Spring launch, renamed"}
    assert "Rival secret" not in response.text
    assert [i["scope"]["kind"] for i in response.json()["items"]] == [
        "creator",
        "campaign",
        "campaign",
    ]


@pytest.mark.parametrize("cursor", BAD_CURSORS.values(), ids=BAD_CURSORS.keys())
async def test_a_cursor_the_api_did_not_mint_is_422_problem_details(
    client: httpx.AsyncClient, cursor: str
) -> None:
    response = await client.get("/insights", params={"cursor": cursor})
    body = assert_problem(response, 422)
    assert body["detail"] == "Invalid cursor."


BAD_PARAMETERS = {
    "unknown-kind": {"kind": "surge"},
    "kind-in-snake-case": {"kind": "rate_drop"},
    "since-without-offset": {"since": "2026-12-05T09:00:00"},
    "since-not-a-time": {"since": "yesterday"},
    "since-unix-seconds": {"since": "1796461860"},
    "since-a-fraction": {"since": "0.5"},
    "since-a-date-only": {"since": "2026-12-05"},
    "empty-campaign": {"campaignId": ""},
    "limit-zero": {"limit": "0"},
    "limit-too-large": {"limit": "1001"},
    "cursor-too-long": {"cursor": "a" * 201},
}


@pytest.mark.parametrize("params", BAD_PARAMETERS.values(), ids=BAD_PARAMETERS.keys())
async def test_bad_parameters_are_422_problem_details(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    assert_problem(await client.get("/insights", params=params), 422)


async def test_needs_a_token(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/insights", headers={"Authorization": ""}), 401)


async def test_an_insight_on_campaign_events_is_listed_once_the_worker_stored_it(
    client: httpx.AsyncClient,
    orchestrator: Orchestrator,
    producer: AIOKafkaProducer,
    settings: Settings,
) -> None:
    """The whole path: the event on `campaign-events`, read by the campaign worker (twice,
    as at-least-once delivery may), stored, and listed by the API once."""
    insight = make_insight("cmp_live", minute=0)
    for _ in range(2):
        await producer.send_and_wait(
            settings.campaign_topic, insight.model_dump_json(by_alias=True).encode()
        )

    async def listed() -> list[dict[str, Any]]:
        response = await client.get("/insights", params={"campaignId": "cmp_live"})
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    [item] = await wait_until(listed)
    assert item == insight.model_dump(mode="json", by_alias=True)

"""`GET /top-performers` on real chDB: ratio-of-sums rates, sort orders and ties, organisation
scoping, batch rows merged with streamed events, and 404/422 problem details."""

import asyncio
import itertools
import threading
from collections.abc import Callable, Hashable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import orjson
import pyarrow as pa
import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import given
from hypothesis import strategies as st

from api.main import create_app
from api.routes import top_performers as top_performers_routes
from core.clickhouse import Store
from core.settings import Settings
from etl.loader import Outputs, load_file
from schemas.events import Platform
from scoring import queries as scoring_queries
from scoring.queries import (
    CampaignScopes,
    Candidate,
    RankedScope,
    Ranking,
    ScopeRanking,
    TopSort,
    rank,
    top_performers_version,
)
from streams.agents.engagement import EngagementConsumer
from streams.transforms import EVENT_COLUMNS
from tests.api.test_http import assert_problem
from tests.conftest import served, wait_until
from tests.factories import encode, make_event

_ids = itertools.count()


def performer(influencer_id: str, **overrides: Any) -> Candidate:
    values: dict[str, Any] = {
        "influencer_id": influencer_id,
        "platform": "instagram",
        "platforms": ("instagram",),
        "followers": None,
        "handle": None,
        "category": None,
        "posts": 1,
        "views": 100,
        "likes": 5,
        "comments": 0,
        "shares": 0,
        "saves": 0,
        "score": None,
    }
    values.update(overrides)
    return Candidate(**values)


def count_campaign_passes(monkeypatch: pytest.MonkeyPatch) -> list[CampaignScopes]:
    """Every campaign pass the API scores from now on, in order."""
    passes: list[CampaignScopes] = []
    real = top_performers_routes.scored_campaigns

    async def counted(*args: Any, **kwargs: Any) -> CampaignScopes:
        found = await real(*args, **kwargs)
        passes.append(found)
        return found

    monkeypatch.setattr(top_performers_routes, "scored_campaigns", counted)
    return passes


def insert_rows(store: Store, rows: list[dict[str, Any]]) -> None:
    """Engagement rows straight into the store (as the sink would write them)."""
    defaults: dict[str, Any] = {
        "event_time": datetime(2026, 10, 1, tzinfo=UTC),
        "campaign_id": "cmp_a",
        "platform": "instagram",
        "post_id": "",
        "views": 100,
        "likes": 0,
        "comments": 0,
        "shares": 0,
        "saves": 0,
        "followers": None,
        "hashtags": [],
        "source": "stream",
        "kafka_partition": 0,
        "kafka_offset": 0,
        "org": "acme",
    }
    full = [{**defaults, "event_id": f"row-{next(_ids)}", **r} for r in rows]
    store.insert_sync(
        "engagement_events", [[r[c] for r in full] for c in EVENT_COLUMNS], EVENT_COLUMNS
    )


def add_campaign(store: Store, campaign_id: str, org: str) -> None:
    now = datetime.now(UTC)
    store.insert_sync(
        "campaigns",
        [[campaign_id], [org], ["n"], ["b"], ["draft"], [1], ["{}"], [now], [now]],
        ["id", "org", "name", "brand", "status", "version", "body", "created_at", "updated_at"],
    )


# -- pure ranking ----------------------------------------------------------------------------


def test_rank_sorts_descending_and_breaks_ties_by_influencer_id() -> None:
    creators = [
        performer("b", likes=1, views=20),  # 5 %
        performer("a", likes=3, views=60),  # 5 %: tied with "b", first by influencerId
        performer("c", likes=3, views=40),  # 7.5 %
        performer("d", likes=1, views=100),  # 1 %
    ]
    assert [
        p.influencer_id for p in rank(creators, sort="engagementRate", limit=10, min_views=0).items
    ] == ["c", "a", "b", "d"]
    by_views = rank(creators, sort="views", limit=2, min_views=0)
    assert [p.influencer_id for p in by_views.items] == ["d", "a"]
    assert by_views.total == 4
    filtered = rank(creators, sort="views", limit=10, min_views=40)
    assert [p.influencer_id for p in filtered.items] == ["d", "a", "c"]
    assert rank(creators, sort="views", limit=10, min_views=1000).model_dump() == {
        "items": [],
        "total": 0,
        "sort": "views",
        "limit": 10,
    }
    assert rank([], sort="engagementScore", limit=10, min_views=0).items == []


# -- over HTTP on the store ------------------------------------------------------------------


async def top(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get("/top-performers", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_rate_is_a_ratio_of_sums_with_counts(client: httpx.AsyncClient, store: Store) -> None:
    insert_rows(
        store,
        [
            {"influencer_id": "inf_a", "views": 1000, "likes": 10, "comments": 0, "shares": 0},
            {"influencer_id": "inf_a", "views": 10, "likes": 5, "comments": 3, "shares": 2},
            {"influencer_id": "inf_b", "views": 100, "likes": 3, "saves": 50},
            {"influencer_id": "inf_c", "views": 0, "likes": 0},
        ],
    )
    body = await top(client, campaignId="cmp_a")
    items = {i["influencerId"]: i for i in body["items"]}
    a = items["inf_a"]
    assert (a["views"], a["likes"], a["comments"], a["shares"], a["engagements"]) == (
        1010,
        15,
        3,
        2,
        20,
    )
    assert a["engagementRate"] == round(20 / 1010 * 100, 4)  # not the mean of 1% and 100%
    assert items["inf_b"]["engagementRate"] == 3.0
    assert items["inf_b"]["saves"] == 50
    assert items["inf_c"]["engagementRate"] == 0.0
    assert [i["influencerId"] for i in body["items"]] == ["inf_b", "inf_a", "inf_c"]
    assert 0 <= a["engagementScore"] <= 100
    assert set(a["scoreComponents"]) == {
        "cohort",
        "cohortSize",
        "typicalPostRate",
        "cohortPostRate",
        "robustZ",
        "shrinkage",
    }


async def test_sort_keys_limit_ties_and_empty_scopes(
    client: httpx.AsyncClient, store: Store
) -> None:
    insert_rows(
        store,
        [
            {"influencer_id": "inf_z", "views": 100, "likes": 10},
            {"influencer_id": "inf_y", "views": 100, "likes": 10},
            {"influencer_id": "inf_x", "views": 500, "likes": 10},
            {"influencer_id": "inf_w", "views": 50, "likes": 10, "platform": "tiktok"},
        ],
    )
    ranked = await top(client, campaignId="cmp_a")
    assert [i["influencerId"] for i in ranked["items"]] == ["inf_w", "inf_y", "inf_z", "inf_x"]
    by_views = await top(client, campaignId="cmp_a", sort="views", limit=2)
    assert [i["influencerId"] for i in by_views["items"]] == ["inf_x", "inf_y"]
    assert by_views["total"] == 4
    tied = await top(client, campaignId="cmp_a", sort="engagements")
    assert [i["influencerId"] for i in tied["items"]] == ["inf_w", "inf_x", "inf_y", "inf_z"]
    tiktok = await top(client, campaignId="cmp_a", platform="tiktok")
    assert [i["influencerId"] for i in tiktok["items"]] == ["inf_w"]
    assert (await top(client, campaignId="cmp_a", minViews=400))["total"] == 1
    for params in ({"campaignId": "cmp_nobody"}, {"campaignId": "cmp_a", "platform": "x"}):
        assert await top(client, **params) == {
            "items": [],
            "total": 0,
            "sort": "engagementRate",
            "limit": 10,
        }


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "101"},
        {"limit": "0"},
        {"sort": "followers"},
        {"platform": "myspace"},
        {"minViews": "-1"},
        {"campaignId": ""},
    ],
)
async def test_out_of_range_parameters_are_422(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    assert_problem(await client.get("/top-performers", params=params), 422)


async def test_organisation_scope_and_foreign_campaigns(
    client: httpx.AsyncClient, store: Store
) -> None:
    add_campaign(store, "cmp_mine", "acme")
    add_campaign(store, "cmp_theirs", "globex")
    insert_rows(
        store,
        [
            {"influencer_id": "inf_mine", "campaign_id": "cmp_mine"},
            {"influencer_id": "inf_theirs", "campaign_id": "cmp_theirs", "org": "globex"},
            {"influencer_id": "inf_organic", "campaign_id": ""},
            {"influencer_id": "inf_unclaimed", "campaign_id": "cmp_unclaimed"},
        ],
    )
    body = await top(client)
    assert sorted(i["influencerId"] for i in body["items"]) == [
        "inf_mine",
        "inf_organic",
        "inf_unclaimed",
    ]
    # Another organisation's campaign id ranks the caller's events for it (none): the same
    # answer as for an id nobody uses, so nothing reveals that the other's exists.
    assert (await top(client, campaignId="cmp_theirs"))["items"] == []
    assert (await top(client, campaignId="cmp_nobody"))["items"] == []
    assert [
        i["influencerId"] for i in (await top(client, campaignId="cmp_unclaimed"))["items"]
    ] == ["inf_unclaimed"]


async def test_batch_rows_and_streamed_events_merge_for_a_campaign(
    client: httpx.AsyncClient,
    store: Store,
    settings: Settings,
    pipeline: EngagementConsumer,
    producer: AIOKafkaProducer,
    tmp_path: Path,
) -> None:
    csv = tmp_path / "performance.csv"
    csv.write_text(
        "campaignId,influencerId,platform,postId,postedAt,views,likes,comments,shares,"
        "followers,handle,category\n"
        "cmp_mix,inf_a,instagram,p1,2026-01-01,1000,50,5,5,20000,@a,Food\n"
        "cmp_mix,inf_b,instagram,p2,2026-01-01,1000,10,0,0,5000,@b,Tech\n"
    )
    load_file(store, csv, Outputs.beside(csv), org="acme")
    events = [
        make_event(
            campaignId="cmp_mix",
            influencerId="inf_b",
            views=1000,
            likes=200,
            comments=0,
            shares=0,
            followers=6000,
        ),
        make_event(
            campaignId="cmp_mix", influencerId="inf_c", views=10, likes=1, comments=0, shares=0
        ),
    ]
    stored_before = pipeline.sink.stored
    for e in events:
        await producer.send_and_wait(
            settings.engagement_topic,
            encode(e),
            key=e["influencerId"].encode(),
            headers=[("fk-org", b"acme")],
        )
    # Once the sink's insert has returned, the ranking's views have the events too.
    await wait_until(lambda: pipeline.sink.stored - stored_before == len(events))
    body = await top(client, campaignId="cmp_mix")
    items = {i["influencerId"]: i for i in body["items"]}
    b = items["inf_b"]
    assert (b["views"], b["likes"], b["posts"]) == (2000, 210, 2)
    assert b["engagementRate"] == 10.5
    assert (b["handle"], b["category"], b["followers"]) == ("@b", "Tech", 6000)  # newest followers
    assert items["inf_c"]["handle"] is None
    assert [i["influencerId"] for i in body["items"]] == ["inf_b", "inf_c", "inf_a"]
    food = await top(client, campaignId="cmp_mix", category="food")
    assert [i["influencerId"] for i in food["items"]] == ["inf_a"]


async def test_the_data_version_changes_with_inserts_not_with_merges(store: Store) -> None:
    before = await top_performers_version(store)
    insert_rows(store, [{"influencer_id": "inf_a"}])
    after_event = await top_performers_version(store)
    add_campaign(store, "cmp_v", "acme")
    after_campaign = await top_performers_version(store)
    store.command_sync("INSERT INTO creators (influencer_id, handle) VALUES ('inf_a', '@a')")
    after_creator = await top_performers_version(store)
    assert len({before, after_event, after_campaign, after_creator}) == 4
    insert_rows(store, [{"influencer_id": "inf_b", "followers": 10}])
    insert_rows(store, [{"influencer_id": "inf_b", "followers": 20}])
    unmerged = await top_performers_version(store)
    for table in ("engagement_events", "post_totals", "creator_followers"):
        store.command_sync(f"OPTIMIZE TABLE {table} FINAL")
    assert await top_performers_version(store) == unmerged
    # The views' tables on their own: a scoring that read the events' part before the views'
    # parts of the same insert were committed is not kept as current.
    store.command_sync(
        "INSERT INTO post_totals (org, campaign_id, influencer_id, platform, post, events)"
        " VALUES ('acme', 'cmp_v', 'inf_c', 'tiktok', 1, 1)"
    )
    after_post_totals = await top_performers_version(store)
    assert after_post_totals != unmerged
    store.command_sync(
        "INSERT INTO creator_followers SELECT 'acme', 'inf_c',"
        " argMaxState(toUInt64(5), (now64(3, 'UTC'), toUInt64(5)))"
    )
    assert await top_performers_version(store) != after_post_totals


async def test_the_first_organisation_wide_request_after_a_start_waits_for_no_scoring(
    settings: Settings, store: Store, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The start scores the organisation's whole scope and ranks it by the default sort (at
    10M events each takes seconds), so its first request finds both done."""
    insert_rows(store, [{"influencer_id": f"inf_{n}", "views": 100, "likes": n} for n in range(5)])
    app = create_app(settings, store=store)
    async with served(app, token) as client:
        await app.state.warming
        work: list[str] = []
        scored, ranked = top_performers_routes.scored_creators, RankedScope.of

        async def scoring(*args: Any, **kwargs: Any) -> Any:
            work.append("scoring")
            return await scored(*args, **kwargs)

        def ranking(cls: type[RankedScope], *args: Any) -> RankedScope:
            work.append("ranking")
            return ranked(*args)

        monkeypatch.setattr(top_performers_routes, "scored_creators", scoring)
        monkeypatch.setattr(RankedScope, "of", classmethod(ranking))
        body = await top(client, limit=3)
        assert [i["influencerId"] for i in body["items"]] == ["inf_4", "inf_3", "inf_2"]
        assert work == []
        await top(client, limit=3, sort="views")  # another sort is ranked on first use
        assert work == ["ranking"]


async def test_cached_answers_follow_new_rows_and_are_kept_while_nothing_changes(
    client: httpx.AsyncClient, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = client._transport.app  # type: ignore[attr-defined]
    services = app.state.services
    # Every request refreshes: no TTL, and no refresh budget or load share keeping an entry
    # fresh for longer (on a busy machine a slow pass would stay fresh for seconds).
    monkeypatch.setattr(services.top_cache, "ttl", 0.0)
    monkeypatch.setattr(services.top_cache, "refresh_budget", None)
    monkeypatch.setattr(services.top_cache, "load_share", None)
    await app.state.warming
    insert_rows(store, [{"influencer_id": "inf_a", "likes": 5}])
    assert (await top(client, campaignId="cmp_a"))["total"] == 1
    # The first read scored the new campaign on its own and its organisation's campaigns again
    # (in the background: wait until that pass holds the campaign).

    def passed() -> bool:
        scopes = services.top_cache.peek(("top-campaigns", "acme"))
        return isinstance(scopes, CampaignScopes) and "cmp_a" in scopes

    await wait_until(lambda: passed() and not services.top_cache._loading)
    passes = count_campaign_passes(monkeypatch)
    for _ in range(3):
        assert (await top(client, campaignId="cmp_a"))["total"] == 1
    assert passes == []
    insert_rows(store, [{"influencer_id": "inf_b", "likes": 5}])

    async def both() -> bool:
        return (await top(client, campaignId="cmp_a"))["total"] == 2

    await wait_until(both)
    assert len(passes) == 1


async def test_invalid_parameters_are_named_and_valid_ones_remembered(
    client: httpx.AsyncClient,
) -> None:
    for _ in range(2):  # the second time from the remembered parse
        body = assert_problem(
            await client.get("/top-performers", params={"limit": "0", "minViews": "-1"}), 422
        )
        assert sorted(e["location"] for e in body["errors"]) == ["query.limit", "query.minViews"]
        ok = await client.get("/top-performers", params={"limit": "3", "sort": "views"})
        assert ok.status_code == 200
        assert (ok.json()["limit"], ok.json()["sort"]) == (3, "views")
    assert top_performers_routes._PARSED


async def test_sort_limit_and_min_views_rank_one_scoring_of_the_scope(
    client: httpx.AsyncClient, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Free parameters cannot make every request a reload: one scope is scored once."""
    await client._transport.app.state.warming  # type: ignore[attr-defined]
    # The warm-up scored the organisation's campaign pass before the rows below: it would be
    # re-scored once its TTL passed (the data changed), whenever the requests below take
    # longer than the TTL. Not what this test counts: it starts without it, and nothing it
    # loads gets old meanwhile.
    services = client._transport.app.state.services  # type: ignore[attr-defined]
    services.top_cache.clear()
    services.top_cache.ttl = 3600.0
    loads = 0
    real_campaigns, real_scope = (
        top_performers_routes.scored_campaigns,
        top_performers_routes.scored_creators,
    )

    async def campaigns(*args: Any, **kwargs: Any) -> CampaignScopes:
        nonlocal loads
        loads += 1
        return await real_campaigns(*args, **kwargs)

    async def scope(*args: Any, **kwargs: Any) -> list[Candidate]:
        nonlocal loads
        loads += 1
        return await real_scope(*args, **kwargs)

    monkeypatch.setattr(top_performers_routes, "scored_campaigns", campaigns)
    monkeypatch.setattr(top_performers_routes, "scored_creators", scope)
    insert_rows(
        store,
        [
            {"influencer_id": "inf_a", "views": 100, "likes": 9},
            {"influencer_id": "inf_b", "views": 1000, "likes": 20},
            {"influencer_id": "inf_c", "views": 10, "likes": 5},
        ],
    )
    answers = {}
    for sort in ("engagementRate", "views", "engagements", "engagementScore"):
        for limit in (1, 2, 10):
            for min_views in (0, 50, 999):
                body = await top(
                    client, campaignId="cmp_a", sort=sort, limit=limit, minViews=min_views
                )
                answers[sort, limit, min_views] = [i["influencerId"] for i in body["items"]]
    assert loads == 1
    assert answers["engagementRate", 10, 0] == ["inf_c", "inf_a", "inf_b"]
    assert answers["views", 2, 0] == ["inf_b", "inf_a"]
    assert answers["engagements", 10, 50] == ["inf_b", "inf_a"]
    assert answers["views", 10, 999] == ["inf_b"]
    # Another scope is scored on its own.
    await top(client, campaignId="cmp_a", platform="instagram")
    assert loads == 2


async def test_a_new_event_reaches_a_ranking_that_is_read_continuously(
    settings: Settings, pipeline: EngagementConsumer, client: httpx.AsyncClient, store: Store
) -> None:
    """With the default TTL, a scoring served stale is refreshed once the data changed (how
    soon is measured by `make bench`, not here)."""
    services = client._transport.app.state.services  # type: ignore[attr-defined]
    assert (
        services.top_cache.ttl == Settings.model_fields["top_performers_cache_ttl_seconds"].default
    )
    insert_rows(store, [{"influencer_id": "inf_a", "views": 100, "likes": 1}])
    assert [i["influencerId"] for i in (await top(client, campaignId="cmp_a"))["items"]] == [
        "inf_a"
    ]
    response = await client.post(
        "/events",
        json=[make_event(influencerId="inf_new", campaignId="cmp_a", views=10, likes=9)],
    )
    assert response.status_code == 202, response.text

    async def ranked_first() -> bool:
        items = (await top(client, campaignId="cmp_a"))["items"]
        return bool(items) and items[0]["influencerId"] == "inf_new"

    await wait_until(ranked_first, timeout=10)


async def test_organisation_rankings_are_scored_at_start_so_first_requests_do_not_wait(
    settings: Settings, store: Store, topics: None, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    insert_rows(store, [{"influencer_id": "inf_a", "campaign_id": "cmp_w", "likes": 3}])
    add_campaign(store, "cmp_w", "acme")
    # Long enough that a warmed ranking is still fresh when the requests come (not the TTL's
    # test: a slow start-up must not turn the first request into a reload).
    settings = settings.model_copy(update={"top_performers_cache_ttl_seconds": 60.0})
    app = create_app(settings, store=store)
    async with app.router.lifespan_context(app):
        services = app.state.services
        # Every scope start-up scores (the whole organisation and each platform), so none is
        # still being scored by start-up once the requests below count the loads.
        warmed = [("top", "acme", None, p, None) for p in (None, *(p.value for p in Platform))]
        warmed.append(("top-campaigns", "acme"))
        await wait_until(lambda: all(key in services.top_cache._entries for key in warmed))
        loads = 0

        async def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal loads
            loads += 1
            raise AssertionError("scored again")

        monkeypatch.setattr(top_performers_routes, "scored_creators", counted)
        monkeypatch.setattr(top_performers_routes, "scored_campaigns", counted)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://api",
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            body = await top(client)
            on_instagram = await top(client, platform="instagram")
            in_campaign = await top(client, campaignId="cmp_w")
    assert [i["influencerId"] for i in body["items"]] == ["inf_a"]
    assert [i["influencerId"] for i in on_instagram["items"]] == ["inf_a"]
    assert [i["influencerId"] for i in in_campaign["items"]] == ["inf_a"]
    assert loads == 0


async def test_every_campaign_of_an_organisation_is_scored_in_one_pass(
    client: httpx.AsyncClient, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dashboard reading campaign after campaign waits for one scoring, not one per campaign;
    each campaign's answer is the one its own scoring gives."""
    await client._transport.app.state.warming  # type: ignore[attr-defined]
    insert_rows(
        store,
        [
            {"influencer_id": "inf_a", "campaign_id": "cmp_1", "views": 100, "likes": 9},
            {"influencer_id": "inf_b", "campaign_id": "cmp_1", "views": 100, "likes": 3},
            {"influencer_id": "inf_b", "campaign_id": "cmp_2", "views": 50, "likes": 20},
            {"influencer_id": "inf_c", "campaign_id": "cmp_3", "views": 10, "likes": 1},
        ],
    )
    # Another organisation's events for the same campaign ids are not in acme's scopes.
    insert_rows(store, [{"influencer_id": "inf_x", "campaign_id": "cmp_2", "org": "globex"}])
    client._transport.app.state.services.top_cache.clear()  # type: ignore[attr-defined]
    passes = count_campaign_passes(monkeypatch)
    answers = {c: await top(client, campaignId=c) for c in ("cmp_1", "cmp_2", "cmp_3", "cmp_9")}
    assert len(passes) == 1
    assert [i["influencerId"] for i in answers["cmp_1"]["items"]] == ["inf_a", "inf_b"]
    assert [i["influencerId"] for i in answers["cmp_2"]["items"]] == ["inf_b"]
    assert [i["influencerId"] for i in answers["cmp_3"]["items"]] == ["inf_c"]
    assert answers["cmp_9"] == {"items": [], "total": 0, "sort": "engagementRate", "limit": 10}
    for campaign_id in ("cmp_1", "cmp_2"):
        alone = scoring_queries.rank(
            await scoring_queries.scored_creators(
                store, org="acme", campaign_id=campaign_id, platform=None, category=None
            ),
            sort="engagementRate",
            limit=10,
            min_views=0,
        )
        assert answers[campaign_id] == alone.model_dump(by_alias=True, mode="json")


# -- free parameters -------------------------------------------------------------------------


@given(
    creators=st.lists(
        st.builds(
            performer,
            st.text("abcdef", min_size=1, max_size=4),
            views=st.integers(0, 60),
            likes=st.integers(0, 9),
            comments=st.integers(0, 3),
            shares=st.integers(0, 3),
        ),
        max_size=40,
        unique_by=lambda c: c.influencer_id,
    ),
    sort=st.sampled_from(["engagementRate", "engagementScore", "views", "engagements"]),
    limit=st.integers(1, 100),
    min_views=st.integers(0, 70),
)
@hypothesis.settings(max_examples=300, deadline=None)
def test_a_ranked_scope_answers_as_rank_does_for_every_limit_and_min_views(
    creators: list[Candidate], sort: TopSort, limit: int, min_views: int
) -> None:
    ranked = RankedScope.of(creators, sort)
    expected = rank(creators, sort=sort, limit=limit, min_views=min_views)
    for _ in range(2):  # the second time from the serialised items
        assert ranked.top(limit=limit, min_views=min_views) == (
            expected.model_dump_json(by_alias=True).encode()
        )


async def test_distinct_limits_and_min_views_cost_one_ranking_per_scoring(
    client: httpx.AsyncClient, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Free parameters cannot make every request a cache miss: 400 requests with distinct
    `limit`/`minViews` values rank each scoring once per sort key, answer as `rank` would, and
    leave the remembered parses of other queries in place."""
    creators = 50
    insert_rows(
        store,
        [
            {"influencer_id": f"inf_{n:02}", "views": 10 + n * 7, "likes": (n * 13) % 17}
            for n in range(creators)
        ],
    )
    app = client._transport.app  # type: ignore[attr-defined]
    await app.state.warming  # not the start-up scoring of organisations
    app.state.services.top_cache.clear()
    scorings: list[list[Candidate]] = []
    real = top_performers_routes.scored_campaigns

    async def counted(*args: Any, **kwargs: Any) -> CampaignScopes:
        found = await real(*args, **kwargs)
        scorings.append((await found.ranking("cmp_a")).creators)
        return found

    monkeypatch.setattr(top_performers_routes, "scored_campaigns", counted)
    evaluations = 0

    def counting(key: Callable[[Candidate], float]) -> Callable[[Candidate], float]:
        def evaluate(c: Candidate) -> float:
            nonlocal evaluations
            evaluations += 1
            return key(c)

        return evaluate

    monkeypatch.setattr(
        scoring_queries,
        "_SORT_KEYS",
        {name: counting(key) for name, key in scoring_queries._SORT_KEYS.items()},
    )
    await top(client)  # a dashboard's query, remembered
    hot = set(top_performers_routes._PARSED)
    sorts: list[TopSort] = ["engagementRate", "views"]
    requests = [
        (sorts[n % 2], 1 + n % 100, n * 3 % 401)  # 400 distinct (limit, minViews) pairs
        for n in range(400)
    ]
    answers = await asyncio.gather(
        *(
            top(client, campaignId="cmp_a", sort=s, limit=limit, minViews=min_views)
            for s, limit, min_views in requests
        )
    )
    assert len(scorings) == 1
    # One ranking per sort key: each creator's key evaluated once per sort (plus the first
    # organisation-wide request's default sort).
    assert evaluations <= creators * (len(sorts) + 1)
    for (s, limit, min_views), body in zip(requests, answers, strict=True):
        expected = rank(scorings[0], sort=s, limit=limit, min_views=min_views)
        assert body == expected.model_dump(by_alias=True, mode="json")
    assert hot <= set(top_performers_routes._PARSED)
    assert len(top_performers_routes._PARSED) <= len(hot) + len(sorts)


# -- re-scored scopes answer from their previous ranking -------------------------------------


def _top_ids(body: bytes) -> list[str]:
    return [item["influencerId"] for item in orjson.loads(body)["items"]]


async def test_a_re_scored_scope_answers_from_its_previous_ranking_until_ranked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache: dict[Hashable, Ranking] = {}
    query = top_performers_routes.TopPerformersQuery.model_validate({"sort": "views"})
    first = ScopeRanking.of([performer("inf_a", views=10)])
    for scope in ("s", "t"):
        assert _top_ids(await top_performers_routes._ranked(cache, scope, first, query)) == [
            "inf_a"
        ]
    gate = threading.Event()
    real = RankedScope.of

    def held(creators: list[Candidate], sort: TopSort) -> RankedScope:
        gate.wait(10)
        return real(creators, sort)

    monkeypatch.setattr(RankedScope, "of", held)
    newer = [performer("inf_a", views=10), performer("inf_b", views=99)]
    second = ScopeRanking.of(newer, refresh=True)
    try:
        # Answered at once from the first scoring's ranking while the second is ranked.
        stale = await asyncio.wait_for(top_performers_routes._ranked(cache, "s", second, query), 2)
        assert _top_ids(stale) == ["inf_a"]
        # A scoring that is no refresh (the scope's cache entry was dropped: an upload, say)
        # waits for its own ranking.
        loaded = ScopeRanking.of(newer)
        waiting = asyncio.ensure_future(top_performers_routes._ranked(cache, "t", loaded, query))
        await asyncio.sleep(0.2)
        assert not waiting.done()
    finally:
        gate.set()
    assert _top_ids(await waiting) == ["inf_b", "inf_a"]
    await wait_until(lambda: cache[("s", "views")].task.done())
    fresh = await top_performers_routes._ranked(cache, "s", second, query)
    assert _top_ids(fresh) == ["inf_b", "inf_a"]
    # A request still holding the first scoring is answered from the newer ranking.
    assert await top_performers_routes._ranked(cache, "s", first, query) == fresh


def _scope_row(campaign_id: str, influencer_id: str, views: int) -> tuple[Any, ...]:
    return (
        influencer_id, "instagram", ["instagram"], views, 5, 0, 0, 0, 1, 1, -3.0, 9.0,
        None, None, None, 0.0, campaign_id,
    )  # fmt: skip


async def test_a_new_pass_over_campaigns_answers_from_the_previous_until_it_has_scored_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = CampaignScopes({"cmp_1": [_scope_row("cmp_1", "inf_a", 10)]})
    assert [c.influencer_id for c in (await first.ranking("cmp_1")).creators] == ["inf_a"]
    gate = threading.Event()
    real = scoring_queries._candidates

    def held(rows: list[tuple[Any, ...]]) -> list[Candidate]:
        gate.wait(10)
        return real(rows)

    monkeypatch.setattr(scoring_queries, "_candidates", held)
    rows = [_scope_row("cmp_1", "inf_a", 10), _scope_row("cmp_1", "inf_b", 20)]
    second = CampaignScopes({"cmp_1": rows, "cmp_2": []}, previous=first)
    try:
        stale = await asyncio.wait_for(second.ranking("cmp_1"), 2)
        assert [c.influencer_id for c in stale.creators] == ["inf_a"]
    finally:
        gate.set()
    await wait_until(lambda: second._rankings["cmp_1"].done())
    fresh = await second.ranking("cmp_1")
    assert sorted(c.influencer_id for c in fresh.creators) == ["inf_a", "inf_b"]
    # A campaign the previous pass had not scored waits for its own scoring.
    assert (await second.ranking("cmp_2")).creators == []
    third = CampaignScopes({}, previous=second)
    assert first._previous is None
    assert second._previous is None
    assert third._previous is second


def test_a_campaign_pass_held_as_arrow_gives_each_campaign_its_rows() -> None:
    rows = [
        _scope_row("cmp_1", "inf_a", 10),
        _scope_row("cmp_1", "inf_b", 20),
        _scope_row("cmp_2", "inf_a", 30),
        _scope_row("cmp_9", "inf_c", 40),
    ]
    names = [f"c{i}" for i in range(len(rows[0]))]
    table = pa.Table.from_pylist([dict(zip(names, row, strict=True)) for row in rows])
    held = scoring_queries.CampaignRows(table)
    assert sorted(held) == ["cmp_1", "cmp_2", "cmp_9"]
    assert held["cmp_1"] == rows[:2]
    assert held["cmp_2"] == rows[2:3]
    assert held.get("cmp_3", []) == []
    assert len(scoring_queries.CampaignRows(table.slice(0, 0))) == 0
    # A dictionary-encoded campaign column (the store's LowCardinality) is read the same.
    encoded = table.set_column(16, "c16", table.column(16).dictionary_encode())
    assert scoring_queries.CampaignRows(encoded)["cmp_2"] == rows[2:3]


# -- partial campaign passes -----------------------------------------------------------------


def test_a_partial_pass_replaces_the_changed_campaigns_and_keeps_the_others_scorings() -> None:
    async def check() -> None:
        first = CampaignScopes(
            {
                "cmp_1": [_scope_row("cmp_1", "inf_a", 10)],
                "cmp_2": [_scope_row("cmp_2", "inf_b", 20)],
                "cmp_3": [_scope_row("cmp_3", "inf_c", 30)],
            },
            writes=4,
            full_seconds=2.0,
        )
        kept = await first.ranking("cmp_1")
        await first.ranking("cmp_2")
        fresh = {
            "cmp_2": [_scope_row("cmp_2", "inf_b", 20), _scope_row("cmp_2", "inf_d", 5)],
            "cmp_4": [_scope_row("cmp_4", "inf_e", 1)],
        }
        second = first.updated(fresh, {"cmp_2", "cmp_3", "cmp_4"}, writes=7, seconds=0.01)
        assert (second.writes, second.full_at, second.full_seconds) == (7, first.full_at, 2.0)
        assert second.partial_seconds == 0.01
        # cmp_3 had no rows any more; cmp_4 had its first.
        assert sorted(second._rows) == ["cmp_1", "cmp_2", "cmp_4"]
        assert "cmp_3" not in second
        assert "cmp_4" in second
        # An unchanged campaign keeps its scoring (same generation: no ranking again).
        assert await second.ranking("cmp_1") is kept
        # A changed one is scored again, the previous scoring answering meanwhile.
        await second.ranking("cmp_2")
        await wait_until(lambda: second._rankings["cmp_2"].done())
        changed = await second.ranking("cmp_2")
        assert sorted(c.influencer_id for c in changed.creators) == ["inf_b", "inf_d"]
        # A partial pass over a partial pass still replaces rows of the full pass only once.
        third = second.updated({}, {"cmp_1"}, writes=8, seconds=0.01)
        assert sorted(third._rows) == ["cmp_2", "cmp_4"]
        assert third._rows.full is first._rows  # type: ignore[attr-defined]
        assert await third.ranking("cmp_2") is changed

    asyncio.run(check())


_CAMPAIGNS = [f"cmp_{n}" for n in range(5)]
_ROW = st.fixed_dictionaries(
    {
        "campaign_id": st.sampled_from(_CAMPAIGNS),
        "influencer_id": st.sampled_from([f"inf_{n}" for n in range(6)]),
        "platform": st.sampled_from(["instagram", "tiktok"]),
        "post_id": st.sampled_from(["", "p1", "p2", "p3"]),
        "views": st.integers(0, 500),
        "likes": st.integers(0, 50),
        "comments": st.integers(0, 5),
        "shares": st.integers(0, 5),
    }
)


@given(
    first=st.lists(_ROW, min_size=1, max_size=12),
    later=st.lists(st.lists(_ROW, min_size=1, max_size=6), min_size=1, max_size=3),
    followers=st.dictionaries(
        st.sampled_from([f"inf_{n}" for n in range(6)]), st.integers(1, 10**6)
    ),
)
@hypothesis.settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)
def test_partial_passes_answer_as_a_full_pass_does(
    store: Store,
    first: list[dict[str, Any]],
    later: list[list[dict[str, Any]]],
    followers: dict[str, int],
) -> None:
    """For random streams of batches (repeated posts, late batches for earlier campaigns), the
    campaign scopes renewed by partial passes over the campaigns each batch touched rank every
    campaign exactly as a full pass over all of them. (A follower count reported in one campaign
    also changes a creator's rows in its others: left to the next full pass, so the later
    batches here report none.)"""
    org = f"o{next(_ids)}"
    reported = [{**row, "followers": followers.get(row["influencer_id"])} for row in first]

    async def check() -> None:
        insert_rows(store, [{**row, "org": org} for row in reported])
        scopes = await scoring_queries.scored_campaigns(store, org=org, writes=1)
        for batch in later:
            insert_rows(store, [{**row, "org": org} for row in batch])
            touched = {row["campaign_id"] for row in batch}
            scopes = await scoring_queries.scored_campaigns(
                store, org=org, previous=scopes, changed=touched, writes=1
            )
            assert scopes.partial_seconds is not None
        full = await scoring_queries.scored_campaigns(store, org=org)
        assert sorted(scopes._rows) == sorted(full._rows)
        for campaign_id in _CAMPAIGNS:
            for sort in ("engagementScore", "engagementRate"):
                assert rank(
                    (await scopes.ranking(campaign_id)).creators, sort=sort, limit=100, min_views=0
                ) == rank(
                    (await full.ranking(campaign_id)).creators, sort=sort, limit=100, min_views=0
                ), (campaign_id, sort)

    asyncio.run(check())


async def test_a_new_event_reaches_its_campaigns_ranking_through_a_partial_pass(
    settings: Settings,
    store: Store,
    topics: None,
    token: str,
    pipeline: EngagementConsumer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In the embedded platform (the engagement writers in the API's process) the sink says
    which campaigns each batch touched, and the next campaign pass reads only those again."""
    insert_rows(
        store,
        [
            {"influencer_id": f"inf_{n}", "campaign_id": f"cmp_p{n % 3}", "views": 100, "likes": n}
            for n in range(9)
        ],
    )
    app = create_app(settings, store=store, writers_in_process=True)
    passes = count_campaign_passes(monkeypatch)
    async with served(app, token) as client:
        await app.state.warming
        before = await top(client, campaignId="cmp_p0")
        assert [i["influencerId"] for i in before["items"]] == ["inf_6", "inf_3", "inf_0"]
        response = await client.post(
            "/events",
            json=[make_event(influencerId="inf_new", campaignId="cmp_p1", views=10, likes=9)],
        )
        assert response.status_code == 202, response.text

        async def ranked_first() -> bool:
            items = (await top(client, campaignId="cmp_p1"))["items"]
            return bool(items) and items[0]["influencerId"] == "inf_new"

        await wait_until(ranked_first, timeout=10)
        # Read through a partial pass over the one campaign the event touched.
        assert passes[-1].partial_seconds is not None
        assert sorted(passes[-1]._rows.changed) == ["cmp_p1"]  # type: ignore[attr-defined]
        for campaign_id in ("cmp_p0", "cmp_p1", "cmp_p2"):
            alone = rank(
                await scoring_queries.scored_creators(
                    store, org="acme", campaign_id=campaign_id, platform=None, category=None
                ),
                sort="engagementRate",
                limit=10,
                min_views=0,
            )
            answer = await top(client, campaignId=campaign_id)
            assert answer == alone.model_dump(by_alias=True, mode="json")


async def test_a_standalone_apis_campaign_passes_are_paced_by_their_cost(
    client: httpx.AsyncClient, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without in-process writers every campaign pass is a full one: it stays fresh for at
    least its duration over the scoring share, as any expensive load does."""
    services = client._transport.app.state.services  # type: ignore[attr-defined]
    await client._transport.app.state.warming  # type: ignore[attr-defined]
    monkeypatch.setattr(services.top_cache, "ttl", 0.0)
    insert_rows(store, [{"influencer_id": "inf_a", "campaign_id": "cmp_s", "likes": 5}])
    services.top_cache.clear()
    scopes = await top_performers_routes.campaign_scopes(services, "acme")
    assert scopes.partial_seconds is None
    fresh_for = services.top_cache._entries[("top-campaigns", "acme")][3]
    assert fresh_for >= scopes.full_seconds / top_performers_routes.SCORING_SHARE > 0

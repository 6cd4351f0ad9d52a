"""The `risingCreators` tool: a campaign's creators whose engagements grew most in the last 24
hours, from the organisation's own events only; its numbers and creators are evidence a brief
may cite; a brief that used it (or `campaignForecast`) is cached until the hour ends at most."""

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from briefs.service import BriefService
from briefs.tools import ToolBox
from core.clickhouse import Store
from core.repositories.engagement import MIN_RISING_VIEWS
from schemas.briefs import BriefRequest
from tests.briefs.conftest import event, hours_ago, insert_events
from tests.briefs.fake_llm import Body, FakeLLM, final, grounded_brief, results_of, tools

CAMPAIGN = "cmp_rising"
REQUEST = BriefRequest.model_validate(
    {
        "brand": "Glowlab",
        "product": "Vitamin C serum",
        "goal": "Keep the launch going",
        "platform": "instagram",
    }
)


def engaged(creator: str, hours: float, views: int, likes: int, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "influencerId": creator,
        "campaignId": CAMPAIGN,
        "timestamp": hours_ago(hours),
        "views": views,
        "likes": likes,
        "comments": 0,
        "shares": 0,
    }
    return event(**{**fields, **overrides})


def seed_campaign(store: Store) -> None:
    """inf_up: 10 -> 60 engagements; inf_fast: 5 -> 25; inf_flat: 30 -> 30; inf_small: rising
    on too few views; inf_old: only events over 48 hours ago; globex's inf_up rises far more."""
    insert_events(
        store,
        [
            engaged("inf_up", 30, 400, 10),
            engaged("inf_up", 5, 800, 60),
            engaged("inf_fast", 40, 300, 5),
            engaged("inf_fast", 2, 500, 25),
            engaged("inf_flat", 36, 500, 30),
            engaged("inf_flat", 3, 500, 30),
            engaged("inf_small", 1, MIN_RISING_VIEWS - 1, 50),
            engaged("inf_old", 50, 900, 1),
            engaged("inf_new", 4, 300, 12),
            engaged("inf_up", 1, 500, 99, campaignId="cmp_other"),
        ],
    )
    insert_events(
        store,
        [engaged("inf_up", 30, 100, 1), engaged("inf_up", 2, 90_000, 9_000)],
        org="globex",
    )


async def test_rising_creators_rank_by_the_increase_within_the_organisation(store: Store) -> None:
    seed_campaign(store)
    box = ToolBox(store, "acme", None, datetime.now(UTC))

    result = await box.call("risingCreators", orjson.dumps({"campaignId": CAMPAIGN}).decode())

    assert result.ok, result.content
    content = result.content
    assert content["campaignId"] == CAMPAIGN
    assert content["window"] == "last24h"
    assert content["minViews"] == MIN_RISING_VIEWS
    assert [c["influencerId"] for c in content["creators"]] == ["inf_up", "inf_fast", "inf_new"]
    up, fast, new = content["creators"]
    assert up == {
        "rank": 1,
        "influencerId": "inf_up",
        "engagements": 60,
        "previousEngagements": 10,
        "growth": 500.0,
        "views": 800,
        "previousViews": 400,
        "engagementRate": 7.5,
    }
    assert (fast["engagements"], fast["previousEngagements"], fast["growth"]) == (25, 5, 400.0)
    assert (new["previousEngagements"], new["growth"]) == (0, None)  # new: no growth figure
    assert "9000" not in result.to_message()  # globex's numbers are never read

    limited = await box.call("risingCreators", f'{{"campaignId": "{CAMPAIGN}", "limit": 1}}')
    assert [c["influencerId"] for c in limited.content["creators"]] == ["inf_up"]


async def test_a_campaign_without_rising_creators_says_so(store: Store) -> None:
    seed_campaign(store)
    box = ToolBox(store, "globex", None, datetime.now(UTC))
    # globex's inf_up in the same campaign id rises: one creator, from globex's events.
    theirs = await box.call("risingCreators", f'{{"campaignId": "{CAMPAIGN}"}}')
    assert [c["engagements"] for c in theirs.content["creators"]] == [9_000]

    nobody = await ToolBox(store, "acme", None, datetime.now(UTC)).call(
        "risingCreators", '{"campaignId": "cmp_nobody"}'
    )
    assert nobody.ok
    assert nobody.content["creators"] == []
    assert "No creator of this campaign is rising" in nobody.content["note"]


@pytest.mark.parametrize("arguments", ['{"campaignId": ""}', '{"limit": 3}', "[]"])
async def test_bad_arguments_are_error_results(store: Store, arguments: str) -> None:
    result = await ToolBox(store, "acme", None, datetime.now(UTC)).call("risingCreators", arguments)
    assert not result.ok


def citing_rising(body: Body) -> str:
    """A grounded brief whose caption names the top rising creator and its growth."""
    brief = orjson.loads(grounded_brief(body))
    top = results_of(body)["risingCreators"]["creators"][0]
    brief["caption"] = f"{top['influencerId']} is up {top['growth']:g} % in a day: feature them"
    return orjson.dumps(brief).decode()


async def test_a_brief_cites_a_rising_creator_and_is_cached_until_the_hour_ends(
    llm_service: BriefService, fake_llm: FakeLLM, demo_store: Store
) -> None:
    seed_campaign(demo_store)
    fake_llm.load(
        tools(("risingCreators", {"campaignId": CAMPAIGN, "limit": 3})), final(citing_rising)
    )

    before = datetime.now(UTC)
    generated = await llm_service.generate(REQUEST, "acme")

    brief = generated.brief
    assert brief.caption.startswith("inf_up is up 500 %")
    assert [(t.tool, t.ok) for t in brief.meta.tools] == [("risingCreators", True)]
    assert any(e.tool == "risingCreators" for e in brief.evidence)
    rows = await demo_store.query_rows(
        "SELECT expires_at FROM brief_cache WHERE brief_id = {id:String}", {"id": brief.id}
    )
    expires = rows[0][0].replace(tzinfo=UTC)
    next_hour = before.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    assert expires <= next_hour + timedelta(seconds=1)  # not the day's TTL
    assert expires > before

"""`GET /campaigns/{id}/forecast` against the real app and store: the answer's shape and
intervals, the short-history fallback, the horizon from the end date, organisation scoping."""

import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from core.clickhouse import Store
from core.settings import Settings
from tests.api.test_campaigns import create, other_org
from tests.api.test_http import assert_problem
from tests.api.test_top_performers import insert_rows

# Campaign commands are answered by the campaign agent.
pytestmark = pytest.mark.usefixtures("campaign_agent")

HOUR = 3600


def current_hour() -> int:
    return int(time.time()) // HOUR


def insert_hours(
    store: Store, campaign_id: str, hours: int, *, org: str = "acme", views: int = 1000
) -> int:
    """`hours` complete hours of a daily-cycling campaign ending at the current hour; returns the
    views inserted."""
    now_hour = current_hour()
    rows: list[dict[str, Any]] = []
    for back in range(hours, 0, -1):
        hour = now_hour - back
        level = views * (1 + 0.5 * math.sin(2 * math.pi * (hour % 24) / 24))
        rows.append(
            {
                "event_time": datetime.fromtimestamp(hour * HOUR + 600, UTC),
                "campaign_id": campaign_id,
                "influencer_id": "inf_a",
                "org": org,
                "views": int(level),
                "likes": int(level * 0.08),
                "comments": 3,
                "shares": 2,
            }
        )
    insert_rows(store, rows)
    return sum(r["views"] for r in rows)


def check_projection(p: dict[str, float]) -> None:
    assert set(p) == {"expected", "lower", "upper"}
    assert p["lower"] <= p["expected"] <= p["upper"]


async def test_forecast_of_a_campaign_with_days_of_history(
    client: httpx.AsyncClient, store: Store
) -> None:
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=73)
    campaign = await create(client, endDate=end.isoformat())
    seen = insert_hours(store, campaign["id"], 96)
    response = await client.get(f"/campaigns/{campaign['id']}/forecast")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["campaignId"] == campaign["id"]
    assert body["model"] == "dampedTrendDaily"
    assert body["interval"] == 0.8
    history, horizon = body["history"], body["horizon"]
    assert history["hours"] == 96
    assert history["earlierViews"] == 0
    assert datetime.fromisoformat(history["end"]).timestamp() == current_hour() * HOUR
    assert horizon == {
        "hours": 73,
        "end": end.isoformat().replace("+00:00", "Z"),
        "basis": "endDate",
    }
    for name in ("views", "engagements", "engagementRate"):
        check_projection(body[name])
    # Totals include the history; 73 more hours of ~1000 views an hour.
    assert seen + 50_000 < body["views"]["expected"] < seen + 100_000
    assert body["views"]["lower"] >= seen
    assert 8.0 < body["engagementRate"]["expected"] < 9.5  # (8 % likes + 5 per ~1000) in percent


async def test_short_history_falls_back_to_the_run_rate_and_a_week(
    client: httpx.AsyncClient, store: Store
) -> None:
    campaign = await create(client)
    insert_hours(store, campaign["id"], 10)
    body = (await client.get(f"/campaigns/{campaign['id']}/forecast")).json()
    assert body["model"] == "runRate"
    assert "48 hours" in body["modelDescription"]
    assert body["history"]["hours"] == 10
    assert body["horizon"]["hours"] == 168
    assert body["horizon"]["basis"] == "default"
    check_projection(body["views"])


async def test_history_older_than_four_weeks_counts_in_the_totals_only(
    client: httpx.AsyncClient, store: Store
) -> None:
    campaign = await create(client)
    old = datetime.now(UTC) - timedelta(days=40)
    insert_rows(
        store,
        [
            {
                "event_time": old,
                "campaign_id": campaign["id"],
                "influencer_id": "i",
                "views": 7,
                "likes": 1,
            }
        ],
    )
    insert_hours(store, campaign["id"], 3)
    body = (await client.get(f"/campaigns/{campaign['id']}/forecast")).json()
    assert body["history"]["hours"] == 3
    assert body["history"]["earlierViews"] == 7
    assert body["history"]["earlierEngagements"] == 1


async def test_forecasts_are_scoped_to_the_organisation(
    client: httpx.AsyncClient, store: Store, settings: Settings
) -> None:
    campaign = await create(client)
    insert_hours(store, campaign["id"], 60)
    globex = other_org(settings)
    response = await client.get(f"/campaigns/{campaign['id']}/forecast", headers=globex)
    assert_problem(response, 404)
    # Globex's campaign of the same id forecasts from Globex's events only.
    theirs = await client.post(
        "/campaigns", json={"name": "Theirs", "id": campaign["id"]}, headers=globex
    )
    assert theirs.status_code == 201, theirs.text
    insert_hours(store, campaign["id"], 5, org="globex", views=10)
    body = (await client.get(f"/campaigns/{campaign['id']}/forecast", headers=globex)).json()
    assert body["model"] == "runRate"
    assert body["history"]["hours"] == 5
    assert body["views"]["expected"] < 10_000
    ours = (await client.get(f"/campaigns/{campaign['id']}/forecast")).json()
    assert ours["history"]["hours"] == 60


async def test_unknown_campaign_and_no_history_are_problems(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/campaigns/no-such-campaign/forecast"), 404)
    campaign = await create(client)
    response = await client.get(f"/campaigns/{campaign['id']}/forecast")
    assert_problem(response, 409)
    assert "no complete hour" in response.json()["detail"]


async def test_forecast_is_documented_with_an_example(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    operation = schema["paths"]["/campaigns/{campaign_id}/forecast"]["get"]
    assert operation["security"] == [{"bearerAuth": []}]
    assert {"200", "401", "404", "409", "422"} <= set(operation["responses"])
    model = schema["components"]["schemas"]["CampaignForecast"]
    assert model["examples"][0]["model"] == "dampedTrendDaily"

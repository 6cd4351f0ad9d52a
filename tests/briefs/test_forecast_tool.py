"""The `campaignForecast` tool through the real app and the scripted model: the model gets the
campaign's forecast as `GET /campaigns/{id}/forecast` answers it and may cite its numbers (they
are evidence); a campaign the organisation never created is an error result, never another
organisation's forecast; outside the API the tool says it is not available."""

from datetime import UTC, datetime

import httpx
import orjson
import pytest

from briefs.tools import ToolBox
from core.auth import issue_token
from core.clickhouse import Store
from core.settings import Settings
from tests.briefs.conftest import event, hours_ago, insert_events
from tests.briefs.fake_llm import Body, FakeLLM, final, grounded_brief, results_of, tools

# Campaign commands are answered by the campaign agent.
pytestmark = pytest.mark.usefixtures("campaign_agent")

BODY = {
    "brand": "Glowlab",
    "product": "Vitamin C serum",
    "goal": "Keep the launch going",
    "platform": "instagram",
}


async def campaign_with_history(client: httpx.AsyncClient, store: Store, org: str = "acme") -> str:
    response = await client.post("/campaigns", json={"name": "Serum launch"})
    assert response.status_code == 201, response.text
    campaign_id: str = response.json()["id"]
    insert_events(
        store,
        [
            event(campaignId=campaign_id, timestamp=hours_ago(h), views=1000 + 10 * h, likes=40)
            for h in (5, 4, 3, 2)
        ],
        org=org,
    )
    return campaign_id


def citing_forecast(body: Body) -> str:
    """A grounded brief whose caption cites the forecast's expected views, rounded."""
    brief = orjson.loads(grounded_brief(body))
    views = results_of(body)["campaignForecast"]["forecast"]["views"]["expected"]
    brief["caption"] = f"On track for {round(views):,} views by the end of the campaign"
    return orjson.dumps(brief).decode()


async def test_the_model_cites_the_campaigns_forecast(
    llm_client: httpx.AsyncClient, fake_llm: FakeLLM, demo_store: Store
) -> None:
    campaign_id = await campaign_with_history(llm_client, demo_store)
    fake_llm.load(tools(("campaignForecast", {"campaignId": campaign_id})), final(citing_forecast))
    response = await llm_client.post("/generate-brief", json={**BODY, "campaignId": campaign_id})
    assert response.status_code == 201, response.text
    brief = response.json()
    assert [(t["tool"], t["ok"]) for t in brief["meta"]["tools"]] == [("campaignForecast", True)]

    forecast = (await llm_client.get(f"/campaigns/{campaign_id}/forecast")).json()
    told = results_of(fake_llm.requests[-1])["campaignForecast"]
    assert told["campaignId"] == campaign_id
    # The API's answer (the same cache entry), without what the model has no use for.
    for key in ("views", "engagements", "engagementRate", "history", "horizon", "model"):
        assert told["forecast"][key] == forecast[key], key
    assert f"{round(forecast['views']['expected']):,}" in brief["caption"]
    cited = [e for e in brief["evidence"] if e["tool"] == "campaignForecast"]
    assert [e["path"] for e in cited] == ["forecast.views.expected"]


async def test_a_number_the_forecast_does_not_hold_is_not_grounded(
    llm_client: httpx.AsyncClient, fake_llm: FakeLLM, demo_store: Store
) -> None:
    campaign_id = await campaign_with_history(llm_client, demo_store)

    def inflated(body: Body) -> str:
        brief = orjson.loads(grounded_brief(body))
        views = results_of(body)["campaignForecast"]["forecast"]["views"]["upper"]
        brief["caption"] = f"On track for {round(views * 3):,} views"
        return orjson.dumps(brief).decode()

    fake_llm.load(tools(("campaignForecast", {"campaignId": campaign_id})), final(inflated))
    fake_llm.fallback = final(inflated)  # the repair turn insists
    response = await llm_client.post("/generate-brief", json=BODY)
    assert response.status_code == 422, response.text
    assert "caption" in response.text


async def test_another_organisations_campaign_is_an_error_result(
    llm_client: httpx.AsyncClient, fake_llm: FakeLLM, demo_store: Store, settings: Settings
) -> None:
    """globex's campaign (with events and hours of history) and an id nobody uses get the same
    error; the brief is written without them."""
    other = {"Authorization": f"Bearer {issue_token(settings.jwt_secret, org='globex')}"}
    response = await llm_client.post("/campaigns", json={"name": "Theirs"}, headers=other)
    assert response.status_code == 201, response.text
    theirs = response.json()["id"]
    insert_events(
        demo_store,
        [event(campaignId=theirs, timestamp=hours_ago(h), views=5000) for h in (4, 3, 2)],
        org="globex",
    )
    fake_llm.load(
        tools(
            ("campaignForecast", {"campaignId": theirs}),
            ("campaignForecast", {"campaignId": "cmp_nobody"}),
        ),
        final(grounded_brief),
    )
    response = await llm_client.post("/generate-brief", json=BODY)
    assert response.status_code == 201, response.text
    assert [(t["tool"], t["ok"]) for t in response.json()["meta"]["tools"]] == [
        ("campaignForecast", False),
        ("campaignForecast", False),
    ]
    told = [m["content"] for m in fake_llm.requests[-1]["messages"] if m["role"] == "tool"]
    assert len(told) == 2
    assert all("in this organisation" in t for t in told)
    assert all("5000" not in t and "views" not in t for t in told)


async def test_a_campaign_without_a_complete_hour_has_no_forecast_yet(
    llm_client: httpx.AsyncClient, fake_llm: FakeLLM
) -> None:
    response = await llm_client.post("/campaigns", json={"name": "Brand new"})
    campaign_id = response.json()["id"]
    fake_llm.load(tools(("campaignForecast", {"campaignId": campaign_id})), final(grounded_brief))
    response = await llm_client.post("/generate-brief", json=BODY)
    assert response.status_code == 201, response.text
    told = results_of(fake_llm.requests[-1])["campaignForecast"]
    assert told["forecast"] is None
    assert "no complete hour" in told["note"]


async def test_without_the_api_the_tool_is_not_available(store: Store) -> None:
    box = ToolBox(store, "acme", None, datetime.now(UTC))
    result = await box.call("campaignForecast", '{"campaignId": "cmp_a"}')
    assert not result.ok
    assert result.content == {"error": "campaign forecasts are not available here"}
    assert not (await box.call("campaignForecast", '{"campaignId": ""}')).ok

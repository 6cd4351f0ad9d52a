"""The brief endpoints end to end with the offline provider on the demo data."""

import re
import time

import httpx

from core.auth import issue_token
from core.clickhouse import Store
from core.settings import Settings

REQUEST = {
    "brand": "Glowlab",
    "product": "Vitamin C serum for sensitive skin",
    "goal": "Drive awareness before the festive season",
    "platform": "instagram",
    "audience": "Women who care about skincare routines",
}


async def test_offline_brief_is_grounded_stored_and_org_scoped(
    client: httpx.AsyncClient, demo_store: Store, settings: Settings
) -> None:
    response = await client.post("/generate-brief", json=REQUEST)
    assert response.status_code == 201, response.text
    brief = response.json()
    assert response.headers["location"] == f"/briefs/{brief['id']}"
    assert 3 <= len(brief["hookIdeas"]) <= 5
    assert brief["meta"]["model"] == "offline-composer"
    assert brief["meta"]["cacheHit"] is False
    assert [t["tool"] for t in brief["meta"]["tools"] if t["ok"]] == [
        "personaClassifier",
        "trendFetcher",
        "topCreators",
        "creativeAngle",
        "similarBriefs",
    ]
    assert brief["targetPersona"].startswith("Skincare enthusiast")
    assert brief["recommendedCreators"], brief
    for creator in brief["recommendedCreators"]:
        assert re.fullmatch(r"inf_\d{3}", creator["influencerId"])
        assert creator["numbers"]["engagementRate"] > 0
    assert brief["evidence"], "numbers must be traced to tool results"
    assert {e["tool"] for e in brief["evidence"]} <= {
        "personaClassifier",
        "trendFetcher",
        "topCreators",
        "creativeAngle",
        "similarBriefs",
    }

    stored = await client.get(f"/briefs/{brief['id']}")
    assert stored.status_code == 200
    assert stored.json()["caption"] == brief["caption"]

    other = issue_token(settings.jwt_secret, org="globex")
    foreign = await client.get(
        f"/briefs/{brief['id']}", headers={"Authorization": f"Bearer {other}"}
    )
    assert foreign.status_code == 404
    assert foreign.headers["content-type"].startswith("application/problem+json")


async def test_repeat_request_is_a_cache_hit_under_100ms(
    client: httpx.AsyncClient, demo_store: Store
) -> None:
    first = await client.post("/generate-brief", json=REQUEST)
    assert first.status_code == 201
    variant = {**REQUEST, "brand": "  GLOWLAB ", "goal": REQUEST["goal"].upper()}
    started = time.perf_counter()
    second = await client.post("/generate-brief", json=variant)
    elapsed = time.perf_counter() - started
    assert second.status_code == 200, second.text
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["meta"]["cacheHit"] is True
    assert elapsed < 0.1, elapsed


async def test_new_data_invalidates_the_cache(client: httpx.AsyncClient, demo_store: Store) -> None:
    from tests.briefs.conftest import event, insert_events

    first = await client.post("/generate-brief", json=REQUEST)
    insert_events(demo_store, [event(platform="instagram", hashtags=["#skincare"])])
    second = await client.post("/generate-brief", json=REQUEST)
    assert second.status_code == 201
    assert second.json()["id"] != first.json()["id"]


async def test_invalid_request_is_problem_details(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/generate-brief", json={"brand": "x", "product": "y", "goal": "z", "platform": "myspace"}
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    missing = await client.post("/generate-brief", json={"brand": "x"})
    assert missing.status_code == 422
    # Found by the schema fuzzer: a boolean passed for the number.
    boolean = await client.post("/generate-brief", json={**REQUEST, "budget": False})
    assert boolean.status_code == 422


async def test_unknown_brief_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/briefs/brf_nope")
    assert response.status_code == 404

"""An organisation registers at most `FK_WEBHOOK_MAX_ENDPOINTS_PER_ORG` webhook endpoints, and
the dispatcher loads at most that many per organisation: no organisation's registrations can
crowd out another's. Dead-letter replays have a per-organisation quota too."""

import asyncio
import math

import httpx

from core.clickhouse import Store
from core.encryption import SecretCipher
from core.repositories.webhooks import registered_endpoints
from core.settings import Settings
from tests.api.test_http import assert_problem
from tests.security.conftest import ORG_A, ORG_B, api_client, bearer


async def _register(client: httpx.AsyncClient, headers: dict[str, str], n: int) -> httpx.Response:
    return await client.post(
        "/webhooks/endpoints", json={"url": f"https://hooks.example.com/fk/{n}"}, headers=headers
    )


async def test_an_organisation_registers_at_most_its_quota_and_others_are_unaffected(
    settings: Settings, store: Store, topics: None
) -> None:
    settings = settings.model_copy(update={"webhook_max_endpoints_per_org": 3})
    a, b = bearer(settings, ORG_A), bearer(settings, ORG_B)
    async with api_client(settings, store) as client:
        for n in range(3):
            assert (await _register(client, a, n)).status_code == 201
        problem = assert_problem(await _register(client, a, 3), 409)
        assert "at most 3" in str(problem["detail"])
        # A disabled endpoint still counts: it can be enabled again.
        listed = (await client.get("/webhooks/endpoints", headers=a)).json()["items"]
        assert len(listed) == 3
        first = listed[0]["id"]
        r = await client.patch(f"/webhooks/endpoints/{first}", json={"enabled": False}, headers=a)
        assert r.status_code == 200
        assert_problem(await _register(client, a, 4), 409)
        # Another organisation's quota is its own.
        assert (await _register(client, b, 0)).status_code == 201


async def test_concurrent_registrations_cannot_exceed_the_quota(
    settings: Settings, store: Store, topics: None
) -> None:
    settings = settings.model_copy(update={"webhook_max_endpoints_per_org": 3})
    a = bearer(settings, ORG_A)
    async with api_client(settings, store) as client:
        answers = await asyncio.gather(*(_register(client, a, n) for n in range(8)))
    assert sorted(r.status_code for r in answers) == [201] * 3 + [409] * 5


async def test_the_dispatcher_loads_each_organisations_oldest_endpoints_up_to_the_quota(
    settings: Settings, store: Store, topics: None
) -> None:
    settings = settings.model_copy(update={"webhook_max_endpoints_per_org": 5})
    a, b = bearer(settings, ORG_A), bearer(settings, ORG_B)
    async with api_client(settings, store) as client:
        mine: list[str] = []
        theirs: list[str] = []
        for ids, headers, count in ((mine, a, 3), (theirs, b, 5)):
            for n in range(count):
                ids.append((await _register(client, headers, n)).json()["id"])
                await asyncio.sleep(0.005)  # distinct creation times: "oldest" is well defined
    loaded = await registered_endpoints(store, per_org=2, cipher=SecretCipher(settings.secrets_key))
    by_org: dict[str, list[str]] = {}
    for endpoint in loaded:
        by_org.setdefault(endpoint.org, []).append(endpoint.id)
    assert by_org == {ORG_A: mine[:2], ORG_B: theirs[:2]}


async def test_dead_letter_replays_have_a_per_organisation_quota(
    settings: Settings, store: Store, topics: None
) -> None:
    settings = settings.model_copy(update={"webhook_max_replays_per_minute": 2})
    a, a_other_token, b = (
        bearer(settings, ORG_A),
        bearer(settings, ORG_A, subject="ci"),
        bearer(settings, ORG_B),
    )
    replay = {"campaignId": "cmp_1"}
    async with api_client(settings, store) as client:
        for headers in (a, a_other_token):
            response = await client.post("/webhooks/dlq/replay", json=replay, headers=headers)
            assert response.status_code == 202, response.text
        # The quota is the organisation's: another token of it does not get a fresh one.
        for headers in (a, a_other_token):
            refused = await client.post("/webhooks/dlq/replay", json=replay, headers=headers)
            problem = assert_problem(refused, 429)
            assert "2 times per minute" in str(problem["detail"])
            # Two per minute: the next one is allowed within half a minute.
            assert 1 <= int(refused.headers["Retry-After"]) <= math.ceil(60 / 2)
        # Another organisation's replays are its own.
        response = await client.post("/webhooks/dlq/replay", json=replay, headers=b)
        assert response.status_code == 202, response.text

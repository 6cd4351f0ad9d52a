"""API1 for campaign ids: an id is unique within an organisation only. Two organisations may both
hold `cmp_launch`; each reads, changes, replays and is notified of its own, the clock moves each
on its own dates, and another organisation's use of an id never shows (not even as a 409)."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from core.clickhouse import Store
from core.settings import Settings
from streams.app import Orchestrator
from tests.api.test_campaigns import read_events
from tests.api.test_http import assert_problem
from tests.conftest import wait_until
from tests.receivers import Receiver
from tests.security.conftest import ORG_A, ORG_B, api_client, bearer

# Campaign commands are answered by the campaign agent.
pytestmark = pytest.mark.usefixtures("campaign_agent")

# What differs between two campaigns created by the same request at different moments.
_VOLATILE = ("id", "createdAt", "updatedAt")


async def _create(
    client: httpx.AsyncClient, headers: dict[str, str], **body: Any
) -> dict[str, Any]:
    body.setdefault("name", "Launch")
    response = await client.post("/campaigns", json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _patch(
    client: httpx.AsyncClient, headers: dict[str, str], campaign_id: str, version: int, **body: Any
) -> httpx.Response:
    return await client.patch(
        f"/campaigns/{campaign_id}", json=body, headers={**headers, "If-Match": f'"{version}"'}
    )


async def test_two_organisations_create_the_same_id_and_each_keeps_its_own(
    settings: Settings, store: Store, topics: None
) -> None:
    a, b = bearer(settings, ORG_A), bearer(settings, ORG_B)
    async with api_client(settings, store) as client:
        mine = await _create(client, a, id="cmp_launch", name="A's launch", budget=100)
        theirs = await _create(client, b, id="cmp_launch", name="B's launch")
        assert (mine["id"], theirs["id"]) == ("cmp_launch", "cmp_launch")
        assert (await client.get("/campaigns/cmp_launch", headers=a)).json() == mine
        assert (await client.get("/campaigns/cmp_launch", headers=b)).json() == theirs
        for headers, name in ((a, "A's launch"), (b, "B's launch")):
            listed = (await client.get("/campaigns", headers=headers)).json()["items"]
            assert [(c["id"], c["name"]) for c in listed] == [("cmp_launch", name)]

        # A's change moves A's version only; B's If-Match is checked against B's version.
        changed = await _patch(client, a, "cmp_launch", 1, name="A's relaunch", status="scheduled")
        assert changed.status_code == 200, changed.text
        assert (changed.json()["version"], float(changed.json()["budget"])) == (2, 100)
        assert (await client.get("/campaigns/cmp_launch", headers=b)).json() == theirs
        stale = await _patch(client, a, "cmp_launch", 1, name="late")
        assert_problem(stale, 412)
        assert stale.headers["etag"] == '"2"'
        own = await _patch(client, b, "cmp_launch", 1, name="B's relaunch")
        assert own.status_code == 200, own.text
        assert (own.json()["name"], own.json()["status"], own.json()["version"]) == (
            "B's relaunch",
            "draft",
            2,
        )
        assert (await client.get("/campaigns/cmp_launch", headers=a)).json() == changed.json()

        # Within one organisation an id is still taken once.
        assert_problem(
            await client.post("/campaigns", json={"id": "cmp_launch", "name": "x"}, headers=b),
            409,
        )

    # The events keep the format and the key (the id); each names its organisation.
    events = await read_events(settings, expected=4)
    assert sorted((e.org, e.campaign_id, e.version, e.current.name) for e in events) == [
        (ORG_A, "cmp_launch", 1, "A's launch"),
        (ORG_A, "cmp_launch", 2, "A's relaunch"),
        (ORG_B, "cmp_launch", 1, "B's launch"),
        (ORG_B, "cmp_launch", 2, "B's relaunch"),
    ]


@pytest.mark.parametrize("idempotency_key", [None, "k-probe"])
async def test_another_organisations_id_answers_as_an_unused_one(
    settings: Settings, store: Store, topics: None, idempotency_key: str | None
) -> None:
    """Creating an id another organisation holds answers exactly as creating an id nobody holds
    (status, headers, body apart from the id and the clock), with or without an Idempotency-Key."""
    a, b = bearer(settings, ORG_A), bearer(settings, ORG_B)
    async with api_client(settings, store) as client:
        await _create(client, a, id="cmp_taken_by_a", name="Secret plan")

        async def probe(campaign_id: str, key_suffix: str) -> httpx.Response:
            headers = dict(b)
            if idempotency_key is not None:
                headers["Idempotency-Key"] = idempotency_key + key_suffix
            return await client.post(
                "/campaigns", json={"id": campaign_id, "name": "Probe"}, headers=headers
            )

        taken = await probe("cmp_taken_by_a", "-1")
        unused = await probe("cmp_unused", "-2")
        assert taken.status_code == unused.status_code == 201, (taken.text, unused.text)
        assert set(taken.headers) == set(unused.headers)
        assert taken.headers["location"] == "/campaigns/cmp_taken_by_a"

        def shape(response: httpx.Response) -> dict[str, Any]:
            return {k: v for k, v in response.json().items() if k not in _VOLATILE}

        assert shape(taken) == shape(unused)
        assert "Secret plan" not in taken.text
        own = (await client.get("/campaigns/cmp_taken_by_a", headers=a)).json()
        assert (own["name"], own["version"]) == ("Secret plan", 1)


async def test_idempotency_keys_and_chosen_ids_are_per_organisation(
    settings: Settings, store: Store, topics: None
) -> None:
    """The same Idempotency-Key with the same body (an id chosen by both) makes one campaign in
    each organisation; a retry replays the retrying organisation's campaign only."""
    a, b = bearer(settings, ORG_A), bearer(settings, ORG_B)
    body = {"id": "cmp_idem", "name": "Retry me"}
    async with api_client(settings, store) as client:

        async def post(headers: dict[str, str]) -> httpx.Response:
            return await client.post(
                "/campaigns", json=body, headers={**headers, "Idempotency-Key": "k-launch"}
            )

        first_a, first_b = await post(a), await post(b)
        assert first_a.status_code == first_b.status_code == 201, (first_a.text, first_b.text)
        assert "idempotent-replayed" not in first_a.headers
        assert "idempotent-replayed" not in first_b.headers
        changed = await _patch(client, a, "cmp_idem", 1, budget=7)
        assert changed.status_code == 200, changed.text

        again_a, again_b = await post(a), await post(b)
        assert again_a.status_code == again_b.status_code == 201
        assert again_a.headers["idempotent-replayed"] == again_b.headers["idempotent-replayed"]
        assert again_a.json() == changed.json()
        assert again_b.json() == first_b.json()
        other_body = await client.post(
            "/campaigns",
            json={**body, "name": "Other"},
            headers={**b, "Idempotency-Key": "k-launch"},
        )
        assert_problem(other_body, 422)


async def test_a_created_campaign_without_events_has_zero_metrics_in_each_organisation(
    settings: Settings, store: Store, topics: None
) -> None:
    """ "Created" is per organisation: A's campaign of an id neither shows B zeros nor keeps B's
    own campaign of that id from showing them."""
    a, b = bearer(settings, ORG_A), bearer(settings, ORG_B)
    async with api_client(settings, store) as client:
        await _create(client, a, id="cmp_quiet_both")
        assert (await client.get("/campaigns/cmp_quiet_both/metrics", headers=a)).status_code == 200
        assert_problem(await client.get("/campaigns/cmp_quiet_both/metrics", headers=b), 404)
        await _create(client, b, id="cmp_quiet_both")
        for headers in (a, b):
            answer = await client.get("/campaigns/cmp_quiet_both/metrics", headers=headers)
            assert answer.status_code == 200, answer.text
            assert answer.json()["total"]["events"] == 0


@pytest.fixture
def orchestrated(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "webhook_allowed_hosts": "127.0.0.1",
            "webhook_sweep_seconds": 0.5,
            "scheduler_interval_seconds": 0.2,
        }
    )


@pytest.fixture
async def receivers() -> AsyncIterator[dict[str, Receiver]]:
    started = {org: await Receiver().start() for org in (ORG_A, ORG_B)}
    yield started
    for receiver in started.values():
        await receiver.stop()


async def test_webhooks_and_the_clock_keep_each_organisations_campaign_of_one_id_apart(
    orchestrated: Settings, store: Store, topics: None, receivers: dict[str, Receiver]
) -> None:
    """Both organisations schedule `cmp_timed_both` on different dates: the clock moves each on
    its own dates, each organisation's endpoint hears only its campaign, and each delivery log
    shows only its own attempts."""
    settings = orchestrated
    tokens = {ORG_A: bearer(settings, ORG_A), ORG_B: bearer(settings, ORG_B)}
    now = datetime.now(UTC)
    dates = {
        ORG_A: (now + timedelta(seconds=1), now + timedelta(seconds=2)),
        ORG_B: (now + timedelta(seconds=1.5), now + timedelta(seconds=3)),
    }
    orchestrator = Orchestrator(settings, store)
    await orchestrator.start()
    try:
        await wait_until(
            lambda: len(orchestrator.dispatcher.partitions) == settings.campaign_partitions
        )
        async with api_client(settings, store) as client:
            for org, headers in tokens.items():
                endpoint = await client.post(
                    "/webhooks/endpoints", json={"url": receivers[org].url}, headers=headers
                )
                assert endpoint.status_code == 201, endpoint.text
                receivers[org].secrets.append(endpoint.json()["secret"])
            for org, headers in tokens.items():
                start, end = dates[org]
                await _create(
                    client,
                    headers,
                    id="cmp_timed_both",
                    name=f"{org} timed",
                    startDate=start.isoformat(),
                    endDate=end.isoformat(),
                )
                scheduled = await _patch(client, headers, "cmp_timed_both", 1, status="scheduled")
                assert scheduled.status_code == 200, scheduled.text

            async def completed() -> bool:
                for headers in tokens.values():
                    answer = await client.get("/campaigns/cmp_timed_both", headers=headers)
                    if answer.json()["status"] != "completed":
                        return False
                return True

            await wait_until(completed, timeout=15)
            await wait_until(lambda: all(len(r.received) >= 4 for r in receivers.values()))
            for org, receiver in receivers.items():
                # By version: the dispatcher does not order one campaign's deliveries.
                moves = sorted(
                    (
                        r.body["data"]["version"],
                        r.body["data"]["org"],
                        r.body["data"]["current"]["name"],
                        r.body["data"]["current"]["status"],
                    )
                    for r in receiver.received
                )
                name = f"{org} timed"
                assert moves == [
                    (1, org, name, "draft"),
                    (2, org, name, "scheduled"),
                    (3, org, name, "live"),
                    (4, org, name, "completed"),
                ]
                assert not receiver.bad
                final = (await client.get("/campaigns/cmp_timed_both", headers=tokens[org])).json()
                assert datetime.fromisoformat(final["updatedAt"]) >= dates[org][1]

                async def logged(headers: dict[str, str] = tokens[org]) -> list[Any]:
                    answer = await client.get(
                        "/logs", params={"campaignId": "cmp_timed_both"}, headers=headers
                    )
                    items: list[Any] = answer.json()["items"]
                    return items if len(items) >= 4 else []

                attempts = await wait_until(logged)
                assert {item["endpointUrl"] for item in attempts} == {receiver.url}
    finally:
        await orchestrator.stop()

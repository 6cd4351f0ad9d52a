"""API3 (broken object property level authorization): server-owned fields cannot be set through a
body. Create and patch bodies forbid unknown fields, so `id`, `org`, `version`, `createdAt`,
`updatedAt` (and a webhook endpoint's `secret`, `url` after creation, `id`) are 422 and change
nothing; `status` changes only through the state machine; `version` in a PATCH is only the
expected version (a stand-in for If-Match), never assigned."""

from typing import Any

import httpx
import pytest

from tests.api.test_http import assert_problem

# Campaign commands are answered by the campaign agent.
pytestmark = pytest.mark.usefixtures("campaign_agent")

SERVER_OWNED: list[dict[str, Any]] = [
    {"id": "cmp_hijack"},
    {"org": "globex"},
    {"orgId": "globex"},
    {"createdAt": "2020-01-01T00:00:00Z"},
    {"updatedAt": "2020-01-01T00:00:00Z"},
    {"created_at": "2020-01-01T00:00:00Z"},
    {"deleted": True},
    {"name": "ok", "org": "globex"},
]


async def _created(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post("/campaigns", json={"name": "Original", "budget": 100})
    assert response.status_code == 201, response.text
    campaign: dict[str, Any] = response.json()
    return campaign


async def test_patch_refuses_server_owned_fields_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    campaign = await _created(client)
    url = f"/campaigns/{campaign['id']}"
    for body in SERVER_OWNED:
        response = await client.patch(url, json=body, headers={"If-Match": '"1"'})
        problem = assert_problem(response, 422)
        assert problem["errors"], body
    assert (await client.get(url)).json() == campaign


async def test_status_changes_only_through_allowed_transitions(client: httpx.AsyncClient) -> None:
    campaign = await _created(client)
    url = f"/campaigns/{campaign['id']}"
    for status in ("live", "completed", "paused"):
        response = await client.patch(url, json={"status": status}, headers={"If-Match": '"1"'})
        assert_problem(response, 409)
    assert (await client.get(url)).json() == campaign


async def test_version_is_the_expected_version_never_assigned(client: httpx.AsyncClient) -> None:
    campaign = await _created(client)
    url = f"/campaigns/{campaign['id']}"
    # Claiming another version than the ETag sent: refused.
    assert_problem(await client.patch(url, json={"version": 99}, headers={"If-Match": '"1"'}), 422)
    # Claiming a version that is not current: 412, nothing changes.
    assert_problem(await client.patch(url, json={"version": 7, "name": "x"}), 412)
    assert (await client.get(url)).json() == campaign
    # The current version as the precondition: the change is applied and the server counts on.
    changed = await client.patch(url, json={"version": 1, "name": "Renamed"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["version"] == 2
    assert changed.json()["org"] == campaign["org"]
    assert changed.json()["createdAt"] == campaign["createdAt"]


async def test_create_refuses_server_owned_fields(client: httpx.AsyncClient) -> None:
    for extra in (
        {"org": "globex"},
        {"status": "live"},
        {"version": 7},
        {"createdAt": "2020-01-01T00:00:00Z"},
        {"updatedAt": "2020-01-01T00:00:00Z"},
    ):
        assert_problem(await client.post("/campaigns", json={"name": "x", **extra}), 422)
    assert (await client.get("/campaigns")).json()["items"] == []


async def test_webhook_endpoint_bodies_refuse_server_owned_fields(
    client: httpx.AsyncClient,
) -> None:
    url = "https://hooks.example.com/fk"
    for extra in ({"secret": "whsec_chosen"}, {"id": "ep_mine"}, {"org": "globex"}):
        response = await client.post("/webhooks/endpoints", json={"url": url, **extra})
        assert_problem(response, 422)
    created = await client.post("/webhooks/endpoints", json={"url": url})
    assert created.status_code == 201
    endpoint = created.json()
    # The URL is checked against the SSRF guard at creation; it cannot be swapped afterwards.
    for extra in (
        {"url": "http://169.254.169.254/latest/meta-data"},
        {"secret": "whsec_chosen"},
        {"disabledReason": None, "id": "ep_x"},
    ):
        response = await client.patch(f"/webhooks/endpoints/{endpoint['id']}", json=extra)
        assert_problem(response, 422)
    listed = (await client.get("/webhooks/endpoints")).json()["items"]
    assert [e["url"] for e in listed] == [url]
    assert "secret" not in listed[0], "the secret is shown only when created or rotated"

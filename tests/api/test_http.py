"""The HTTP surface: authentication, problem details, validation, readiness, publishing."""

import time
from collections.abc import Awaitable, Callable

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI

from api.main import create_app
from core.auth import issue_token
from core.clickhouse import Store
from core.settings import Settings
from streams.agents.engagement import EngagementConsumer
from tests.conftest import free_port, wait_until
from tests.factories import make_event

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    return body


async def test_health_needs_no_token_and_does_no_io(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"Authorization": ""})
    assert response.json() == {"status": "ok"}


async def test_ready_when_broker_and_store_answer(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert {c["name"]: c["ok"] for c in response.json()["checks"]} == {
        "broker": True,
        "store": True,
    }


async def test_not_ready_when_the_broker_is_down(settings: Settings, store: Store) -> None:
    app = create_app(settings, store=store)
    async with app.router.lifespan_context(app):
        # The broker moves away after start-up: readiness must notice.
        app.state.services.settings = settings.model_copy(
            update={"kafka_bootstrap": f"127.0.0.1:{free_port()}"}
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api"
        ) as c:
            response = await c.get("/readyz")
    assert response.status_code == 503
    checks = {c["name"]: c["ok"] for c in response.json()["checks"]}
    assert checks == {"broker": False, "store": True}


async def _readiness_after(
    app: FastAPI, change: Callable[[], Awaitable[None]]
) -> tuple[int, dict[str, bool]]:
    """Readiness once before and once after `change`, within one start-up."""
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://api") as c,
    ):
        assert (await c.get("/readyz")).status_code == 200
        await change()
        response = await c.get("/readyz")
    return response.status_code, {c["name"]: c["ok"] for c in response.json()["checks"]}


async def test_not_ready_when_the_store_loses_its_tables(settings: Settings, store: Store) -> None:
    # A database dropped or never migrated after start-up: "SELECT 1" would still answer.
    async def move_table() -> None:
        await store.command("RENAME TABLE engagement_events TO engagement_events_moved")

    try:
        status, checks = await _readiness_after(create_app(settings, store=store), move_table)
    finally:
        await store.command("RENAME TABLE engagement_events_moved TO engagement_events")
    assert status == 503
    assert checks == {"broker": True, "store": False}


async def test_not_ready_when_the_store_is_closed(settings: Settings) -> None:
    own = Store.open(settings.store_url, settings.clickhouse_database)

    async def close() -> None:
        own.close()

    status, checks = await _readiness_after(create_app(settings, store=own), close)
    assert status == 503
    assert checks == {"broker": True, "store": False}


async def test_prometheus_metrics_are_exposed(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    text = (await client.get("/metrics")).text
    assert 'fk_api_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert "fk_pipeline_dead_letters_total" in text


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer not-a-jwt", "Basic dXNlcjpwYXNz"])
async def test_missing_or_malformed_token_is_401(
    client: httpx.AsyncClient, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {"Authorization": ""}
    response = await client.get("/campaigns/cmp_a/metrics", headers=headers)
    assert_problem(response, 401)


async def test_expired_and_foreign_tokens_are_401(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    expired = issue_token(settings.jwt_secret, org="acme", ttl_seconds=-10)
    forged = issue_token("another-secret-of-at-least-32-bytes!", org="acme")
    for token in (expired, forged):
        response = await client.get(
            "/campaigns/cmp_a/metrics", headers={"Authorization": f"Bearer {token}"}
        )
        assert_problem(response, 401)


async def test_unknown_campaign_and_creator_are_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/campaigns/nobody/metrics"), 404)
    assert_problem(await client.get("/influencers/nobody/metrics"), 404)
    assert_problem(await client.get("/no-such-route"), 404)


async def test_bad_path_parameter_is_422(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get(f"/campaigns/{'x' * 201}/metrics"), 422)
    assert body["errors"]


async def test_openapi_documents_every_error_as_problem_details(
    client: httpx.AsyncClient,
) -> None:
    """Found by the schema fuzzer: errors were documented as application/json (422 even as
    FastAPI's own shape) while every error is served as application/problem+json, and the 401 of
    authenticated operations was not documented at all."""
    schema = (await client.get("/openapi.json")).json()
    problem = {"$ref": "#/components/schemas/Problem"}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if operation.get("security"):
                assert "401" in responses, (method, path)
            for code, response in responses.items():
                # A 503 of /readyz is its Readiness body, naming the check that failed.
                if int(code) >= 400 and (path, code) != ("/readyz", "503"):
                    assert list(response.get("content", {})) == [PROBLEM], (method, path, code)
                    content = response["content"][PROBLEM]
                    assert content["schema"] == problem, (method, path, code)
                    assert content["example"]["status"] == int(code), (method, path, code)
    assert "HTTPValidationError" not in schema["components"]["schemas"]


async def test_post_events_publishes_valid_events(
    client: httpx.AsyncClient, settings: Settings, pipeline: EngagementConsumer
) -> None:
    events = [make_event(campaignId="cmp_post", eventId=f"p{i}", views=5) for i in range(3)]
    response = await client.post("/events", json=events)
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 3, "eventIds": ["p0", "p1", "p2"]}
    single = await client.post("/events", json=make_event(campaignId="cmp_post", eventId="p3"))
    assert single.status_code == 202

    async def counted() -> bool:
        r = await client.get("/campaigns/cmp_post/metrics")
        return r.status_code == 200 and r.json()["total"]["events"] == 4

    await wait_until(counted)


@pytest.mark.parametrize(
    ("body", "location"),
    [
        (make_event(views=-1), "views"),
        (make_event(platform="myspace"), "platform"),
        (make_event(likes="7"), "likes"),
        ([make_event(), make_event(influencerId=None)], "influencerId"),
        (make_event(timestamp=int(time.time() * 1000) + 3_600_000), "timestamp"),
        ([], "body"),
        ("just a string", "body"),
    ],
)
async def test_post_events_refuses_invalid_events_and_publishes_none(
    client: httpx.AsyncClient, settings: Settings, body: object, location: str
) -> None:
    problem = assert_problem(await client.post("/events", json=body), 422)
    assert any(location in str(e["location"]) for e in problem["errors"])  # type: ignore[attr-defined]
    consumer = AIOKafkaConsumer(
        settings.engagement_topic,
        bootstrap_servers=settings.bootstrap,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=300)
    finally:
        await consumer.stop()
    assert sum(len(r) for r in batch.values()) == 0, "nothing of a refused request is published"


async def test_post_events_refuses_bodies_over_one_mebibyte(client: httpx.AsyncClient) -> None:
    body = b"[" + b",".join([httpx.Response(200, json=make_event()).content] * 9000) + b"]"
    assert len(body) > 1024 * 1024
    response = await client.post(
        "/events", content=body, headers={"content-type": "application/json"}
    )
    assert_problem(response, 413)


async def test_post_events_refuses_non_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/events", content=b"{oops", headers={"content-type": "application/json"}
    )
    assert_problem(response, 422)


# -- found by the schema fuzzer (tests/fuzz) --------------------------------------------------


async def test_a_body_that_cannot_be_parsed_is_a_documented_400(client: httpx.AsyncClient) -> None:
    body = assert_problem(
        await client.post(
            "/campaigns", content=b"\xff\xfe{", headers={"content-type": "application/json"}
        ),
        400,
    )
    assert body["title"] == "Bad Request"
    operation = (await client.get("/openapi.json")).json()["paths"]["/campaigns"]["post"]
    assert "400" in operation["responses"]


@pytest.mark.parametrize("path", ["/campaigns", "/webhooks/endpoints", "/etl/uploads"])
async def test_an_unparsable_body_without_a_token_is_401(
    client: httpx.AsyncClient, path: str
) -> None:
    """Authentication comes first, even though FastAPI reads the body before the dependencies."""
    for content_type in ("application/json", "multipart/form-data; boundary=x"):
        for body in (b"\xff\xfe{", b"{oops", b"\x00"):
            response = await client.post(
                path, content=body, headers={"content-type": content_type, "Authorization": ""}
            )
            assert_problem(response, 401)


async def test_405_allows_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    response = await client.request("OPTIONS", "/campaigns")
    assert_problem(response, 405)
    assert response.headers["allow"] == "GET, POST"
    response = await client.request("DELETE", "/campaigns/cmp_a")
    assert response.headers["allow"] == "GET, PATCH"

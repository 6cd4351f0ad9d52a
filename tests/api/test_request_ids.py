"""Request ids: echoed to the caller, bound to the request's log lines, carried to the worker."""

import time

import httpx
import orjson
import pytest
import structlog
from aiokafka import AIOKafkaConsumer

from core.settings import Settings
from schemas.events import REQUEST_ID_KAFKA_HEADER
from tests.factories import make_event


async def test_a_request_id_is_generated_and_echoed(client: httpx.AsyncClient) -> None:
    first = (await client.get("/healthz")).headers["x-request-id"]
    second = (await client.get("/healthz")).headers["x-request-id"]
    assert len(first) == 32
    assert first != second


@pytest.mark.parametrize(("sent", "kept"), [("req-42.a:b", True), ("bad id with spaces", False)])
async def test_a_sane_caller_request_id_is_kept(
    client: httpx.AsyncClient, sent: str, kept: bool
) -> None:
    echoed = (await client.get("/healthz", headers={"X-Request-ID": sent})).headers["x-request-id"]
    assert (echoed == sent) is kept


async def test_published_events_carry_the_request_id_and_the_log_line_names_both(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        response = await client.post(
            "/events",
            json=[make_event(eventId="rid-1", timestamp=int(time.time() * 1000) - 1000)],
            headers={"X-Request-ID": "trace-7"},
        )
    assert response.status_code == 202
    assert response.headers["x-request-id"] == "trace-7"
    published = [e for e in logs if e["event"] == "events.published"]
    assert published
    assert published[0]["event_ids"] == ["rid-1"]
    assert published[0]["request_id"] == "trace-7"
    consumer = AIOKafkaConsumer(
        settings.engagement_topic,
        bootstrap_servers=settings.bootstrap,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        records = [r for rs in (await consumer.getmany(timeout_ms=5000)).values() for r in rs]
    finally:
        await consumer.stop()
    assert [orjson.loads(r.value)["eventId"] for r in records] == ["rid-1"]
    assert dict(records[0].headers)[REQUEST_ID_KAFKA_HEADER] == b"trace-7"

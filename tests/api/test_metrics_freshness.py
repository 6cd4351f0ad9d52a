"""With the worker in the same process, metrics answers are reloaded after new events were
written, not on every TTL; without it (a standalone API) the TTL rules."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from api.main import create_app
from core.clickhouse import Store
from core.settings import Settings
from etl.loader import Outputs, load_file
from streams.agents.engagement import EngagementConsumer
from streams.transforms import EVENT_COLUMNS, EventBatch, decode_event
from tests.conftest import wait_until
from tests.factories import encode, make_event

# Campaign commands are answered by the campaign agent.
pytestmark = pytest.mark.usefixtures("campaign_agent")


def insert_behind_the_sinks_back(store: Store, **overrides: object) -> None:
    """A write the in-process counter does not see (as another process's would be)."""
    event = decode_event(encode(make_event(**overrides)), now_ms=2**62, max_future_ms=0)
    batch = EventBatch(source="test")
    batch.add(event, partition=0, offset=0, org="acme")  # type: ignore[arg-type]
    store.insert_sync("engagement_events", batch.columns, EVENT_COLUMNS)


@pytest.fixture
async def embedded_app(settings: Settings, store: Store, topics: None) -> AsyncIterator[FastAPI]:
    fast = settings.model_copy(
        update={
            "metrics_cache_ttl_seconds": 0.0,
            "metrics_cache_max_stale_seconds": 60.0,
            "top_performers_cache_ttl_seconds": 0.0,
            "top_performers_cache_max_stale_seconds": 60.0,
            # Not the tests' organisation: its rankings are not scored at start-up here, so the
            # first request of a test loads them.
            "default_org": "demo",
        }
    )
    app = create_app(fast, store=store, writers_in_process=True)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def embedded_client(embedded_app: FastAPI, token: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=embedded_app),
        base_url="http://api",
        headers={"Authorization": f"Bearer {token}"},
    ) as c:
        yield c


async def refreshes_done(app: FastAPI) -> None:
    """Wait for the background refreshes the last requests started (stale-while-revalidate)."""
    services = app.state.services
    for cache in (services.metrics_cache, services.top_cache, services.created):
        await asyncio.gather(*list(cache._loading.values()))


async def views(client: httpx.AsyncClient) -> int:
    response = await client.get("/campaigns/cmp_fresh/metrics")
    assert response.status_code == 200, response.text
    return int(response.json()["total"]["views"])


async def test_answers_are_kept_until_the_in_process_sink_writes(
    embedded_app: FastAPI,
    embedded_client: httpx.AsyncClient,
    store: Store,
    pipeline: EngagementConsumer,
    producer: AIOKafkaProducer,
    settings: Settings,
) -> None:
    insert_behind_the_sinks_back(store, eventId="f0", campaignId="cmp_fresh", views=10)
    assert await views(embedded_client) == 10
    insert_behind_the_sinks_back(store, eventId="f1", campaignId="cmp_fresh", views=5)
    for _ in range(5):  # past the (zero) TTL every time, yet nothing was reloaded
        assert await views(embedded_client) == 10
        await refreshes_done(embedded_app)
    await producer.send_and_wait(
        settings.engagement_topic,
        encode(make_event(eventId="f2", campaignId="cmp_fresh", views=1)),
        key=b"inf_a",
        headers=[("fk-org", b"acme")],
    )

    async def reloaded() -> bool:
        return await views(embedded_client) == 16

    await wait_until(reloaded)


async def test_another_organisation_creating_a_campaign_id_changes_nothing_in_yours(
    embedded_app: FastAPI, embedded_client: httpx.AsyncClient, store: Store, settings: Settings
) -> None:
    insert_behind_the_sinks_back(store, eventId="o0", campaignId="cmp_shared_id", views=3)
    assert (await embedded_client.get("/campaigns/cmp_shared_id/metrics")).status_code == 200
    now = datetime.now(UTC)
    store.insert_sync(
        "campaigns",
        [["cmp_shared_id"], ["globex"], ["Theirs"], [""], ["draft"], [1], ["{}"], [now], [now]],
        ["id", "org", "name", "brand", "status", "version", "body", "created_at", "updated_at"],
    )
    created = await embedded_client.post("/campaigns", json={"name": "Mine"})
    assert created.status_code == 201
    for _ in range(3):
        response = await embedded_client.get("/campaigns/cmp_shared_id/metrics")
        assert response.status_code == 200
        assert response.json()["total"]["views"] == 3
        await refreshes_done(embedded_app)


def load_csv(store: Store, tmp_path: Path, rows: list[str]) -> None:
    """A batch load in this process, as `POST /etl/uploads` or `fk etl` run it."""
    path = tmp_path / "perf.csv"
    header = "campaignId,influencerId,platform,postId,views,likes,comments,shares"
    path.write_text("\n".join([header, *rows]) + "\n")
    report = load_file(store, path, Outputs.beside(path), org="acme")
    assert report.inserted == len(rows), report


async def test_a_batch_load_in_this_process_refreshes_metrics_answers(
    embedded_client: httpx.AsyncClient, store: Store, tmp_path: Path
) -> None:
    insert_behind_the_sinks_back(store, eventId="b0", campaignId="cmp_fresh", views=10)
    assert await views(embedded_client) == 10
    load_csv(store, tmp_path, ["cmp_fresh,inf_b,tiktok,p1,7,1,0,0"])

    async def reloaded() -> bool:
        return await views(embedded_client) == 17

    await wait_until(reloaded)


async def top_views(client: httpx.AsyncClient) -> dict[str, int]:
    response = await client.get("/top-performers", params={"sort": "views"})
    assert response.status_code == 200, response.text
    return {c["influencerId"]: c["views"] for c in response.json()["items"]}


async def test_top_performers_are_kept_until_this_process_writes(
    embedded_app: FastAPI,
    embedded_client: httpx.AsyncClient,
    store: Store,
    pipeline: EngagementConsumer,
    producer: AIOKafkaProducer,
    settings: Settings,
    tmp_path: Path,
) -> None:
    insert_behind_the_sinks_back(store, eventId="t0", influencerId="inf_t", views=10)
    assert await top_views(embedded_client) == {"inf_t": 10}
    insert_behind_the_sinks_back(store, eventId="t1", influencerId="inf_t", views=5)
    for _ in range(5):  # past the (zero) TTL, yet not reloaded: no store query per refresh
        assert await top_views(embedded_client) == {"inf_t": 10}
        await refreshes_done(embedded_app)
    load_csv(store, tmp_path, ["cmp_t,inf_u,youtube,p1,100,1,0,0"])

    async def after_load() -> bool:
        return await top_views(embedded_client) == {"inf_t": 15, "inf_u": 100}

    await wait_until(after_load)
    await producer.send_and_wait(
        settings.engagement_topic,
        encode(make_event(eventId="t2", influencerId="inf_t", views=1)),
        key=b"inf_t",
        headers=[("fk-org", b"acme")],
    )

    async def after_stream() -> bool:
        return (await top_views(embedded_client)).get("inf_t") == 16

    await wait_until(after_stream)

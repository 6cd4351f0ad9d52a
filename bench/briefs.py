"""Brief generation: the uncached call (offline provider: every tool over the demo data, the
verifier, storage) beside the cached repeat of the same request, through the HTTP API."""

import asyncio
import time

import httpx
import orjson

from bench.common import bench_settings, environment, median, percentile
from core.auth import issue_token
from core.clickhouse import Store
from core.repositories.engagement import insert_event_columns_sync
from schemas.events import EngagementEvent
from streams.demo import demo_events
from streams.transforms import EVENT_COLUMNS, EventBatch

REQUEST = {
    "brand": "Glowlab",
    "product": "Vitamin C serum",
    "goal": "Launch the serum",
    "platform": "instagram",
}


async def run(events: int = 20_000, repeats: int = 50, new_requests: int = 5) -> None:
    from api.main import create_app

    with environment() as (bootstrap, tmp):
        settings = bench_settings(bootstrap, tmp)
        store = Store.open(settings.store_url, settings.clickhouse_database)
        batch = EventBatch()
        for i, message in enumerate(demo_events(events)):
            event = EngagementEvent.model_validate(orjson.loads(message.value))
            batch.add(event, partition=0, offset=i, org="bench")
        insert_event_columns_sync(store, batch.columns, EVENT_COLUMNS)
        app = create_app(settings, store=store)
        token = issue_token(settings.jwt_secret, org="bench")
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://api",
                headers={"Authorization": f"Bearer {token}"},
            ) as client,
        ):
            uncached, cached = [], []
            for i in range(new_requests):
                body = {**REQUEST, "goal": f"Launch the serum, wave {chr(ord('a') + i)}"}
                started = time.perf_counter()
                response = await client.post("/generate-brief", json=body)
                uncached.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 201, response.text
            for _ in range(repeats):
                started = time.perf_counter()
                response = await client.post(
                    "/generate-brief", json=REQUEST | {"goal": "Launch the serum, wave a"}
                )
                cached.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text
        store.close()
    print(f"## briefs ({events} demo events, offline provider, HTTP via ASGI)")
    print(
        f"uncached  n={len(uncached)}   median {median(uncached):7.1f} ms  "
        f"max {max(uncached):7.1f} ms"
    )
    print(
        f"cached    n={repeats}  median {median(cached):7.1f} ms  "
        f"p95 {percentile(cached, 95):7.1f} ms  max {max(cached):7.1f} ms  (target < 100 ms)"
    )


if __name__ == "__main__":
    asyncio.run(run())

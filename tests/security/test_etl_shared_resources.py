"""CSV uploads share the platform with every organisation's stream and reads: they load on a
queue of their own (one thread, a bounded number waiting), so a burst of uploads neither holds
the threads the engagement sink needs nor grows without bound."""

import asyncio
import io
import time

import httpx

from core.clickhouse import Store
from core.settings import Settings
from etl.executor import UPLOADS
from etl.generate import write_sample
from streams.agents.engagement import EngagementConsumer
from tests.api.test_http import assert_problem
from tests.conftest import wait_until
from tests.factories import make_event
from tests.security.conftest import ORG_A, ORG_B, api_client, bearer


def _csv(rows: int, seed: int) -> bytes:
    out = io.StringIO()
    write_sample(out, rows, seed=seed)
    return out.getvalue().encode()


async def _upload(
    client: httpx.AsyncClient, headers: dict[str, str], body: bytes
) -> httpx.Response:
    files = {"file": ("perf.csv", body, "text/csv")}
    return await client.post("/etl/uploads", files=files, headers=headers)


async def _stored(store: Store, event_id: str) -> bool:
    rows = await store.query_rows(
        "SELECT count() FROM engagement_events WHERE event_id = {id:String}", {"id": event_id}
    )
    return bool(rows[0][0])


async def _event_latency(client: httpx.AsyncClient, store: Store, headers: dict[str, str]) -> float:
    """Seconds from `POST /events` until the event is in the store."""
    event = make_event()
    started = time.monotonic()
    assert (await client.post("/events", json=event, headers=headers)).status_code == 202
    await wait_until(lambda: _stored(store, event["eventId"]), interval=0.01)
    return time.monotonic() - started


async def test_concurrent_uploads_do_not_hold_up_the_engagement_stream(
    settings: Settings, store: Store, topics: None, pipeline: EngagementConsumer
) -> None:
    """Sixteen uploads at once from three organisations (more than the default executor's threads
    on a small machine) keep each event's way into the store within 1 s or 5x its (median) time
    without uploads; before the uploads had their own queue the events waited for every load."""
    settings = settings.model_copy(update={"etl_max_waiting_uploads": 20})
    a = bearer(settings, ORG_A)
    uploaders = [bearer(settings, org) for org in (ORG_A, ORG_B, "initech")]
    sample = _csv(4_000, seed=1)
    files = [sample.replace(b"\ncmp_", f"\nc{n:02}_".encode()) for n in range(16)]
    async with api_client(settings, store) as client:
        quiet = sorted([await _event_latency(client, store, a) for _ in range(3)])[1]
        uploads = [
            asyncio.create_task(_upload(client, uploaders[n % 3], body))
            for n, body in enumerate(files)
        ]
        await wait_until(lambda: UPLOADS.admitted >= 2, interval=0.01)
        busy = []
        while UPLOADS.admitted >= 2:  # one loading, others waiting
            busy.append(await _event_latency(client, store, a))
        answers = await asyncio.gather(*uploads)
    assert [r.status_code for r in answers] == [200] * len(files), answers[0].text
    assert len(busy) >= 3
    assert max(busy) <= max(1.0, 5 * quiet), (quiet, busy)


async def test_uploads_past_the_queue_are_refused_with_retry_after(
    settings: Settings, store: Store, topics: None
) -> None:
    """With one place to wait: one upload loads, one waits, the rest get 503 problem details
    with Retry-After; an organisation holding its half of the places gets 429 while another
    organisation's upload still finds room."""
    settings = settings.model_copy(update={"etl_max_waiting_uploads": 3})
    a, b = bearer(settings, ORG_A), bearer(settings, ORG_B)
    body = _csv(30_000, seed=1)
    async with api_client(settings, store) as client:
        mine = [asyncio.create_task(_upload(client, a, body)) for _ in range(2)]
        await wait_until(lambda: UPLOADS.admitted == 2, interval=0.01)
        over_share = await _upload(client, a, body)
        assert "share" in str(assert_problem(over_share, 429)["detail"])
        theirs = [asyncio.create_task(_upload(client, b, body)) for _ in range(2)]
        await wait_until(lambda: UPLOADS.admitted == 4, interval=0.01)
        full = await _upload(client, b, body)
        problem = assert_problem(full, 503)
        assert "waiting" in str(problem["detail"])
        for refused in (over_share, full):
            assert int(refused.headers["Retry-After"]) >= 1
        answers = await asyncio.gather(*mine, *theirs)
        assert [r.status_code for r in answers] == [200] * 4
        assert UPLOADS.admitted == 0
        # Room again once the queue drained.
        assert (await _upload(client, b, body)).status_code == 200

"""/readyz answers from a check at most one second old. Today there is no cache at all: every
answer comes from a check of the broker and the store made for that request."""

import time
from collections.abc import AsyncIterator

import httpx
import pytest

from api.main import create_app
from api.routes import health
from core.clickhouse import Store
from core.settings import Settings

MAX_CHECK_AGE_SECONDS = 1.0


@pytest.fixture
async def probe(settings: Settings, store: Store, topics: None) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, store=store)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c,
    ):
        yield c


async def test_every_answer_runs_its_own_checks(
    probe: httpx.AsyncClient, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings = broker_checks = 0
    ping, check_broker = store.ping, health._check_broker

    async def counted_ping() -> None:
        nonlocal pings
        pings += 1
        await ping()

    async def counted_broker_check(bootstrap: str) -> None:
        nonlocal broker_checks
        broker_checks += 1
        await check_broker(bootstrap)

    monkeypatch.setattr(store, "ping", counted_ping)
    monkeypatch.setattr(health, "_check_broker", counted_broker_check)
    for n in range(1, 6):
        assert (await probe.get("/readyz")).status_code == 200
        assert (pings, broker_checks) == (n, n)


async def _ready_within(
    probe: httpx.AsyncClient, wanted: int, changed_at: float
) -> tuple[int, float]:
    """Poll /readyz until it answers `wanted`, at most the check age plus one check's time."""
    while True:
        started = time.monotonic()
        status = (await probe.get("/readyz")).status_code
        elapsed = time.monotonic() - changed_at
        if status == wanted or elapsed > MAX_CHECK_AGE_SECONDS + (time.monotonic() - started):
            return status, elapsed


async def test_readiness_follows_the_store_both_ways_within_a_second(
    probe: httpx.AsyncClient, store: Store
) -> None:
    assert (await probe.get("/readyz")).status_code == 200
    await store.command("RENAME TABLE engagement_events TO engagement_events_moved")
    try:
        status, elapsed = await _ready_within(probe, 503, time.monotonic())
        assert status == 503, f"still ready {elapsed:.2f} s after the store lost its table"
    finally:
        await store.command("RENAME TABLE engagement_events_moved TO engagement_events")
    status, elapsed = await _ready_within(probe, 200, time.monotonic())
    assert status == 200, f"still unready {elapsed:.2f} s after the store recovered"

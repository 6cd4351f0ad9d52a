"""Brief-generator fixtures: engagement rows written straight into the real chDB store."""

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest

from api.main import create_app
from briefs.providers import OpenAIProvider
from briefs.service import BriefService
from core.clickhouse import Store
from core.settings import Settings
from schemas.events import EngagementEvent
from streams.demo import demo_events
from streams.transforms import EVENT_COLUMNS, EventBatch
from tests.briefs.fake_llm import FakeLLM
from tests.factories import make_event


def insert_events(store: Store, events: list[dict[str, Any]], org: str = "acme") -> None:
    batch = EventBatch(source="test")
    for i, raw in enumerate(events):
        batch.add(EngagementEvent.model_validate(raw), partition=0, offset=i, org=org)
    store.insert_sync("engagement_events", batch.columns, EVENT_COLUMNS)


def hours_ago(hours: float) -> int:
    return int(time.time() * 1000 - hours * 3_600_000)


def event(**overrides: Any) -> dict[str, Any]:
    return make_event(**overrides)


@pytest.fixture
def demo_store(store: Store) -> Store:
    """The `fk up --demo` dataset (2,000 events over the last 48 hours)."""
    insert_events(store, [orjson.loads(m.value) for m in demo_events(2000)])
    return store


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    server = FakeLLM()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def llm_settings(settings: Settings, fake_llm: FakeLLM) -> Settings:
    return settings.model_copy(
        update={
            "llm_base_url": fake_llm.base_url,
            "llm_api_key": "test-key",
            "llm_model": "fake-model",
            "llm_timeout_seconds": 0.5,
            "llm_max_retries": 2,
            "llm_backoff_seconds": 0.01,
            "llm_backoff_max_seconds": 2.0,
            "brief_embedder": "lexical",
        }
    )


@pytest.fixture
async def llm_service(llm_settings: Settings, demo_store: Store) -> AsyncIterator[BriefService]:
    service = BriefService(llm_settings, demo_store, OpenAIProvider(llm_settings), None)
    yield service
    await service.aclose()


@pytest.fixture
async def llm_client(
    llm_settings: Settings, demo_store: Store, topics: None, token: str
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(llm_settings, store=demo_store)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://api",
            headers={"Authorization": f"Bearer {token}"},
        ) as c,
    ):
        yield c

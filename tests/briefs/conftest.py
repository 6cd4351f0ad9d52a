"""Brief-generator fixtures: engagement rows written straight into the real chDB store."""

import time
from typing import Any

import pytest

from core.clickhouse import Store
from schemas.events import EngagementEvent
from streams.demo import demo_events
from streams.transforms import EVENT_COLUMNS, EventBatch
from tests.factories import make_event


def insert_events(store: Store, events: list[dict[str, Any]]) -> None:
    batch = EventBatch()
    for i, raw in enumerate(events):
        batch.add(EngagementEvent.model_validate(raw), source="test", partition=0, offset=i)
    store.insert_sync("engagement_events", batch.columns, EVENT_COLUMNS)


def hours_ago(hours: float) -> int:
    return int(time.time() * 1000 - hours * 3_600_000)


def event(**overrides: Any) -> dict[str, Any]:
    return make_event(**overrides)


@pytest.fixture
def demo_store(store: Store) -> Store:
    """The `fk up --demo` dataset (2,000 events over the last 48 hours)."""
    import orjson

    insert_events(store, [orjson.loads(m.value) for m in demo_events(2000)])
    return store

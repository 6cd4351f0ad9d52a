"""/readyz of the embedded platform: the broker's memory above FK_EMBEDDED_BROKER_WARN_MB is a
warning in its body, never unreadiness; an API without an embedded broker of its own has none."""

from typing import Any

import httpx
import pytest

from api.main import create_app
from core.clickhouse import Store
from core.kafka import MIB, EmbeddedBroker, MemoryAlarm
from core.settings import Settings


async def readiness(settings: Settings, store: Store) -> tuple[int, dict[str, Any]]:
    app = create_app(settings, store=store)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c,
    ):
        response = await c.get("/readyz")
    body: dict[str, Any] = response.json()
    return response.status_code, body


def embedded(settings: Settings, broker: EmbeddedBroker) -> Settings:
    """Settings of `fk up` whose embedded broker is the session's (FK_KAFKA_BOOTSTRAP unset)."""
    return settings.model_copy(update={"kafka_bootstrap": None, "kafka_embedded_port": broker.port})


async def test_memory_above_the_threshold_is_a_warning_not_unreadiness(
    settings: Settings,
    store: Store,
    topics: None,
    broker: EmbeddedBroker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(broker, "memory_alarm", MemoryAlarm(1 * MIB))
    status, body = await readiness(embedded(settings, broker), store)
    assert status == 200
    assert body["status"] == "ready"
    assert {c["name"]: c["ok"] for c in body["checks"]} == {"broker": True, "store": True}
    [warning] = body["warnings"]
    assert warning["name"] == "broker"
    assert "FK_EMBEDDED_BROKER_WARN_MB=1:" in warning["message"]
    assert "Apache Kafka" in warning["message"]


@pytest.mark.parametrize("warn_mb", [0, 1024 * 1024], ids=["disabled", "far-above"])
async def test_no_warning_without_a_threshold_or_below_it(
    settings: Settings,
    store: Store,
    topics: None,
    broker: EmbeddedBroker,
    monkeypatch: pytest.MonkeyPatch,
    warn_mb: int,
) -> None:
    monkeypatch.setattr(broker, "memory_alarm", MemoryAlarm(warn_mb * MIB))
    status, body = await readiness(embedded(settings, broker), store)
    assert status == 200
    assert body["warnings"] == []


async def test_an_api_with_a_configured_broker_has_no_memory_warning(
    settings: Settings,
    store: Store,
    topics: None,
    broker: EmbeddedBroker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The same broker named by FK_KAFKA_BOOTSTRAP (`fk api`, compose) is no embedded broker of
    # this API's, even on the embedded port.
    monkeypatch.setattr(broker, "memory_alarm", MemoryAlarm(1 * MIB))
    assert settings.kafka_bootstrap == broker.bootstrap
    configured = settings.model_copy(update={"kafka_embedded_port": broker.port})
    status, body = await readiness(configured, store)
    assert status == 200
    assert body["warnings"] == []

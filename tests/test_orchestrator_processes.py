"""The orchestrator as real processes: kill -9 while deliveries are being retried and a date
transition is pending, then a full stop/start of the embedded platform (whose broker forgets its
topics). Afterwards every event reaches the receiver, once per webhook-id as it sees them."""

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.kafka import EmbeddedBroker
from tests.conftest import free_port, wait_until
from tests.processes import PlatformProcess
from tests.receivers import Receiver

pytestmark = pytest.mark.slow

WEBHOOK_ENV = {
    "FK_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
    "FK_WEBHOOK_MAX_ATTEMPTS": "50",
    "FK_WEBHOOK_BACKOFF_BASE_SECONDS": "0.2",
    "FK_WEBHOOK_BACKOFF_MAX_SECONDS": "1",
    "FK_WEBHOOK_TIMEOUT_SECONDS": "2",
    "FK_WEBHOOK_SWEEP_SECONDS": "0.5",
    "FK_SCHEDULER_INTERVAL_SECONDS": "0.2",
}


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Blocking client calls off the loop, so the receiver in this loop keeps answering."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def start_work(platform: PlatformProcess, receiver: Receiver) -> int:
    """Register the receiver (not listening yet), create campaigns and schedule one to start
    shortly after the restart; return how many events must be delivered."""
    response = await call(platform.http.post, "/webhooks/endpoints", json={"url": receiver.url})
    assert response.status_code == 201, response.text
    receiver.secrets.append(response.json()["secret"])
    for i in range(8):
        response = await call(platform.http.post, "/campaigns", json={"name": f"c{i}"})
        assert response.status_code == 201, response.text
    start = datetime.now(UTC) + timedelta(seconds=6)
    response = await call(
        platform.http.post,
        "/campaigns",
        json={"id": "cmp_timed", "name": "timed", "startDate": start.isoformat()},
    )
    assert response.status_code == 201
    response = await call(
        platform.http.patch,
        "/campaigns/cmp_timed",
        json={"status": "scheduled"},
        headers={"If-Match": '"1"'},
    )
    assert response.status_code == 200, response.text

    def retrying() -> bool:
        items = platform.http.get("/logs", params={"campaignId": "cmp_timed"}).json()["items"]
        return any(e["status"] == "retrying" for e in items)

    await wait_until(lambda: call(retrying), timeout=30)
    return 9 + 1 + 1  # 9 created, draft → scheduled, scheduled → live (after the restart)


async def check_all_delivered(platform: PlatformProcess, receiver: Receiver, events: int) -> None:
    await wait_until(lambda: len(receiver.ids()) == events, timeout=60, interval=0.2)
    assert receiver.bad == []
    by_event = Counter(
        (r.body["data"]["campaignId"], r.body["data"]["version"]) for r in receiver.received
    )
    ids_per_event: dict[tuple[str, int], set[str]] = {}
    for r in receiver.received:
        key = (r.body["data"]["campaignId"], r.body["data"]["version"])
        ids_per_event.setdefault(key, set()).add(r.webhook_id)
    assert len(by_event) == events
    assert all(len(ids) == 1 for ids in ids_per_event.values())  # a resend keeps its webhook-id
    timed = (await call(platform.http.get, "/campaigns/cmp_timed")).json()
    assert (timed["status"], timed["version"]) == ("live", 3)

    def statuses() -> set[str]:
        params = {"campaignId": "cmp_timed", "limit": 1000}
        return {e["status"] for e in platform.http.get("/logs", params=params).json()["items"]}

    # The log records an attempt after its answer arrived: the receiver can be ahead of it.
    await wait_until(lambda: call(lambda: statuses() >= {"retrying", "delivered"}), timeout=10)


async def test_kill_9_during_delivery_then_restart_delivers_everything(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    env = {
        **WEBHOOK_ENV,
        "FK_KAFKA_BOOTSTRAP": broker.bootstrap,
        "FK_TOPIC_PREFIX": f"o{tag}-",
        "FK_CONSUMER_GROUP": f"g{tag}",
        "FK_FAUST_APP_ID": f"fk{tag}",
    }
    receiver = Receiver(port=free_port())
    with PlatformProcess(tmp_path / "k", **env) as platform:
        await call(platform.start)
        events = await start_work(platform, receiver)
        platform.kill()
        await receiver.start()
        try:
            await call(platform.start)
            await check_all_delivered(platform, receiver, events)
        finally:
            await receiver.stop()


async def test_full_stop_start_of_the_embedded_platform_delivers_everything(
    tmp_path: Path,
) -> None:
    env = {**WEBHOOK_ENV, "FK_KAFKA_EMBEDDED_PORT": str(free_port())}
    receiver = Receiver(port=free_port())
    with PlatformProcess(tmp_path / "e", **env) as platform:
        await call(platform.start)
        events = await start_work(platform, receiver)
        assert await call(platform.interrupt) == 0, platform.log()
        await receiver.start()
        try:
            await call(platform.start)
            # The campaign survived with its version: a stale If-Match is still refused.
            response = await call(
                platform.http.patch,
                "/campaigns/cmp_timed",
                json={"name": "x"},
                headers={"If-Match": '"1"'},
            )
            assert response.status_code == 412
            await check_all_delivered(platform, receiver, events)
        finally:
            await receiver.stop()

"""The worker's Faust app: where it keeps its files, and how it starts."""

import asyncio
import logging
import time
from pathlib import Path

import faust
import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from faust.contrib.asgi import faust_app_running
from faust.types import TP

from core.clickhouse import Store
from core.settings import Settings
from streams.agents.commands import CampaignAgent
from streams.app import create_faust_app
from tests.conftest import make_settings, wait_until


def test_faust_keeps_its_directory_under_the_data_directory(tmp_path: Path) -> None:
    settings = make_settings(data_dir=tmp_path / "data", faust_app_id="fk-test")
    app = create_faust_app(settings, store=None)  # type: ignore[arg-type]
    assert Path(app.conf.datadir).resolve().is_relative_to((tmp_path / "data").resolve())


async def test_the_worker_joins_its_consumer_groups_together(
    settings: Settings, store: Store, topics: None
) -> None:
    """The embedded broker holds a new group's first join for half the session timeout. The
    worker has four groups (Faust's, the engagement consumer's, the campaign projection's and
    the webhook commands'): they join at once, so the worker starts in about one hold, not in
    four one after another. Told by when each group's consumer got its partitions (one after
    another they come a hold or more apart), not by how long the start took, which a busy
    machine stretches."""
    hold = 4.0
    settings = settings.model_copy(update={"kafka_session_timeout_ms": int(2 * hold * 1000)})
    app = create_faust_app(settings, store)
    joined_at: dict[str, float] = {}

    async def watch() -> None:
        while True:
            for name, consumer in _consumers(app).items():
                if name not in joined_at and consumer is not None and consumer.assignment():
                    joined_at[name] = time.monotonic()
            await asyncio.sleep(0.05)

    watching = asyncio.create_task(watch())
    try:
        async with faust_app_running(app):
            await wait_until(lambda: len(joined_at) == 4, timeout=60)
    finally:
        watching.cancel()
    assert set(joined_at) == {"faust", "engagement", "campaigns", "webhook commands"}
    spread = max(joined_at.values()) - min(joined_at.values())
    assert spread < 2 * hold, joined_at


def _consumers(app: faust.App) -> dict[str, AIOKafkaConsumer | None]:
    """Each group's consumer, as far as the app has made them (its services start with it)."""
    services = {type(s).__mro__[1].__name__: s for s in app._children if s is not None}
    engagement, orchestrator = services.get("EngagementConsumer"), services.get("Orchestrator")
    return {
        "faust": app.consumer._thread._consumer if app.consumer._thread else None,
        "engagement": engagement.consumer if engagement else None,
        "campaigns": orchestrator.campaigns.consumer if orchestrator else None,
        "webhook commands": orchestrator.dispatcher.commands if orchestrator else None,
    }


async def test_the_agents_own_changelog_is_not_fetched_once_recovered(
    campaign_agent: CampaignAgent, client: httpx.AsyncClient
) -> None:
    """The table's changelog records are the agent's own writes. Fetched and never taken, they
    held each next fetch of the broker up to 100 ms (aiokafka waits for unconsumed records),
    and with it the next campaign command."""
    app = campaign_agent.app
    consumer = app.consumer._thread._consumer
    changelog = {tp for tp in consumer.assignment() if tp.topic.endswith("-changelog")}
    assert changelog, consumer.assignment()
    for n in range(8):  # over the 4 partitions (ids are random)
        created = await client.post("/campaigns", json={"name": f"c{n}", "brand": "b"})
        assert created.status_code == 201, created.text
    assert changelog <= consumer.paused()
    assert not changelog & set(consumer._fetcher._records)
    # The campaigns are in the table all the same.
    assert len(list(campaign_agent.table)) == 8


async def test_the_paused_changelog_is_no_fault_to_faust_s_fetch_check(
    campaign_agent: CampaignAgent, caplog: pytest.LogCaptureFixture
) -> None:
    """Faust checks that every assigned partition is fetched; past its timeout (five minutes)
    it logged an error for each paused changelog partition every few seconds. The partitions
    still fetched are checked as before."""
    thread = campaign_agent.app.consumer._thread
    consumer = thread._consumer
    changelog = {tp for tp in consumer.assignment() if tp.topic.endswith("-changelog")}
    assert changelog
    assert changelog <= consumer.paused()
    later = time.time() + 3600
    with caplog.at_level(logging.ERROR):
        for tp in changelog:
            thread.verify_event_path(later, TP(tp.topic, tp.partition))
            thread.verify_recovery_event_path(later, TP(tp.topic, tp.partition))
        assert not [r for r in caplog.records if "Aiokafka" in r.getMessage()]
        fetched = next(tp for tp in consumer.assignment() if tp not in consumer.paused())
        thread.verify_recovery_event_path(later, TP(fetched.topic, fetched.partition))
    # Not vacuous: a partition that is fetched is still checked (an hour from now, its last
    # fetch is long past).
    assert [r for r in caplog.records if "Aiokafka" in r.getMessage()]

"""The worker's Faust app: where it keeps its files, and how it starts."""

import time
from pathlib import Path

import faust
import httpx
from aiokafka import AIOKafkaConsumer
from faust.contrib.asgi import faust_app_running

from core.clickhouse import Store
from core.settings import Settings
from streams.agents.commands import CampaignAgent
from streams.app import create_faust_app
from tests.conftest import make_settings


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
    four one after another."""
    hold = 4.0
    settings = settings.model_copy(update={"kafka_session_timeout_ms": int(2 * hold * 1000)})
    app = create_faust_app(settings, store)
    begun = time.monotonic()
    async with faust_app_running(app):
        took = time.monotonic() - begun
        joined = {
            "faust": app.consumer.assignment(),
            **{name: consumer.assignment() for name, consumer in _service_consumers(app).items()},
        }
    assert all(joined.values()), joined
    assert hold <= took < 2.5 * hold, took


def _service_consumers(app: faust.App) -> dict[str, AIOKafkaConsumer]:
    services = {type(s).__mro__[1].__name__: s for s in app._extra_service_instances or ()}
    orchestrator = services["Orchestrator"]
    return {
        "engagement": services["EngagementConsumer"].consumer,
        "campaigns": orchestrator.campaigns.consumer,
        "webhook commands": orchestrator.dispatcher.commands,
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

"""The worker's Faust app: where it keeps its files, and how it starts."""

import time
from pathlib import Path

import faust
from aiokafka import AIOKafkaConsumer
from faust.contrib.asgi import faust_app_running

from core.clickhouse import Store
from core.settings import Settings
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

"""Fixtures on the real embedded engines: one Tansu broker and one chDB path per session (chDB
allows one path per process), and per test its own topics, consumer group and database."""

import asyncio
import secrets
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from fastapi import FastAPI
from faust.contrib.asgi import faust_app_running

from api.main import create_app
from core import clickhouse
from core.auth import issue_token
from core.clickhouse import Store
from core.kafka import EmbeddedBroker, ensure_topics
from core.rollups import EngagementRollups
from core.settings import Settings
from streams.agents.commands import CampaignAgent, add_campaign_agent
from streams.agents.engagement import EngagementConsumer
from streams.app import Orchestrator, faust_datadir
from streams.topics import platform_topics
from streams.transport import FkApp
from tests.receivers import Receiver

if TYPE_CHECKING:
    from tests.processes import PlatformProcess

# The test environment refuses the development secret: one random key per test session.
JWT_SECRET = secrets.token_urlsafe(48)
SECRETS_KEY = secrets.token_urlsafe(48)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    b = EmbeddedBroker(free_port())
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def demo_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator["PlatformProcess"]:
    """`fk up --demo` as `make run` starts it from a fresh clone (no FK_ENV, the development
    secret, organisation `demo`), in a child process, shared by the tests that follow a
    newcomer: the start-up banner, the README's walkthrough and the dashboard in a browser."""
    from tests.processes import PlatformProcess

    env = {"FK_KAFKA_EMBEDDED_PORT": str(free_port())}
    with PlatformProcess(tmp_path_factory.mktemp("demo"), **env) as running:
        running.start("--demo")
        yield running


@pytest.fixture(scope="session")
def chdb_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"chdb://{tmp_path_factory.mktemp('chdb')}"


def make_settings(**overrides: Any) -> Settings:
    return Settings(_env_file=None, **overrides)


class HeldLog:
    """`core.clickhouse`'s logger while `MigratedDatabases` prepares databases: the lines of its
    thread are held until a test takes the database they are about, and told then. Pytest
    captures output phase by phase; a line another thread writes between phases would reach
    the terminal."""

    def __init__(self, log: Any) -> None:
        self.log = log
        self.held: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, method: str) -> Callable[..., None]:
        if threading.current_thread().name.startswith(MIGRATING_THREAD):
            return lambda *args, **kwargs: self.held.append((method, args, kwargs))
        told: Callable[..., None] = getattr(self.log, method)
        return told

    def tell(self) -> None:
        """Tell the held lines (call once the thread has finished them)."""
        lines, self.held = self.held, []
        for method, args, kwargs in lines:
            getattr(self.log, method)(*args, **kwargs)


MIGRATING_THREAD = "migrate-ahead"


class MigratedDatabases:
    """Test databases migrated one test ahead, in a thread of their own, as `Store.open` migrates
    them: a test that takes one finds it ready while the next is prepared meanwhile. Each
    database is its test's alone; the test drops it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=MIGRATING_THREAD)
        self._next: Future[Store] | None = None
        self._taken: dict[str, Store] = {}
        self._log = HeldLog(clickhouse.log)
        clickhouse.log = self._log

    def _open(self) -> Store:
        return Store.open(self.url, f"t_{uuid.uuid4().hex[:10]}")

    def take(self) -> str:
        """The name of a migrated database, its store kept for `claim`; the next one is started."""
        pending, self._next = self._next, None
        try:
            store = pending.result() if pending is not None else self._open()
        finally:
            self._log.tell()
        self._next = self._thread.submit(self._open)
        self._taken[store.database] = store
        return store.database

    def claim(self, database: str) -> Store | None:
        return self._taken.pop(database, None)

    def close(self) -> None:
        unused = [*self._taken.values()]
        if self._next is not None and self._next.exception() is None:
            unused.append(self._next.result())
        for store in unused:
            store.command_sync(f"DROP DATABASE IF EXISTS `{store.database}`")
            store.close()
        self._thread.shutdown()
        clickhouse.log = self._log.log


@pytest.fixture(scope="session")
def migrated_databases(chdb_url: str) -> Iterator[MigratedDatabases]:
    databases = MigratedDatabases(chdb_url)
    yield databases
    databases.close()


@pytest.fixture
def settings(
    broker: EmbeddedBroker,
    chdb_url: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    migrated_databases: MigratedDatabases,
) -> Settings:
    """A test's own names; one that uses `store` gets a database migrated ahead of it."""
    if "store" in request.fixturenames:
        tag = migrated_databases.take().removeprefix("t_")
    else:
        tag = uuid.uuid4().hex[:10]
    return make_settings(
        env="test",
        jwt_secret=JWT_SECRET,
        secrets_key=SECRETS_KEY,
        data_dir=tmp_path,
        kafka_bootstrap=broker.bootstrap,
        kafka_session_timeout_ms=2000,
        kafka_heartbeat_interval_ms=500,
        topic_prefix=f"t{tag}-",
        consumer_group=f"g{tag}",
        faust_app_id=f"fk{tag}",
        clickhouse_url=chdb_url,
        clickhouse_database=f"t_{tag}",
        metrics_cache_ttl_seconds=0.0,
        # The organisation of the `token` fixture: events produced to Kafka without an `fk-org`
        # header are its, as `POST /events` with that token are.
        default_org="acme",
    )


@pytest.fixture
def store(settings: Settings, migrated_databases: MigratedDatabases) -> Iterator[Store]:
    st = migrated_databases.claim(settings.clickhouse_database) or Store.open(
        settings.store_url, settings.clickhouse_database
    )
    yield st
    st.command_sync(f"DROP DATABASE IF EXISTS `{settings.clickhouse_database}`")
    st.close()


@pytest.fixture
async def topics(settings: Settings) -> None:
    await ensure_topics(settings.bootstrap, platform_topics(settings))


@pytest.fixture
def rollups(store: Store) -> EngagementRollups:
    """The in-memory metrics the `pipeline` keeps, loaded from the test's (empty) store."""
    kept = EngagementRollups()
    kept.load(store, int(time.time() * 1000))
    return kept


@pytest.fixture
async def pipeline(
    settings: Settings, store: Store, topics: None, rollups: EngagementRollups
) -> AsyncIterator[EngagementConsumer]:
    consumer = EngagementConsumer(settings, store, rollups=rollups)
    await consumer.start()
    yield consumer
    await consumer.stop()


@pytest.fixture
async def orchestrator(
    settings: Settings, store: Store, topics: None
) -> AsyncIterator[Orchestrator]:
    """The campaign worker, the clock and the webhook dispatcher, started once the dispatcher
    owns every `campaign-events` partition."""
    service = Orchestrator(settings, store)
    await service.start()
    await wait_until(lambda: len(service.dispatcher.partitions) == settings.campaign_partitions)
    yield service
    await service.stop()


@pytest.fixture
async def campaign_agent(
    settings: Settings, store: Store, topics: None
) -> AsyncIterator[CampaignAgent]:
    """The campaign agent (`streams/agents/commands.py`), the owner of every campaign, alone in
    a Faust app of its own: campaign commands of the `client` fixture's API are answered by it.
    Started once it owns every `campaign-commands` partition."""
    app = FkApp(
        settings.faust_app_id,
        broker=f"kafka://{settings.bootstrap}",
        store="memory://",
        datadir=faust_datadir(settings),
        web_enabled=False,
        fetch_wait_ms=settings.command_fetch_wait_ms,
        broker_session_timeout=settings.kafka_session_timeout_ms / 1000,
        broker_heartbeat_interval=settings.kafka_heartbeat_interval_ms / 1000,
    )
    agent = add_campaign_agent(app, settings, store, sole_writer=True)
    async with faust_app_running(app):
        await wait_until(lambda: len(app.consumer.assignment()) >= settings.campaign_partitions)
        yield agent


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook receiver on 127.0.0.1 (`tests/receivers.py`)."""
    r = await Receiver().start()
    yield r
    await r.stop()


@pytest.fixture
def token(settings: Settings) -> str:
    return issue_token(settings.jwt_secret, org="acme")


@pytest.fixture
async def client(
    settings: Settings, store: Store, topics: None, token: str
) -> AsyncIterator[httpx.AsyncClient]:
    async with served(create_app(settings, store=store), token) as c:
        yield c


@asynccontextmanager
async def served(app: FastAPI, token: str) -> AsyncIterator[httpx.AsyncClient]:
    """`app` started (its lifespan) and called over ASGI with `token`."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://api",
            headers={"Authorization": f"Bearer {token}"},
        ) as c,
    ):
        yield c


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap, linger_ms=5, max_request_size=8 * 1024 * 1024
    )
    await p.start()
    yield p
    await p.stop()


async def wait_until(
    condition: Callable[[], Any], *, timeout: float = 20.0, interval: float = 0.05
) -> Any:
    """Poll `condition` (sync or async) until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


async def topic_layout(
    bootstrap: str, names: Sequence[str]
) -> dict[str, tuple[set[int], dict[str, str]]]:
    """Per topic, the replica counts of its partitions and the configs the broker reports for it
    (the embedded broker reports those set when the topic was created)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(list(names))
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
    finally:
        await admin.close()
    replicas = {t["topic"]: {len(p["replicas"]) for p in t["partitions"]} for t in described}
    configs = {
        resource[3]: {entry[0]: entry[1] for entry in resource[4]}
        for response in responses
        for resource in response.resources
    }
    return {name: (replicas[name], configs[name]) for name in names}


async def read_dead_letters(
    settings: Settings, expected: int
) -> dict[bytes | None, dict[str, bytes]]:
    """The headers of the engagement dead-letter topic's messages by their value, once
    `expected` are there (or 15 s have passed)."""
    dlq = AIOKafkaConsumer(
        settings.engagement_dlq_topic,
        bootstrap_servers=settings.bootstrap,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
    )
    await dlq.start()
    got: dict[bytes | None, dict[str, bytes]] = {}
    try:
        deadline = time.monotonic() + 15
        while len(got) < expected and time.monotonic() < deadline:
            for records in (await dlq.getmany(timeout_ms=300)).values():
                for rec in records:
                    got[rec.value] = dict(rec.headers)
    finally:
        await dlq.stop()
    return got

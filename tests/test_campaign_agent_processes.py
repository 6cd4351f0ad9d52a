"""Campaign commands across processes: two API processes (`fk api`) and two workers (`fk worker`)
on one broker. The campaign agent in the workers is the only version authority, so exactly one
of many concurrent changes at one version wins whichever API each arrives at; a killed worker's
campaigns are taken over from the table's changelog by the other.

Each process has a chDB store of its own (chDB opens a data path in one process only; a
ClickHouse server would be shared): the agents decide from their table, never from a store.
"""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import murmur2

from core.auth import issue_token
from core.ledger import keyed_id
from core.settings import Settings
from tests.conftest import JWT_SECRET, SECRETS_KEY, free_port, wait_until

REPO = Path(__file__).resolve().parents[1]
ORG = "acme"


class Process:
    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "Process":
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "fk", *self.args],
                cwd=self.log_path.parent,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


class Shape:
    """Two workers and two APIs sharing topics, group and app id."""

    def __init__(self, settings: Settings, workdir: Path) -> None:
        self.settings = settings
        base = {
            **{k: v for k, v in os.environ.items() if not k.startswith("FK_")},
            "PYTHONPATH": str(REPO),
            "FK_ENV": "test",
            "FK_JWT_SECRET": JWT_SECRET,
            "FK_SECRETS_KEY": SECRETS_KEY,
            "FK_KAFKA_BOOTSTRAP": settings.bootstrap,
            "FK_TOPIC_PREFIX": settings.topic_prefix,
            "FK_CONSUMER_GROUP": settings.consumer_group,
            "FK_FAUST_APP_ID": settings.faust_app_id,
            "FK_KAFKA_SESSION_TIMEOUT_MS": "2000",
            "FK_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
            "FK_DEFAULT_ORG": ORG,
            "FK_LOG_LEVEL": "INFO",
            "FK_RATE_LIMIT_WRITES_PER_MINUTE": "0",
        }
        self.workers: list[Process] = []
        self.worker_metrics: list[int] = []
        self.apis: list[Process] = []
        self.api_ports: list[int] = []
        for n in range(2):
            port = free_port()
            self.worker_metrics.append(port)
            self.workers.append(
                Process(
                    f"worker{n}",
                    ["worker", "--metrics-port", str(port)],
                    {**base, "FK_CLICKHOUSE_URL": f"chdb://{workdir / f'worker{n}'}"},
                    workdir / f"worker{n}.log",
                )
            )
        for n in range(2):
            port = free_port()
            self.api_ports.append(port)
            self.apis.append(
                Process(
                    f"api{n}",
                    ["api"],
                    {
                        **base,
                        "FK_API_PORT": str(port),
                        "FK_CLICKHOUSE_URL": f"chdb://{workdir / f'api{n}'}",
                    },
                    workdir / f"api{n}.log",
                )
            )

    def all(self) -> list[Process]:
        return [*self.workers, *self.apis]

    def _metric(self, worker: int, prefix: str) -> float:
        try:
            text = httpx.get(f"http://127.0.0.1:{self.worker_metrics[worker]}/metrics").text
        except httpx.TransportError:
            return 0.0
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))

    def decided(self, worker: int) -> float:
        """Commands the worker's agent decided."""
        return self._metric(worker, "fk_campaign_commands_total{")

    def owned(self, worker: int) -> float:
        """campaign-commands partitions the worker's agent owns."""
        return self._metric(worker, "fk_campaign_agent_partitions ")


@pytest.fixture
def shape(settings: Settings, topics: None, tmp_path: Path) -> Iterator[Shape]:
    running = Shape(settings, tmp_path)
    for process in running.all():
        process.start()
    try:
        yield running
    finally:
        for process in running.all():
            process.stop()


@pytest.fixture
async def apis(shape: Shape) -> AsyncIterator[list[httpx.AsyncClient]]:
    """A client of each API process (closed whatever the test's outcome)."""
    token = issue_token(JWT_SECRET, org=ORG)
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{port}",
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=30,
                )
            )
            for port in shape.api_ports
        ]


def _partition(campaign_id: str, partitions: int) -> int:
    hashed: int = murmur2(campaign_id.encode())
    return (hashed & 0x7FFFFFFF) % partitions


async def _ready(shape: Shape, apis: list[httpx.AsyncClient]) -> None:
    """Both APIs answer, each worker owns campaigns, and a command is decided."""
    for api in apis:
        await wait_until(partial(_answers, api), timeout=90, interval=0.5)
    partitions = shape.settings.campaign_partitions
    await wait_until(
        lambda: (
            shape.owned(0) + shape.owned(1) == partitions and shape.owned(0) > 0 < shape.owned(1)
        ),
        timeout=90,
        interval=0.5,
    )

    async def created() -> bool:
        response = await apis[0].post("/campaigns", json={"name": "probe"})
        return response.status_code == 201

    await wait_until(created, timeout=90, interval=0.5)


async def _answers(api: httpx.AsyncClient) -> bool:
    try:
        return (await api.get("/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


async def test_one_of_a_hundred_concurrent_changes_at_one_version_wins_across_apis(
    shape: Shape, apis: list[httpx.AsyncClient]
) -> None:
    await _ready(shape, apis)
    partitions = shape.settings.campaign_partitions
    ids: list[str] = []
    while len(ids) < 20 or len({_partition(i, partitions) for i in ids}) < partitions:
        ids.append(f"cmp_race_{uuid.uuid4().hex[:8]}")
        if len(ids) > 20:
            ids.pop(0)
    for campaign_id in ids:
        created = await apis[0].post("/campaigns", json={"name": "Race", "id": campaign_id})
        assert created.status_code == 201, created.text

    async def patch(campaign_id: str, n: int) -> int:
        response = await apis[n % 2].patch(
            f"/campaigns/{campaign_id}",
            json={"budget": n + 1},
            headers={"If-Match": '"1"'},
        )
        return response.status_code

    for campaign_id in ids:
        codes = await asyncio.gather(*(patch(campaign_id, n) for n in range(100)))
        assert sorted(codes) == [200] + [412] * 99, campaign_id
    # Both workers' agents decided commands: the campaigns' partitions are split between them.
    assert shape.decided(0) > 0
    assert shape.decided(1) > 0


async def _events(settings: Settings, campaign_id: str) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        settings.campaign_topic,
        bootstrap_servers=settings.bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        events: list[dict[str, Any]] = []
        while True:
            batch = await consumer.getmany(timeout_ms=1000)
            if not batch:
                return events
            for records in batch.values():
                for record in records:
                    event = orjson.loads(record.value or b"{}")
                    if event.get("campaignId") == campaign_id:
                        events.append(event)
    finally:
        await consumer.stop()


async def test_a_killed_workers_campaigns_are_taken_over_from_the_changelog(
    shape: Shape, settings: Settings, apis: list[httpx.AsyncClient]
) -> None:
    await _ready(shape, apis)
    campaign_id = f"cmp_kill_{uuid.uuid4().hex[:8]}"
    created = await apis[0].post("/campaigns", json={"name": "Kill", "id": campaign_id})
    assert created.status_code == 201
    # Which worker owns the campaign: the one whose agent decides its next command.
    before = [shape.decided(0), shape.decided(1)]
    version = 1
    response = await apis[1].patch(
        f"/campaigns/{campaign_id}", json={"budget": 1}, headers={"If-Match": f'"{version}"'}
    )
    assert response.status_code == 200
    version = response.json()["version"]
    owner = 0 if shape.decided(0) > before[0] else 1
    # A create with an Idempotency-Key whose campaign the same worker owns.
    partition = _partition(campaign_id, settings.campaign_partitions)
    key = next(
        k
        for k in (f"kill-key-{n}" for n in range(1000))
        if _partition(keyed_id(ORG, k), settings.campaign_partitions) == partition
    )
    keyed_body = {"name": "Keyed"}
    keyed = await apis[0].post("/campaigns", json=keyed_body, headers={"Idempotency-Key": key})
    assert keyed.status_code == 201
    acknowledged: dict[int, int] = {version: 1}
    budget = 1
    killed = False
    while budget < 60:
        budget += 1
        if budget == 20:
            shape.workers[owner].kill()
            killed = True
        response = await apis[budget % 2].patch(
            f"/campaigns/{campaign_id}",
            json={"budget": budget},
            headers={"If-Match": f'"{version}"'},
        )
        if response.status_code == 200:
            version = response.json()["version"]
            assert version not in acknowledged
            acknowledged[version] = budget
        elif response.status_code == 412:
            # An earlier attempt was applied after its answer timed out.
            version = int(response.headers["ETag"].strip('"'))
        else:
            assert response.status_code == 503, response.text
            await asyncio.sleep(0.5)
    assert killed
    assert len(acknowledged) > 40
    # The survivor decided the rest.
    assert shape.decided(1 - owner) > 0
    events = await _events(settings, campaign_id)
    by_version: dict[int, set[str]] = {}
    for event in events:
        by_version.setdefault(event["version"], set()).add(event["eventId"])
    assert sorted(by_version) == list(range(1, max(by_version) + 1)), "a version was skipped"
    assert all(len(ids) == 1 for ids in by_version.values()), "a version was repeated"
    budgets = {e["version"]: e["current"].get("budget") for e in events}
    for acked_version, acked_budget in acknowledged.items():
        assert float(budgets[acked_version]) == acked_budget
    assert max(by_version) == version
    # A create retried with its Idempotency-Key after the takeover answers as the first.
    again = await apis[1].post("/campaigns", json=keyed_body, headers={"Idempotency-Key": key})
    assert again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["id"] == keyed.json()["id"]

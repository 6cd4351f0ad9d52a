"""The platform as real processes: kill -9 mid-stream, two workers sharing partitions, and a
full stop/start of the embedded platform (whose broker forgets its topics)."""

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from core.auth import issue_token
from core.kafka import EmbeddedBroker
from core.settings import DEV_JWT_SECRET
from tests.conftest import free_port, wait_until
from tests.factories import encode, make_event, reference_metrics
from tests.processes import REPO, PlatformProcess

pytestmark = pytest.mark.slow

HOUR = 3_600_000
CAMPAIGNS = [f"cmp_{i}" for i in range(8)]


def stream(n: int, now_ms: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    ages = [10 * 60_000, 3 * HOUR, 30 * HOUR]
    events = [
        make_event(
            eventId=f"s{seed}-{i}",
            timestamp=now_ms - rng.choice(ages) - rng.randint(0, 60_000),
            influencerId=f"inf_{rng.randrange(50)}",
            campaignId=rng.choice(CAMPAIGNS),
            views=rng.randint(1, 1000),
            likes=rng.randint(0, 50),
            comments=rng.randint(0, 5),
            shares=rng.randint(0, 5),
            saves=rng.randint(0, 5),
        )
        for i in range(n)
    ]
    # 2% redelivered later in the stream (same key, so same partition).
    for _ in range(n // 50):
        events.append(dict(events[rng.randrange(n)]))
    return events


async def produce(
    bootstrap: str, topic: str, events: list[dict[str, Any]], *, rate: float | None = None
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=10)
    await producer.start()
    started = time.monotonic()
    try:
        pending = []
        for i, e in enumerate(events):
            pending.append(await producer.send(topic, encode(e), key=e["influencerId"].encode()))
            if len(pending) >= 2000:
                await asyncio.gather(*pending)
                pending = []
                if rate:
                    await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


def expected(events: list[dict[str, Any]], now_ms: int) -> dict[str, Any]:
    return {
        c: reference_metrics(events, key="campaignId", entity=c, now_ms=now_ms) for c in CAMPAIGNS
    }


def observed(platforms: list[PlatformProcess]) -> dict[str, Any]:
    """Per campaign, the sum over every process's answer (each owns some partitions)."""
    out: dict[str, Any] = {}
    for c in CAMPAIGNS:
        parts = [m for p in platforms if (m := p.metrics("campaigns", c)) is not None]
        merged: dict[str, dict[str, Any]] = {}
        for window in ("window1h", "window24h", "total"):
            sums = {
                k: sum(int(p[window][k]) for p in parts)  # type: ignore[index]
                for k in ("views", "likes", "comments", "shares", "saves", "events")
            }
            sums["engagements"] = sums["likes"] + sums["comments"] + sums["shares"]
            sums["engagementRate"] = (
                round(sums["engagements"] / sums["views"] * 100, 4) if sums["views"] else 0.0
            )
            merged[window] = sums
        out[c] = merged
    return out


def shared_env(broker: EmbeddedBroker) -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    return {
        "FK_KAFKA_BOOTSTRAP": broker.bootstrap,
        "FK_TOPIC_PREFIX": f"p{tag}-",
        "FK_CONSUMER_GROUP": f"g{tag}",
        "FK_FAUST_APP_ID": f"fk{tag}",
    }


async def test_kill_9_mid_stream_then_restart_counts_exactly(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    env = shared_env(broker)
    now_ms = int(time.time() * 1000)
    events = stream(100_000, now_ms, seed=1)
    with PlatformProcess(tmp_path / "w", **env) as platform:
        platform.start()
        producing = asyncio.create_task(
            produce(
                broker.bootstrap, f"{env['FK_TOPIC_PREFIX']}engagement-events", events, rate=25_000
            )
        )

        def stored_some() -> bool:
            totals = [
                m["total"]["events"]
                for c in CAMPAIGNS  # type: ignore[index]
                if (m := platform.metrics("campaigns", c))
            ]
            return 10_000 < sum(totals) < 90_000

        await wait_until(lambda: asyncio.to_thread(stored_some), timeout=60)
        platform.kill()
        await producing
        platform.start()
        want = expected(events, now_ms)
        await wait_until(
            lambda: asyncio.to_thread(lambda: observed([platform]) == want),
            timeout=90,
            interval=0.5,
        )
        assert observed([platform]) == want


async def test_two_worker_processes_give_the_same_results_as_one(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    env = shared_env(broker)
    now_ms = int(time.time() * 1000)
    events = stream(30_000, now_ms, seed=2)
    with PlatformProcess(tmp_path / "a", **env) as a, PlatformProcess(tmp_path / "b", **env) as b:
        a.start()
        b.start()
        # Both own partitions (4 split 2/2) before any event arrives.
        await wait_until(lambda: a.assigned() == 2 and b.assigned() == 2, timeout=60, interval=0.2)
        await produce(broker.bootstrap, f"{env['FK_TOPIC_PREFIX']}engagement-events", events)
        want = expected(events, now_ms)
        await wait_until(
            lambda: asyncio.to_thread(lambda: observed([a, b]) == want), timeout=60, interval=0.5
        )
        per_process = [
            sum(
                m["total"]["events"]
                for c in CAMPAIGNS  # type: ignore[index]
                if (m := p.metrics("campaigns", c))
            )
            for p in (a, b)
        ]
        assert all(n > 0 for n in per_process), "both workers did part of the work"


async def test_full_stop_and_start_of_the_embedded_platform_keeps_totals(tmp_path: Path) -> None:
    env = {"FK_KAFKA_EMBEDDED_PORT": str(free_port())}
    now_ms = int(time.time() * 1000)
    events = [
        make_event(
            eventId=f"r{i}", campaignId="cmp_restart", timestamp=now_ms - 60_000, views=10, likes=2
        )
        for i in range(200)
    ]
    with PlatformProcess(tmp_path / "e", **env) as platform:
        platform.start()
        # What start-up leaves alive is exempt from garbage collection (no full-heap pauses).
        await wait_until(lambda: "up.gc_frozen" in platform.log())
        assert platform.http.post("/events", json=events).status_code == 202
        await wait_until(
            lambda: (
                (m := platform.metrics("campaigns", "cmp_restart")) and m["total"]["events"] == 200
            )
        )
        assert platform.interrupt() == 0, platform.log()
        with pytest.raises(ConnectionRefusedError):  # the embedded broker went with it
            socket.create_connection(("127.0.0.1", int(env["FK_KAFKA_EMBEDDED_PORT"])), 0.5)

        platform.start()
        after = platform.metrics("campaigns", "cmp_restart")
        assert after is not None
        assert after["total"]["events"] == 200  # type: ignore[index]
        # Producers resending the same events after the restart change nothing.
        assert platform.http.post("/events", json=events).status_code == 202
        more = [make_event(eventId="r-new", campaignId="cmp_restart", timestamp=now_ms, views=1)]
        assert platform.http.post("/events", json=more).status_code == 202
        await wait_until(
            lambda: (
                (m := platform.metrics("campaigns", "cmp_restart")) and m["total"]["events"] == 201
            )
        )
        final = platform.metrics("campaigns", "cmp_restart")
        assert final["total"]["views"] == 2001  # type: ignore[index]


async def test_worker_and_api_run_as_separate_processes_from_settings_alone(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """Distributed mode: `fk worker` and `fk api` configured only through FK_* variables."""
    env = {
        **os.environ,
        **shared_env(broker),
        "PYTHONPATH": str(REPO),
        "FK_CLICKHOUSE_URL": f"chdb://{tmp_path / 'store'}",
        "FK_KAFKA_SESSION_TIMEOUT_MS": "2000",
    }
    metrics_port = free_port()
    now_ms = int(time.time() * 1000)
    events = stream(2_000, now_ms, seed=3)
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "fk", "worker", "--metrics-port", str(metrics_port)],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def stored() -> float:
            try:
                text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).text
            except httpx.TransportError:
                return -1.0
            for line in text.splitlines():
                if line.startswith("fk_pipeline_events_stored_total "):
                    return float(line.split()[1])
            return -1.0

        await wait_until(lambda: stored() >= 0, timeout=60, interval=0.2)
        await produce(broker.bootstrap, f"{env['FK_TOPIC_PREFIX']}engagement-events", events)
        distinct = len({e["eventId"] for e in events})
        await wait_until(lambda: stored() == distinct, timeout=60, interval=0.2)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    assert worker.returncode == 0, (tmp_path / "worker.log").read_text()[-2000:]

    port = free_port()
    api_env = {**env, "FK_API_PORT": str(port)}
    with (tmp_path / "api.log").open("wb") as log:
        api = subprocess.Popen(
            [sys.executable, "-m", "fk", "api"],
            cwd=tmp_path,
            env=api_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        # The events were produced without an `fk-org` header: the default organisation's.
        token = issue_token(DEV_JWT_SECRET, org="demo")
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}
        )

        def ready() -> bool:
            try:
                return client.get("/readyz").status_code == 200
            except httpx.TransportError:
                return False

        await wait_until(ready, timeout=60, interval=0.2)
        want = expected(events, now_ms)
        for campaign in CAMPAIGNS:
            assert client.get(f"/campaigns/{campaign}/metrics").json() == want[campaign]
        client.close()
    finally:
        api.send_signal(signal.SIGINT)
        api.wait(30)


def test_api_refuses_to_start_without_its_store(broker: EmbeddedBroker, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "FK_KAFKA_BOOTSTRAP": broker.bootstrap,
        "FK_CLICKHOUSE_URL": f"http://127.0.0.1:{free_port()}",
        "FK_API_PORT": str(free_port()),
    }
    result = subprocess.run(
        [sys.executable, "-m", "fk", "api"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "fk: cannot start: cannot" in result.stderr
    assert "Traceback" not in result.stderr

"""Shared set-up for benchmarks: a broker, a chDB store in a temp dir, settings, event data.

`FK_BENCH_BOOTSTRAP` names a running broker to use instead of starting one, and
`FK_BENCH_CLICKHOUSE_URL` a store for the benchmarks that run in this process (each still gets a
database of its own): the smoke test runs them on the test session's broker and chDB path.
"""

import asyncio
import os
import random
import shutil
import socket
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from core.kafka import EmbeddedBroker, ensure_topics
from core.settings import Settings
from schemas.events import PLATFORMS
from streams.topics import platform_topics


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def environment() -> Iterator[tuple[str, Path]]:
    """A broker (FK_BENCH_BOOTSTRAP or a fresh embedded one) and a temp directory."""
    external = os.environ.get("FK_BENCH_BOOTSTRAP")
    broker = None if external else EmbeddedBroker(free_port())
    if broker is not None:
        broker.start()
    try:
        with tempfile.TemporaryDirectory(prefix="fk-bench-") as tmp:
            yield (external or broker.bootstrap), Path(tmp)  # type: ignore[union-attr]
    finally:
        if broker is not None:
            broker.stop()


def bench_settings(bootstrap: str, tmp: Path, **overrides: Any) -> Settings:
    tag = uuid.uuid4().hex[:8]
    values: dict[str, Any] = {
        "kafka_bootstrap": bootstrap,
        "topic_prefix": f"b{tag}-",
        "consumer_group": f"g{tag}",
        "faust_app_id": f"fk{tag}",
        "clickhouse_url": os.environ.get("FK_BENCH_CLICKHOUSE_URL") or f"chdb://{tmp / 'chdb'}",
        "clickhouse_database": f"b_{tag}",
        "kafka_session_timeout_ms": 2000,
        "kafka_heartbeat_interval_ms": 500,
        "data_dir": tmp,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def platform_env(bootstrap: str, data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    """The environment of an `fk up` child process on the benchmark's broker: its own data
    directory, API port and topics (the broker may be shared)."""
    tag = uuid.uuid4().hex[:8]
    return {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        "FK_KAFKA_BOOTSTRAP": bootstrap,
        "FK_TOPIC_PREFIX": f"b{tag}-",
        "FK_CONSUMER_GROUP": f"g{tag}",
        "FK_FAUST_APP_ID": f"fk{tag}",
        "FK_DATA_DIR": str(data_dir),
        "FK_API_PORT": str(port),
        "FK_LOG_LEVEL": "WARNING",
        # As the benchmarks' own consumers (`bench_settings`): a group forms in about a second.
        "FK_KAFKA_SESSION_TIMEOUT_MS": "2000",
        "FK_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        **extra,
    }


def have_hey(*, required: bool) -> bool:
    """Whether Debian's `hey` (the latency runs' load generator) is on PATH. A full run needs it
    (exits without); a smoke run skips the parts that use it, saying so."""
    if shutil.which("hey") is not None:
        return True
    if required:
        raise SystemExit("hey not found: apt-get install hey")
    print("  hey not found: its latency runs are skipped")
    return False


def make_events(
    n: int,
    *,
    campaigns: int = 1000,
    creators: int = 5000,
    seed: int = 1,
    now_ms: int | None = None,
    spread_ms: int = 48 * 3_600_000,
) -> list[bytes]:
    rng = random.Random(seed)
    now_ms = now_ms or int(time.time() * 1000)
    out = []
    for i in range(n):
        out.append(
            orjson.dumps(
                {
                    "eventId": f"b{seed}-{i}",
                    "timestamp": now_ms - rng.randint(0, spread_ms),
                    "influencerId": f"inf_{rng.randrange(creators)}",
                    "platform": rng.choice(PLATFORMS),
                    "campaignId": f"cmp_{rng.randrange(campaigns)}",
                    "views": rng.randint(1, 5000),
                    "likes": rng.randint(0, 300),
                    "comments": rng.randint(0, 30),
                    "shares": rng.randint(0, 20),
                }
            )
        )
    return out


async def produce(bootstrap: str, topic: str, values: list[bytes]) -> float:
    """Send all values (key = influencerId); return seconds taken."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024
    )
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for v in values:
            key = orjson.loads(v)["influencerId"].encode()
            pending.append(await producer.send(topic, value=v, key=key))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def create_topics(settings: Settings) -> None:
    await ensure_topics(settings.bootstrap, platform_topics(settings))


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]

"""Freshness under load: while a producer sends 30k events/s, probe events are produced every
250 ms and the API is polled until each shows up; event produced → visible in the API."""

import asyncio
import subprocess
import sys
import time

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from bench.api import wait_ready
from bench.common import (
    bench_settings,
    create_topics,
    environment,
    free_port,
    make_events,
    percentile,
    platform_env,
)
from core.auth import issue_token
from core.settings import DEV_JWT_SECRET


def load(bootstrap: str, topic: str, rate: int, values: list[bytes]) -> int:
    """A steady offered load from librdkafka (a Python producer cannot offer 30k/s beside the
    platform on two cores), paced in 20 ms slices; runs in a thread."""
    from confluent_kafka import Producer

    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": False, "acks": "all"}
    )
    sent = 0
    started = time.monotonic()
    chunk = max(1, rate // 50)
    for i in range(0, len(values), chunk):
        for j, v in enumerate(values[i : i + chunk]):
            producer.produce(topic, v, key=b"k%d" % (j % 97))
        producer.poll(0)
        sent += len(values[i : i + chunk])
        delay = started + sent / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    producer.flush(30)
    return sent


async def probe(bootstrap: str, topic: str, api: httpx.AsyncClient, n: int) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    try:
        event = {
            "eventId": f"probe-{n}-{time.time_ns()}",
            "timestamp": int(time.time() * 1000),
            "influencerId": "inf_probe",
            "platform": "x",
            "campaignId": f"probe_{n}",
            "views": 1,
        }
        started = time.perf_counter()
        await producer.send_and_wait(topic, orjson.dumps(event), key=b"inf_probe")
    finally:
        await producer.stop()
    while time.perf_counter() - started < 120:
        if (await api.get(f"/campaigns/probe_{n}/metrics")).status_code == 200:
            return time.perf_counter() - started
        await asyncio.sleep(0.01)
    raise TimeoutError(f"probe {n} not visible in the API after 120 s")


async def run(rate: int = 30_000, seconds: float = 20.0) -> dict[str, float]:
    values = make_events(rate * int(seconds), seed=9, campaigns=5000)  # before the clock starts
    with environment() as (bootstrap, tmp):
        settings = bench_settings(bootstrap, tmp)
        await create_topics(settings)
        port = free_port()
        env = platform_env(
            bootstrap,
            tmp / "data",
            port,
            FK_TOPIC_PREFIX=settings.topic_prefix,
            # The probes are produced to Kafka without an `fk-org` header, and read as `bench`.
            FK_DEFAULT_ORG="bench",
            FK_RATE_LIMIT_READS_PER_MINUTE="0",
        )
        with (tmp / "fk.log").open("wb") as log:
            platform = subprocess.Popen(
                [sys.executable, "-m", "fk", "up"],
                cwd=tmp,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            base = f"http://127.0.0.1:{port}"
            await asyncio.to_thread(wait_ready, base)
            token = issue_token(DEV_JWT_SECRET, org="bench")
            async with httpx.AsyncClient(
                base_url=base, timeout=10, headers={"Authorization": f"Bearer {token}"}
            ) as api:
                loader = asyncio.create_task(
                    asyncio.to_thread(load, bootstrap, settings.engagement_topic, rate, values)
                )
                latencies = []
                n = 0
                started = time.monotonic()
                while not loader.done():
                    n += 1
                    latencies.append(await probe(bootstrap, settings.engagement_topic, api, n))
                    await asyncio.sleep(max(0.0, started + n * 0.25 - time.monotonic()))
                sent = await loader
                achieved = sent / (time.monotonic() - started)
        finally:
            platform.send_signal(2)
            platform.wait(60)
        p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
        print(
            f"freshness at {achieved:,.0f} events/s offered ({len(latencies)} probes): "
            f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms"
        )
        return {"offered_eps": achieved, "p50_ms": p50 * 1000, "p99_ms": p99 * 1000}


if __name__ == "__main__":
    asyncio.run(run())

"""Webhook delivery on one worker: deliveries/s to a fast local receiver (its own process) for a
burst of campaign events, and event → delivery latency (p50/p99) at a steady rate below that.

`python -m bench.webhooks [--burst N] [--rate R] [--seconds S]`
"""

import argparse
import asyncio
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer

from bench.common import bench_settings, create_topics, environment, free_port, percentile
from core import lifecycle
from core.clickhouse import Store
from core.logging import configure_logging
from core.signing import new_secret
from schemas.campaigns import CampaignCreate
from streams.app import Orchestrator

REPO = Path(__file__).resolve().parents[1]


def event_bytes(i: int, tag: str) -> tuple[bytes, bytes]:
    now = datetime.now(UTC)
    event = lifecycle.create("bench", f"cmp_{tag}_{i}", CampaignCreate(name=f"c{i}"), now)
    return event.campaign_id.encode(), event.model_dump_json(by_alias=True).encode()


async def produce(
    producer: AIOKafkaProducer, topic: str, n: int, tag: str, rate: float | None
) -> None:
    started = time.perf_counter()
    pending = []
    for i in range(n):
        if rate:
            await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
        key, value = event_bytes(i, tag)
        pending.append(await producer.send(topic, value, key=key))
    await asyncio.gather(*pending)


async def wait_for(http: httpx.AsyncClient, unique: int, timeout: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        stats: dict[str, object] = (await http.get("/stats")).json()
        if stats["unique"] == unique:
            return stats
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {stats['unique']} of {unique} delivered")
        await asyncio.sleep(0.02)


async def run(burst: int, rate: float, seconds: float) -> None:
    port = free_port()
    receiver = subprocess.Popen([sys.executable, "-m", "bench.receiver", str(port)], cwd=REPO)
    try:
        with environment() as (bootstrap, tmp):
            settings = bench_settings(
                bootstrap,
                tmp,
                webhook_allowed_hosts="127.0.0.1",
                webhook_default_url=f"http://127.0.0.1:{port}/hook",
                webhook_default_secret=new_secret(),
            )
            await create_topics(settings)
            store = await asyncio.to_thread(
                Store.open, settings.store_url, settings.clickhouse_database
            )
            orchestrator = Orchestrator(settings, store)
            await orchestrator.start()
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
            await producer.start()
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                while len(orchestrator.dispatcher.partitions) < settings.campaign_partitions:
                    await asyncio.sleep(0.05)
                while (await http.get("/stats")).status_code != 200:
                    await asyncio.sleep(0.05)

                started = time.perf_counter()
                await produce(producer, settings.campaign_topic, burst, "burst", None)
                await wait_for(http, burst, timeout=300)
                elapsed = time.perf_counter() - started
                print(
                    f"burst: {burst} events -> {burst} deliveries in {elapsed:.2f} s "
                    f"= {burst / elapsed:.0f} deliveries/s (one worker, one endpoint)"
                )

                await http.post("/reset")
                steady = int(rate * seconds)
                await produce(producer, settings.campaign_topic, steady, "steady", rate)
                stats = await wait_for(http, steady, timeout=120)
                latencies: list[float] = stats["latenciesMs"]  # type: ignore[assignment]
                p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
                print(
                    f"steady: {steady} events at {rate:.0f}/s: event -> delivery "
                    f"p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {max(latencies):.0f} ms"
                )
            await producer.stop()
            await orchestrator.stop()
            store.close()
    finally:
        receiver.terminate()
        receiver.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--burst", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=250.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    configure_logging("console", "WARNING")
    asyncio.run(run(args.burst, args.rate, args.seconds))


if __name__ == "__main__":
    main()

"""Pipeline throughput: broker → validate → dedupe → chDB, against a raw aiokafka consumer
(getmany + orjson + dict aggregation) reading the same events in the same run."""

import asyncio
import time
from collections import defaultdict

import orjson
from aiokafka import AIOKafkaConsumer

from bench.common import bench_settings, create_topics, environment, make_events, median, produce
from core.clickhouse import Store
from core.repositories.engagement import count_events
from core.settings import Settings
from streams.agents.engagement import EngagementConsumer


async def raw_consumer(bootstrap: str, topic: str, n: int) -> float:
    """The baseline: how fast Python can read and aggregate these events at all."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    totals: dict[str, int] = defaultdict(int)
    seen = 0
    started = time.perf_counter()
    try:
        while seen < n:
            batch = await consumer.getmany(timeout_ms=200, max_records=20_000)
            for records in batch.values():
                for r in records:
                    e = orjson.loads(r.value)
                    totals[e["campaignId"]] += e["views"]
                seen += len(records)
    finally:
        await consumer.stop()
    return n / (time.perf_counter() - started)


async def pipeline(settings: Settings, store: Store, n: int) -> tuple[float, float]:
    """Events/s from start of consumption until the store holds all n; also join time."""
    consumer = EngagementConsumer(settings, store)
    t0 = time.perf_counter()
    await consumer.start()
    while not consumer.consumer.assignment():  # type: ignore[union-attr]
        await asyncio.sleep(0.01)
    joined = time.perf_counter() - t0
    started = time.perf_counter()
    try:
        # Watch the sink's own count of stored rows (no store query competing with the
        # pipeline), then confirm once that the store holds them all.
        while consumer.sink.stored < n:
            await asyncio.sleep(0.005)
        count = await count_events(store)
        elapsed = time.perf_counter() - started
        assert count >= n, (count, n)
    finally:
        await consumer.stop()
    return n / elapsed, joined


async def run(n: int = 1_000_000, rounds: int = 3) -> dict[str, float]:
    """Sustained: a million events a round (about five seconds of the pipeline's work), so the
    store's background merges and the growing id set are part of what is measured."""
    with environment() as (bootstrap, tmp):
        raw_rates, pipe_rates = [], []
        for r in range(rounds):
            settings = bench_settings(bootstrap, tmp)
            await create_topics(settings)
            await produce(bootstrap, settings.engagement_topic, make_events(n, seed=r))
            raw_rates.append(await raw_consumer(bootstrap, settings.engagement_topic, n))
            store = await asyncio.to_thread(
                Store.open, settings.store_url, settings.clickhouse_database
            )
            rate, joined = await pipeline(settings, store, n)
            pipe_rates.append(rate)
            print(
                f"  round {r + 1}: raw {raw_rates[-1]:,.0f} ev/s, pipeline {rate:,.0f} ev/s "
                f"(group join {joined:.1f}s, not counted)"
            )
            store.close()
        raw, pipe = median(raw_rates), median(pipe_rates)
        print(
            f"pipeline throughput, {n:,} events x {rounds}: raw aiokafka {raw:,.0f} ev/s, "
            f"pipeline {pipe:,.0f} ev/s, ratio {pipe / raw:.2f} (medians)"
        )
        return {"raw_eps": raw, "pipeline_eps": pipe, "ratio": pipe / raw}


if __name__ == "__main__":
    asyncio.run(run())

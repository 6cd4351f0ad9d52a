"""The embedded broker's cost per request as its stored batches grow: `python -m bench.broker`.

Tansu 0.6's memory engine keeps each produced batch as one object, and a fetch that finds new
data lists every object of the partition to find its offsets. So what a request costs grows
with the number of batches a partition holds, not with its records: the same records in a few
large batches cost nothing extra.

For each size, two fresh brokers, one partition each: one filled with `stored` one-record
batches (small produce requests, as an API's or a command's), the baseline with as many records
in batches of 500. Then the same workload on each: `produced` one-record produce requests, one at
a time, while a consumer follows the partition's end with a 20 ms fetch wait (as the platform's
consumers do). Printed per broker: produce round trip p50/p99, produce-to-consumer delivery p50,
and the broker's CPU seconds for the workload; and the ratio of small batches to the baseline.
"""

import asyncio
import statistics
import sys
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.common import free_port, percentile
from core.kafka import EmbeddedBroker
from soak.processes import cpu_seconds

TOPIC = "stored"
BASELINE_BATCH = 500
FILLERS = 8


def broker_cpu(pid: int) -> float:
    seconds = cpu_seconds(pid)
    if seconds is None:
        raise RuntimeError(f"the broker (pid {pid}) exited during the benchmark")
    return seconds


async def fill(bootstrap: str, records: int, batch: int) -> None:
    """`records` records in batches of `batch` (1: one produce request per record)."""
    payload = b"x" * 200

    async def one(count: int) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, linger_ms=0 if batch == 1 else 50, max_batch_size=1 << 20
        )
        await producer.start()
        try:
            if batch == 1:
                for _ in range(count):
                    await producer.send_and_wait(TOPIC, payload, partition=0)
            else:
                for start in range(0, count, batch):
                    sent = [
                        await producer.send(TOPIC, payload, partition=0)
                        for _ in range(min(batch, count - start))
                    ]
                    await asyncio.gather(*sent)
        finally:
            await producer.stop()

    if batch == 1:
        await asyncio.gather(*(one(records // FILLERS) for _ in range(FILLERS)))
    else:
        await one(records)


async def workload(bootstrap: str, pid: int, stored: int, produced: int) -> dict[str, float]:
    """The records stored so far have offsets 0..stored-1, so the consumer starts at `stored`
    (the broker answers a ListOffsets for the end with its last batch's base offset plus one:
    1 after a single batch of 500 records)."""
    tp = TopicPartition(TOPIC, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=20)
    await consumer.start()
    consumer.assign([tp])
    consumer.seek(tp, stored)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    sent_at: dict[int, float] = {}
    received_at: dict[int, float] = {}

    async def follow() -> None:
        while len(received_at) < produced:
            got = await consumer.getmany(tp, timeout_ms=1000)
            now = time.perf_counter()
            received_at.update((r.offset, now) for r in got.get(tp, []) if r.offset >= stored)

    following = asyncio.create_task(follow())
    used = broker_cpu(pid)
    round_trips = []
    try:
        for _ in range(produced):
            started = time.perf_counter()
            future = await producer.send(TOPIC, b"y", partition=0)
            metadata = await future
            sent_at[metadata.offset] = started
            round_trips.append((time.perf_counter() - started) * 1000)
        await asyncio.wait_for(following, 60)
    finally:
        following.cancel()
        await producer.stop()
        await consumer.stop()
    return {
        "produce_p50": statistics.median(round_trips),
        "produce_p99": percentile(round_trips, 99),
        "delivery_p50": statistics.median(received_at[o] - sent_at[o] for o in sent_at) * 1000,
        "cpu": broker_cpu(pid) - used,
    }


async def measure(stored: int, batch: int, produced: int) -> dict[str, float]:
    broker = EmbeddedBroker(free_port())
    broker.start()
    try:
        assert broker.process is not None
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(TOPIC, 1, 1)])
        finally:
            await admin.close()
        await fill(broker.bootstrap, stored, batch)
        return await workload(broker.bootstrap, broker.process.pid, stored, produced)
    finally:
        broker.stop()


SIZES = (1_000, 10_000, 20_000, 40_000)


async def run(sizes: tuple[int, ...] = SIZES, produced: int = 500) -> None:
    print(
        f"embedded broker (Tansu 0.6, memory engine): {produced} one-record produce requests"
        " with a consumer following the end, on one partition holding N records stored as N"
        f" one-record batches, beside the same N records in batches of {BASELINE_BATCH}"
    )
    print(
        "| N stored | produce p50 ms (small / baseline) | produce p99 ms | delivery p50 ms"
        " | broker CPU s | CPU ratio |"
    )
    print("|---|---|---|---|---|---|")
    for stored in sizes:
        small = await measure(stored, 1, produced)
        large = await measure(stored, BASELINE_BATCH, produced)
        print(
            f"| {stored:,} | {small['produce_p50']:.2f} / {large['produce_p50']:.2f}"
            f" | {small['produce_p99']:.1f} / {large['produce_p99']:.1f}"
            f" | {small['delivery_p50']:.1f} / {large['delivery_p50']:.1f}"
            f" | {small['cpu']:.2f} / {large['cpu']:.2f}"
            f" | {small['cpu'] / max(large['cpu'], 0.01):.1f}x |",
            flush=True,
        )


if __name__ == "__main__":
    asyncio.run(run(tuple(int(a) for a in sys.argv[1:]) or SIZES))

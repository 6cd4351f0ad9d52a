"""The engagement consumer's decode step on its own: CPU time per event of
`EngagementConsumer.decode` (validate, dedupe, lay out the batch) on polls of generated events,
no broker and no store. CPU time of this process, so other work on the machine does not count:
what `python -m bench pipeline` cannot show on a shared machine.

`python -m bench decode` (or `python -m bench.decode [ROUNDS]`)."""

import asyncio
import gc
import statistics
import sys
import time
from typing import cast

from aiokafka import ConsumerRecord, TopicPartition

from bench.common import make_events
from core.clickhouse import Store
from core.settings import Settings
from streams.agents.engagement import EngagementConsumer

PARTITIONS = 4


def poll(values: list[bytes]) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
    """The values as one poll's records, spread over the partitions."""
    records: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
    for p in range(PARTITIONS):
        records[TopicPartition("engagement-events", p)] = [
            ConsumerRecord("engagement-events", p, i, 0, 0, None, v, None, 0, len(v), ())
            for i, v in enumerate(values[p::PARTITIONS])
        ]
    return records


async def _cpu_us_per_event(values: list[bytes], rounds: int) -> list[float]:
    settings = Settings(_env_file=None, kafka_bootstrap="127.0.0.1:9")
    spent = []
    for _ in range(rounds):
        # A fresh consumer each round: every event is new to its dedupe window, so decoding
        # asks the store nothing (there is none).
        consumer = EngagementConsumer(settings, cast(Store, None))
        records = poll(values)
        gc.collect()
        started = time.process_time()
        decoded = await consumer.decode(records)
        spent.append((time.process_time() - started) / len(values) * 1e6)
        assert len(decoded.events) == len(values), (len(decoded.events), len(values))
    return spent


def run(events: int = 50_000, rounds: int = 15) -> dict[str, float]:
    """A poll of `events` (the consumer's default `FK_SINK_MAX_BATCH` is 50k), `rounds` times."""
    values = make_events(events, seed=7)
    spent = asyncio.run(_cpu_us_per_event(values, rounds))
    us = statistics.median(spent)
    print(
        f"engagement decode, {events:,}-event polls x {rounds}: {us:.2f} CPU us/event "
        f"(median; min {min(spent):.2f}) = {1e6 / us:,.0f} events/s of one core"
    )
    return {"cpu_us_per_event": us}


if __name__ == "__main__":
    run(rounds=int(sys.argv[1]) if len(sys.argv) > 1 else 15)

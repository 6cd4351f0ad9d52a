"""The campaign worker stores batches concurrently and finishes them in order: a command's event
does not wait for the batch before it to be stored, and no stored position is announced (nor
offset committed, nor delivery dispatched) ahead of a batch still being stored."""

import asyncio
from typing import Any

import httpx

from core.changes import STORED
from core.clickhouse import Store
from core.settings import Settings
from streams.app import Orchestrator
from streams.deliveries import Delivery
from tests.conftest import wait_until

Batch = dict[Any, list[Any]]


def positions(batch: Batch) -> list[tuple[str, int, int]]:
    return [(tp.topic, tp.partition, records[-1].offset) for tp, records in batch.items()]


async def test_a_batch_is_stored_while_the_one_before_it_is_and_finishes_after_it(
    client: httpx.AsyncClient, settings: Settings, store: Store
) -> None:
    orchestrator = Orchestrator(settings, store)
    consumer = orchestrator.campaigns
    release_first = asyncio.Event()
    stored: list[Batch] = []
    finished: list[Batch] = []
    real_store, real_finish = consumer.store_batch, consumer.finish

    async def store_batch(batch: Batch) -> list[Delivery]:
        if not stored and not release_first.is_set():
            held = batch
            stored.append({})  # a place for the first batch, filled once it is stored
            await release_first.wait()
            fresh = await real_store(held)
            stored[0] = held
            return fresh
        fresh = await real_store(batch)
        stored.append(batch)
        return fresh

    async def finish(batch: Batch, fresh: list[Delivery]) -> None:
        finished.append(batch)
        await real_finish(batch, fresh)

    consumer.store_batch = store_batch  # type: ignore[method-assign]
    consumer.finish = finish  # type: ignore[method-assign]
    await orchestrator.start()
    try:
        first = await client.post("/campaigns", json={"name": "First", "budget": 1})
        assert first.status_code == 201, first.text
        await wait_until(lambda: len(stored) == 1)
        second = await client.post("/campaigns", json={"name": "Second", "budget": 2})
        assert second.status_code == 201, second.text
        # The second batch is stored while the first is still held...
        await wait_until(lambda: len(stored) == 2)
        assert stored[0] == {}
        later = stored[1]
        # ...and nothing of it is finished or announced before the first is.
        await asyncio.sleep(0.3)
        assert finished == []
        assert not STORED.stored(positions(later))
        release_first.set()
        await wait_until(lambda: len(finished) == 2)
        assert finished == [stored[0], later]
        assert STORED.stored(positions(stored[0]) + positions(later))
        committed = {
            tp: await consumer.consumer.committed(tp)  # type: ignore[union-attr]
            for batch in finished
            for tp in batch
        }
        for batch in finished:
            for tp, records in batch.items():
                assert committed[tp] is not None
                assert committed[tp] >= records[-1].offset + 1
    finally:
        release_first.set()
        await orchestrator.stop()

"""The campaign projection stores two batches at once; each is marked stored (commands waiting
for it answered, offsets committed, deliveries handed on) only after every batch before it."""

import asyncio
from typing import Any

import pytest

from core.clickhouse import Store, StoreError
from core.repositories.webhooks import Delivery
from core.settings import Settings
from streams.agents.campaigns import CampaignConsumer
from streams.agents.webhooks import Dispatcher


class Timed(CampaignConsumer):
    """Batches stand for themselves: each takes its `seconds` (or fails) to store; `marked`
    lists the batches marked stored, in order."""

    def __init__(self, settings: Settings, store: Store) -> None:
        super().__init__(settings, store, Dispatcher(settings, store))
        self.marked: list[int] = []

    async def store_batch(self, batch: Any) -> list[Delivery]:
        await asyncio.sleep(batch["seconds"])
        if batch.get("fails"):
            raise StoreError("the store is gone")
        return []

    def stored(self, batch: Any, fresh: list[Delivery]) -> None:
        self.marked.append(batch["n"])


async def test_a_batch_stored_first_is_marked_after_the_slower_batch_before_it(
    settings: Settings, store: Store
) -> None:
    consumer = Timed(settings, store)
    first = asyncio.create_task(consumer._store_in_order({"n": 1, "seconds": 0.3}, None))
    second = asyncio.create_task(consumer._store_in_order({"n": 2, "seconds": 0.0}, first))
    await asyncio.sleep(0.1)
    assert consumer.marked == []  # the second is stored, but waits for the first
    assert await second
    assert await first
    assert consumer.marked == [1, 2]


async def test_nothing_after_a_batch_given_up_at_stop_is_marked(
    settings: Settings, store: Store
) -> None:
    consumer = Timed(settings, store)
    first = asyncio.create_task(
        consumer._store_in_order({"n": 1, "seconds": 0.1, "fails": True}, None)
    )
    second = asyncio.create_task(consumer._store_in_order({"n": 2, "seconds": 0.0}, first))
    await asyncio.sleep(0.3)  # the first failed once and retries
    assert consumer.marked == []
    await consumer.stop()  # the first then gives up
    assert not await asyncio.wait_for(second, 5)
    assert not await first
    assert consumer.marked == []


async def test_a_cancelled_batch_leaves_the_one_after_it_unmarked(
    settings: Settings, store: Store
) -> None:
    consumer = Timed(settings, store)
    first = asyncio.create_task(consumer._store_in_order({"n": 1, "seconds": 5}, None))
    second = asyncio.create_task(consumer._store_in_order({"n": 2, "seconds": 0.0}, first))
    await asyncio.sleep(0.1)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    assert consumer.marked == []

"""Gathered look-ups and writes: at once when idle, gathered while busy, failures shared."""

import asyncio

import pytest

from core.coalesce import Gathered, GatheredWrites


class Fetches:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None

    async def __call__(self, keys: list[str]) -> dict[str, str]:
        self.calls.append(keys)
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return {k: k.upper() for k in keys if not k.startswith("missing")}


async def test_an_idle_look_up_runs_at_once_and_a_missing_key_is_none() -> None:
    fetch = Fetches()
    gathered: Gathered[str, str] = Gathered(fetch)
    assert await gathered.get("a") == "A"
    assert await gathered.get("missing-b") is None
    assert fetch.calls == [["a"], ["missing-b"]]


async def test_look_ups_made_while_fetches_run_are_gathered_into_the_next() -> None:
    fetch = Fetches()
    fetch.gate.clear()
    gathered: Gathered[str, str] = Gathered(fetch, max_in_flight=1)
    first = asyncio.create_task(gathered.get("a"))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(gathered.get(k)) for k in ("b", "c", "b", "d")]
    await asyncio.sleep(0)
    assert fetch.calls == [["a"]]
    fetch.gate.set()
    assert await first == "A"
    assert await asyncio.gather(*rest) == ["B", "C", "B", "D"]
    assert fetch.calls == [["a"], ["b", "c", "d"]]


async def test_a_failed_fetch_fails_each_of_its_callers_and_the_next_one_runs() -> None:
    fetch = Fetches()
    fetch.fail = RuntimeError("store down")
    gathered: Gathered[str, str] = Gathered(fetch, max_in_flight=1, max_keys=2)
    results = await asyncio.gather(
        *(gathered.get(k) for k in ("a", "b", "c")), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    assert fetch.calls == [["a"], ["b", "c"]]
    fetch.fail = None
    assert await gathered.get("a") == "A"


async def test_a_cancelled_caller_leaves_the_others_their_answer() -> None:
    fetch = Fetches()
    fetch.gate.clear()
    gathered: Gathered[str, str] = Gathered(fetch)
    leaving = asyncio.create_task(gathered.get("a"))
    staying = asyncio.create_task(gathered.get("a"))
    await asyncio.sleep(0)
    leaving.cancel()
    fetch.gate.set()
    assert await staying == "A"
    with pytest.raises(asyncio.CancelledError):
        await leaving


async def test_writes_made_while_one_runs_go_into_the_next_together() -> None:
    stored: list[list[int]] = []
    gate = asyncio.Event()

    async def store(rows: list[int]) -> None:
        stored.append(rows)
        await gate.wait()

    writes: GatheredWrites[int] = GatheredWrites(store, max_rows=5)
    first = asyncio.create_task(writes.write([1]))
    await asyncio.sleep(0)
    later = [asyncio.create_task(writes.write(rows)) for rows in ([2, 3], [4], [5, 6, 7], [8])]
    await asyncio.sleep(0)
    assert stored == [[1]]
    gate.set()
    await asyncio.gather(first, *later)
    assert stored == [[1], [2, 3, 4], [5, 6, 7, 8]]


async def test_a_failed_write_fails_every_writer_gathered_into_it() -> None:
    calls = 0

    async def store(rows: list[int]) -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        if calls == 1:
            raise OSError("disk full")

    writes: GatheredWrites[int] = GatheredWrites(store)
    results = await asyncio.gather(
        writes.write([1]), writes.write([2]), writes.write([3]), return_exceptions=True
    )
    assert isinstance(results[0], OSError)
    assert results[1:] == [None, None]  # gathered into the second call, which succeeded
    assert calls == 2

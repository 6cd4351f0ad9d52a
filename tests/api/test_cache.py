"""The read cache: hits, single-flight misses, stale-while-revalidate, errors not cached."""

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from api.cache import TtlCache


class Loader:
    def __init__(self) -> None:
        self.calls = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self) -> int:
        self.calls += 1
        await self.gate.wait()
        return self.calls


async def test_fresh_entries_are_served_without_loading() -> None:
    cache: TtlCache[int] = TtlCache(ttl=60)
    load = Loader()
    assert await cache.get("k", load) == 1
    assert await cache.get("k", load) == 1
    assert load.calls == 1


async def test_concurrent_misses_share_one_load() -> None:
    cache: TtlCache[int] = TtlCache(ttl=60)
    load = Loader()
    load.gate.clear()
    waiters = [asyncio.create_task(cache.get("k", load)) for _ in range(20)]
    await asyncio.sleep(0)
    load.gate.set()
    assert await asyncio.gather(*waiters) == [1] * 20
    assert load.calls == 1


async def test_stale_entry_is_served_at_once_and_refreshed_in_the_background() -> None:
    cache: TtlCache[int] = TtlCache(ttl=0.0, max_stale=60)
    load = Loader()
    assert await cache.get("k", load) == 1
    load.gate.clear()  # the refresh will hang until released
    assert await asyncio.wait_for(cache.get("k", load), timeout=1) == 1
    load.gate.set()
    for _ in range(100):
        await asyncio.sleep(0)
    assert load.calls == 2
    assert await cache.get("k", load) == 2


async def test_entries_older_than_max_stale_are_loaded_again() -> None:
    cache: TtlCache[int] = TtlCache(ttl=0.0, max_stale=0.0)
    load = Loader()
    assert await cache.get("k", load) == 1
    assert await cache.get("k", load) == 2


async def test_a_failed_load_is_not_cached() -> None:
    cache: TtlCache[int] = TtlCache(ttl=60)
    calls = 0

    async def flaky() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("store down")
        return 7

    with pytest.raises(RuntimeError):
        await cache.get("k", flaky)
    assert await cache.get("k", flaky) == 7


class Version:
    def __init__(self) -> None:
        self.value = 1
        self.calls = 0

    async def __call__(self) -> int:
        self.calls += 1
        return self.value


async def test_a_refresh_with_an_unchanged_version_keeps_the_entry_without_loading() -> None:
    cache: TtlCache[int] = TtlCache(ttl=0.0, max_stale=0.0)  # every get refreshes
    load, version = Loader(), Version()
    assert await cache.get("k", load, version) == 1
    assert await cache.get("k", load, version) == 1
    assert (load.calls, version.calls) == (1, 2)
    version.value = 2
    assert await cache.get("k", load, version) == 2
    assert await cache.get("k", load, version) == 2
    assert load.calls == 2


async def test_a_failing_version_check_is_not_cached() -> None:
    cache: TtlCache[int] = TtlCache(ttl=0.0, max_stale=0.0)
    load = Loader()

    async def broken() -> int:
        raise RuntimeError("store down")

    assert await cache.get("k", load) == 1
    with pytest.raises(RuntimeError):
        await cache.get("k", load, broken)
    assert await cache.get("k", load) == 2


async def test_an_expensive_load_stays_fresh_for_its_cost_over_the_load_share(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr("api.cache.time.monotonic", lambda: clock[0])
    cache: TtlCache[int] = TtlCache(ttl=1.0, max_stale=60, load_share=0.25)
    loads = 0

    def loader(seconds: float) -> Callable[[], Awaitable[int]]:
        async def load() -> int:
            nonlocal loads
            loads += 1
            clock[0] += seconds  # the load's cost
            return loads

        return load

    assert await cache.get("slow", loader(2.0)) == 1
    clock[0] += 5.0  # 7 s after the load started: fresh for 2 s / 0.25 = 8 s, not the 1 s TTL
    assert await cache.get("slow", loader(2.0)) == 1
    await asyncio.sleep(0)
    assert loads == 1
    clock[0] += 2.0  # past 8 s: served stale while one refresh runs
    assert await cache.get("slow", loader(2.0)) == 1
    await asyncio.sleep(0)
    assert loads == 2
    # A quick load keeps the TTL.
    assert await cache.get("quick", loader(0.01)) == 3
    clock[0] += 1.1
    assert await cache.get("quick", loader(0.01)) == 3
    await asyncio.sleep(0)
    assert loads == 4


async def test_refreshes_of_many_keys_together_stay_within_the_refresh_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Keys whose data keeps changing (TTL 0): without a budget each read of a stale key starts
    a refresh; with a budget of a tenth of a thread, 20 s of reads of 10 keys cost about a tenth
    of the time in loads, and every key is refreshed in turn."""
    clock = [1000.0]
    monkeypatch.setattr("api.cache.time.monotonic", lambda: clock[0])

    async def spend(cache: TtlCache[float]) -> tuple[float, float, list[int]]:
        """Fill 10 keys, then read them for 20 s of reads 10 ms apart; the load seconds spent
        after the fill, the time that took, and the keys refreshed."""
        spent = 0.0

        async def load() -> float:
            nonlocal spent
            spent += 0.05
            clock[0] += 0.05  # each load costs 50 ms
            return clock[0]

        first = {key: await cache.get(key, load) for key in range(10)}
        spent, began = 0.0, clock[0]
        for _ in range(2000):
            clock[0] += 0.01
            for key in range(10):
                await cache.get(key, load)
                await asyncio.sleep(0)
        refreshed = [key for key in range(10) if await cache.get(key, load) != first[key]]
        return spent, clock[0] - began, refreshed

    spent, elapsed, refreshed = await spend(
        TtlCache(ttl=0.0, max_stale=60, refresh_budget=0.1, budget_window=30.0)
    )
    # Each of the 10 keys is fresh for 50 ms * 10 / 0.1 = 5 s: a tenth of the run, plus the
    # keys' first turns (before all of them had been read, a turn was shorter).
    assert spent <= 0.1 * elapsed + 10 * 0.05
    assert len(refreshed) == 10, "the budget starved some refreshes"
    unbudgeted, _, _ = await spend(TtlCache(ttl=0.0, max_stale=60))
    assert unbudgeted > 10 * spent  # what no budget costs


async def test_an_entry_fresh_past_max_stale_is_refreshed_in_the_background_not_waited_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 2 s load with a share of 1/100 stays fresh for 200 s, longer than `max_stale` (60 s):
    read after that, it is still answered at once while one refresh runs."""
    clock = [1000.0]
    monkeypatch.setattr("api.cache.time.monotonic", lambda: clock[0])
    cache: TtlCache[int] = TtlCache(ttl=1.0, max_stale=60, load_share=0.01)
    loads = 0

    async def load() -> int:
        nonlocal loads
        loads += 1
        clock[0] += 2.0
        return loads

    assert await cache.get("k", load) == 1
    clock[0] += 210.0  # past its 200 s of freshness, within 59 s more
    assert await cache.get("k", load) == 1  # the stale answer, at once
    await asyncio.sleep(0)
    assert loads == 2  # refreshed in the background
    assert await cache.get("k", load) == 2


async def test_keys_whose_reads_are_forgotten_do_not_lengthen_the_others_turns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Start-up scores scopes nobody may read: once their reads are forgotten, a key read alone
    is refreshed as often as the budget allows one key, not one key in eight."""
    clock = [1000.0]
    monkeypatch.setattr("api.cache.time.monotonic", lambda: clock[0])

    async def load() -> float:
        clock[0] += 0.05
        return clock[0]

    def fresh_for(cache: TtlCache[float], key: object) -> float:
        return cache._entries[key][3]

    warmed: TtlCache[float] = TtlCache(ttl=0.0, max_stale=60, refresh_budget=0.25)
    forgotten: TtlCache[float] = TtlCache(ttl=0.0, max_stale=60, refresh_budget=0.25)
    for cache in (warmed, forgotten):
        for key in range(8):
            await cache.get(key, load)
    forgotten.forget_reads()
    for cache in (warmed, forgotten):
        clock[0] += 1.0
        await cache.get(0, load)  # a read: served stale while a refresh loads
        await cache._loading[0]
    assert fresh_for(warmed, 0) == pytest.approx(0.05 * 8 / 0.25)
    assert fresh_for(forgotten, 0) == pytest.approx(0.05 / 0.25)

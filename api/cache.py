"""A small in-memory read-through cache: TTL, single-flight loading, stale-while-revalidate.

It sits in front of the store for hot reads. A fresh entry is served from memory; an entry past
its TTL (but younger than `max_stale`) is still served at once while one background load
refreshes it, so under load no request waits for the store after the first; concurrent misses
for the same key share one load. Answers are at most `ttl` + one load old.

A caller may pass a cheap `version` of the data behind a key (for the store: its parts'
metadata): a refresh first asks for it and, when it equals the version the entry was loaded at,
keeps the entry (as if just loaded) instead of running the expensive load again.

With `load_share`, an entry whose load was expensive stays fresh for longer: at least
`load_seconds / load_share`, so reloading one key while its data keeps changing takes at most
that share of one thread's time (a 1.5 s scoring with a share of 1/4 is redone every 6 s at
most, a 30 ms one every `ttl`).

With `refresh_budget`, the refreshes of all keys read within `budget_window` together take
about that share of one thread's time: each of those N keys stays fresh for at least its load
time * N / budget, so each gets an equal turn and many cheap keys (a ranking per campaign)
cannot add up to more than the budget. A miss always loads.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import structlog

from core import metrics

V = TypeVar("V")

log = structlog.get_logger(__name__)

# Bound once: resolving label values costs more than the increment on the hottest path.
_HIT, _STALE, _MISS = (metrics.API_CACHE.labels(r) for r in ("hit", "stale", "miss"))


class TtlCache(Generic[V]):
    def __init__(
        self,
        ttl: float,
        *,
        max_stale: float = 30.0,
        max_entries: int = 50_000,
        load_share: float | None = None,
        refresh_budget: float | None = None,
        budget_window: float = 30.0,
    ) -> None:
        self.ttl = ttl
        self.max_stale = max_stale
        self.max_entries = max_entries
        self.load_share = load_share
        self.refresh_budget = refresh_budget
        self.budget_window = budget_window
        self._read_at: dict[object, float] = {}
        """With a budget: when each key was last read (those of `budget_window` share it)."""
        self._pruned = 0.0
        # key -> (loaded_at, value, version of the data it was loaded from, fresh for seconds)
        self._entries: dict[object, tuple[float, V, Hashable, float]] = {}
        self._loading: dict[object, asyncio.Task[V]] = {}

    async def get(
        self,
        key: object,
        load: Callable[[], Awaitable[V]],
        version: Callable[[], Awaitable[Hashable]] | None = None,
        cost: Callable[[V], float] | None = None,
    ) -> V:
        """The value for `key`, loading it with `load` when missing or too old. With `version`,
        a refresh whose version equals the entry's keeps the entry instead of loading. With
        `cost`, a loaded value says what its load costs the share and budget (default: the
        load's duration), for a value that paces its own expensive part."""
        now = time.monotonic()
        if self.refresh_budget is not None:
            self._read_at[key] = now
        entry = self._entries.get(key)
        if entry is not None:
            age = now - entry[0]
            if age < entry[3]:
                _HIT.inc()
                return entry[1]
            # An entry kept fresh past the TTL (an expensive load, the refresh budget) may be
            # served stale as long past its freshness as a TTL-fresh one: its next read then
            # refreshes it in the background instead of waiting for a load.
            if age < max(self.max_stale, entry[3] + self.max_stale - self.ttl):
                _STALE.inc()
                self._refresh(key, load, version, cost)
                return entry[1]
        _MISS.inc()
        return await asyncio.shield(self._refresh(key, load, version, cost))

    def _refresh(
        self,
        key: object,
        load: Callable[[], Awaitable[V]],
        version: Callable[[], Awaitable[Hashable]] | None,
        cost: Callable[[V], float] | None = None,
    ) -> "asyncio.Task[V]":
        task = self._loading.get(key)
        if task is None:
            task = asyncio.create_task(self._load(key, load, version, cost))
            self._loading[key] = task
        return task

    async def _load(
        self,
        key: object,
        load: Callable[[], Awaitable[V]],
        version: Callable[[], Awaitable[Hashable]] | None,
        cost: Callable[[V], float] | None = None,
    ) -> V:
        try:
            loaded_at = time.monotonic()
            # Asked before loading: a change during the load makes the next refresh load again.
            current = await version() if version is not None else None
            entry = self._entries.get(key)
            if version is not None and entry is not None and entry[2] == current:
                self._entries[key] = (loaded_at, entry[1], current, entry[3])
                return entry[1]
            value = await load()
            done = time.monotonic()
            spent = done - loaded_at if cost is None else cost(value)
            fresh_for = self.ttl
            if self.load_share:
                fresh_for = max(fresh_for, spent / self.load_share)
            if self.refresh_budget:
                turn = spent * self._keys_read(done) / self.refresh_budget
                fresh_for = max(fresh_for, turn)
            if len(self._entries) >= self.max_entries:
                self._evict(done)
            self._entries[key] = (loaded_at, value, current, fresh_for)
            return value
        finally:
            self._loading.pop(key, None)

    def forget_reads(self) -> None:
        """Keys read so far no longer share the refresh budget (until read again): for loads
        that were not reads, such as start-up's scoring of scopes nobody may read."""
        self._read_at.clear()

    def _keys_read(self, now: float) -> int:
        """How many keys were read within `budget_window` (pruned at most once a second)."""
        if now - self._pruned >= 1.0:
            self._pruned = now
            horizon = now - self.budget_window
            self._read_at = {k: t for k, t in self._read_at.items() if t >= horizon}
        return max(1, len(self._read_at))

    def _evict(self, now: float) -> None:
        expired = [k for k, (at, *_) in self._entries.items() if now - at >= self.max_stale]
        for k in expired:
            del self._entries[k]
        if len(self._entries) >= self.max_entries:
            self._entries.clear()

    def peek(self, key: object) -> V | None:
        """The value held for `key`, however old, without loading or counting a read."""
        entry = self._entries.get(key)
        return entry[1] if entry is not None else None

    def forget(self, matches: Callable[[object], bool]) -> int:
        """Drop the entries whose key `matches` (their next read loads); how many were held."""
        keys = [key for key in self._entries if matches(key)]
        for key in keys:
            del self._entries[key]
        return len(keys)

    def clear(self) -> None:
        self._entries.clear()

"""A small in-memory read-through cache: TTL, single-flight loading, stale-while-revalidate.

It sits in front of the store for hot reads. A fresh entry is served from memory; an entry past
its TTL (but younger than `max_stale`) is still served at once while one background load
refreshes it, so under load no request waits for the store after the first; concurrent misses
for the same key share one load. Answers are at most `ttl` + one load old.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import structlog

from core import metrics

V = TypeVar("V")

log = structlog.get_logger(__name__)

# Bound once: resolving label values costs more than the increment on the hottest path.
_HIT, _STALE, _MISS = (metrics.API_CACHE.labels(r) for r in ("hit", "stale", "miss"))


class TtlCache(Generic[V]):
    def __init__(self, ttl: float, *, max_stale: float = 30.0, max_entries: int = 50_000) -> None:
        self.ttl = ttl
        self.max_stale = max_stale
        self.max_entries = max_entries
        self._entries: dict[object, tuple[float, V]] = {}  # key -> (loaded_at, value)
        self._loading: dict[object, asyncio.Task[V]] = {}

    async def get(self, key: object, load: Callable[[], Awaitable[V]]) -> V:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None:
            age = now - entry[0]
            if age < self.ttl:
                _HIT.inc()
                return entry[1]
            if age < self.max_stale:
                _STALE.inc()
                self._refresh(key, load)
                return entry[1]
        _MISS.inc()
        return await asyncio.shield(self._refresh(key, load))

    def _refresh(self, key: object, load: Callable[[], Awaitable[V]]) -> "asyncio.Task[V]":
        task = self._loading.get(key)
        if task is None:
            task = asyncio.create_task(self._load(key, load))
            self._loading[key] = task
        return task

    async def _load(self, key: object, load: Callable[[], Awaitable[V]]) -> V:
        try:
            loaded_at = time.monotonic()
            value = await load()
            if len(self._entries) >= self.max_entries:
                self._evict(time.monotonic())
            self._entries[key] = (loaded_at, value)
            return value
        finally:
            self._loading.pop(key, None)

    def _evict(self, now: float) -> None:
        expired = [k for k, (at, _) in self._entries.items() if now - at >= self.max_stale]
        for k in expired:
            del self._entries[k]
        if len(self._entries) >= self.max_entries:
            self._entries.clear()

    def clear(self) -> None:
        self._entries.clear()

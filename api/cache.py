"""A small in-memory read-through cache with a TTL and single-flight loading.

It sits in front of the store for hot reads: under load one request per key and TTL reaches the
store, concurrent misses for the same key share one load, and answers are at most `ttl` old.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from core import metrics

V = TypeVar("V")


class TtlCache(Generic[V]):
    def __init__(self, ttl: float, max_entries: int = 50_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[object, tuple[float, V]] = {}
        self._loading: dict[object, asyncio.Future[V]] = {}

    async def get(self, key: object, load: Callable[[], Awaitable[V]]) -> V:
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            metrics.API_CACHE.labels("hit").inc()
            return hit[1]
        pending = self._loading.get(key)
        if pending is not None:
            metrics.API_CACHE.labels("shared").inc()
            return await asyncio.shield(pending)
        metrics.API_CACHE.labels("miss").inc()
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            value = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters (if any) re-raise it themselves
            raise
        finally:
            self._loading.pop(key, None)
        if len(self._entries) >= self.max_entries:
            self._evict(now)
        self._entries[key] = (time.monotonic() + self.ttl, value)
        future.set_result(value)
        return value

    def _evict(self, now: float) -> None:
        expired = [k for k, (exp, _) in self._entries.items() if exp <= now]
        for k in expired:
            del self._entries[k]
        if len(self._entries) >= self.max_entries:
            self._entries.clear()

    def clear(self) -> None:
        self._entries.clear()

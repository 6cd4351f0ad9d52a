"""Gathering concurrent store calls into one: point reads by id and small inserts.

A store call has a fixed cost (parsing, planning, a part per insert) that dwarfs what one id or
one row adds. Under load many callers want the same kind of call at once: while a call runs,
the callers that arrive are gathered, and the next call serves them all. An idle platform pays
nothing extra (the first caller runs at once); a busy one makes fewer, larger calls.
"""

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
R = TypeVar("R")


def _fail(futures: "Iterable[asyncio.Future[Any]]", exc: BaseException) -> None:
    """Every waiter of a failed call gets its failure; nothing is swallowed. Each exception is
    marked retrieved here too, since a waiter may have gone away (cancelled)."""
    for future in futures:
        if not future.done():
            future.set_exception(exc)
            future.exception()


class Gathered(Generic[K, V]):
    """Look-ups by key, gathered: `get(key)` resolves with `fetch(keys)[key]` (None when the
    answer has no such key), where one `fetch` serves every key asked for while the calls
    before it ran. At most `max_in_flight` fetches run at once, each of at most `max_keys`."""

    def __init__(
        self,
        fetch: Callable[[list[K]], Awaitable[Mapping[K, V]]],
        *,
        max_in_flight: int = 2,
        max_keys: int = 500,
    ) -> None:
        self._fetch = fetch
        self._max_in_flight = max_in_flight
        self._max_keys = max_keys
        self._waiting: dict[K, asyncio.Future[V | None]] = {}
        self._in_flight = 0

    async def get(self, key: K) -> V | None:
        future = self._waiting.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._waiting[key] = future
            self._start()
        return await asyncio.shield(future)

    def _start(self) -> None:
        while self._waiting and self._in_flight < self._max_in_flight:
            keys = list(self._waiting)[: self._max_keys]
            futures = [self._waiting.pop(k) for k in keys]
            self._in_flight += 1
            task = asyncio.ensure_future(self._fetch_into(keys, futures))
            task.add_done_callback(self._finished)

    def _finished(self, _: "asyncio.Future[None]") -> None:
        self._in_flight -= 1
        self._start()

    async def _fetch_into(self, keys: list[K], futures: list["asyncio.Future[V | None]"]) -> None:
        try:
            found = await self._fetch(keys)
        except BaseException as exc:
            _fail(futures, exc)
            if not isinstance(exc, Exception):
                raise
            return
        for key, future in zip(keys, futures, strict=True):
            if not future.done():
                future.set_result(found.get(key))


class GatheredWrites(Generic[R]):
    """Writes of rows, gathered: `write(rows)` returns once a `store(rows)` call that included
    them has returned (or raises what it raised). Rows given while `max_in_flight` calls run
    go into the next call together, up to `max_rows` a call."""

    def __init__(
        self,
        store: Callable[[list[R]], Awaitable[None]],
        *,
        max_in_flight: int = 1,
        max_rows: int = 10_000,
    ) -> None:
        self._store = store
        self._max_in_flight = max_in_flight
        self._max_rows = max_rows
        self._waiting: list[tuple[list[R], asyncio.Future[None]]] = []
        self._in_flight = 0

    async def write(self, rows: Iterable[R]) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((list(rows), future))
        self._start()
        await asyncio.shield(future)

    def _start(self) -> None:
        while self._waiting and self._in_flight < self._max_in_flight:
            taken: list[tuple[list[R], asyncio.Future[None]]] = []
            count = 0
            while self._waiting and (
                not taken or count + len(self._waiting[0][0]) <= self._max_rows
            ):
                rows, future = self._waiting.pop(0)
                taken.append((rows, future))
                count += len(rows)
            self._in_flight += 1
            task = asyncio.ensure_future(self._store_taken(taken))
            task.add_done_callback(self._finished)

    def _finished(self, _: "asyncio.Future[None]") -> None:
        self._in_flight -= 1
        self._start()

    async def _store_taken(self, taken: list[tuple[list[R], "asyncio.Future[None]"]]) -> None:
        try:
            await self._store([row for rows, _ in taken for row in rows])
        except BaseException as exc:
            _fail([future for _, future in taken], exc)
            if not isinstance(exc, Exception):
                raise
            return
        for _, future in taken:
            if not future.done():
                future.set_result(None)

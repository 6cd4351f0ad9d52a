"""Where uploaded CSV loads run: one thread of their own (loads in a process run one at a time
anyway), so an upload never holds a thread of the default executor that the stream's sink and
the API's other work share, and only a bounded number of uploads wait for that thread."""

import asyncio
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class QueueFull(Exception):
    """No room for another upload; `retry_after` is a guess, in seconds, of when there will be.
    `everyone` tells a full queue (all organisations wait) from one organisation's full share."""

    def __init__(self, retry_after: int, *, everyone: bool) -> None:
        super().__init__("queue full" if everyone else "organisation's share full")
        self.retry_after = retry_after
        self.everyone = everyone


class LoadQueue:
    """One load at a time on the queue's own thread; besides it at most `max_waiting` uploads
    wait, and one organisation holds at most half of the places (rounded up), so another's
    upload finds room. Counts are exact within the process (its uploads share one queue)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._admitted: dict[str, int] = {}
        self._seconds = 1.0
        """How long the last job took: what the next waiting ones are guessed to take."""

    @property
    def admitted(self) -> int:
        """Jobs running or waiting."""
        with self._lock:
            return sum(self._admitted.values())

    async def run(self, org: str, max_waiting: int, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on the queue's thread once the jobs before it are done; raise
        `QueueFull` at once when the queue or `org`'s share of it is full. A caller cancelled
        while its job waits takes the job out of the queue."""
        places = 1 + max_waiting
        with self._lock:
            admitted = sum(self._admitted.values())
            mine = self._admitted.get(org, 0)
            if admitted >= places or mine >= math.ceil(places / 2):
                retry_after = min(600, max(1, math.ceil(admitted * self._seconds)))
                raise QueueFull(retry_after, everyone=admitted >= places)
            self._admitted[org] = mine + 1
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="etl")
            job = self._executor.submit(self._timed, fn, *args)
        job.add_done_callback(lambda _: self._release(org))
        return await asyncio.wrap_future(job)

    async def run_housekeeping(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on the queue's thread between loads, outside the admission count
        (the operator's own upkeep, such as removing expired loads)."""
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="etl")
            job = self._executor.submit(fn, *args)
        return await asyncio.wrap_future(job)

    def _timed(self, fn: Callable[..., T], *args: Any) -> T:
        started = time.monotonic()
        try:
            return fn(*args)
        finally:
            self._seconds = time.monotonic() - started

    def _release(self, org: str) -> None:
        with self._lock:
            left = self._admitted[org] - 1
            if left:
                self._admitted[org] = left
            else:
                del self._admitted[org]


UPLOADS = LoadQueue()
"""The process's queue: its loads run one at a time whichever app or loop submits them."""

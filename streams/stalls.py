"""A consumer that reads nothing while records wait for it: noticed, reported and reconnected.

Each of our aiokafka consumers (engagement events, campaign events) holds a `StallWatch`: the
consumer's loop calls `read()` whenever a poll returns records, and the watch's `run()` looks
every few seconds. Nothing read for `stall_seconds` while one of its partitions (not paused) has
records it has not read, or while the broker does not answer how far behind it is, makes the
consumer stalled; so does one fetch request unanswered for `fetch_seconds`. A stalled consumer
says so once (`<name>.stalled`, with its group and fetch state and where its
tasks wait), sets `fk_pipeline_consumer_stalled`, and drops its connections to the broker. That
fails whatever request hangs on them (a fetch or a commit whose answer never comes would
otherwise wait out the client's 40 s request timeout, and the API's writers with it) and the
client reconnects. Again every `stall_seconds` while it stays stalled.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.conn import CloseReason

from core import metrics

log = structlog.get_logger(__name__)

STALL_SECONDS = 30.0
"""No record read for this long while an assigned partition has unread records: stalled."""
FETCH_SECONDS = 5.0
"""One fetch request unanswered for this long is hung: our consumers ask the broker to answer
within 20 ms (`fetch_max_wait_ms`). Seen on the embedded broker under load (BENCHMARKS.md)."""
WATCH_EVERY_SECONDS = 2.5


def awaiting(task: "asyncio.Future[Any] | None") -> list[str]:
    """Where a task is suspended: its coroutine chain, outermost first, ending in what it
    awaits (asyncio's own `get_stack` stops at the outermost frame of a suspended task)."""
    if task is None:
        return []
    if task.done():
        return ["done"]
    if not isinstance(task, asyncio.Task):
        return [repr(task)[:200]]
    chain: list[str] = []
    awaited: Any = task.get_coro()
    while awaited is not None and len(chain) < 40:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is None:
            chain.append(repr(awaited)[:200])
            break
        chain.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return chain


class StallWatch:
    """`consumer` is read at every look (a service creates its consumer on start); `details`
    adds the owner's own state (batches in flight, its tasks) to a stall report."""

    def __init__(
        self,
        name: str,
        consumer: Callable[[], AIOKafkaConsumer | None],
        details: Callable[[], dict[str, Any]] = dict,
    ) -> None:
        self.name = name
        self.consumer = consumer
        self.details = details
        self.stall_seconds = STALL_SECONDS
        self.fetch_seconds = FETCH_SECONDS
        self.watch_every = WATCH_EVERY_SECONDS
        self._fetches: dict[asyncio.Future[Any], float] = {}
        """The fetch requests in flight at the last look, and when each was first seen."""
        self.read_at = time.monotonic()
        """When a poll last returned records (or the watch began)."""
        self.stalled = False
        self._stalled_gauge = metrics.CONSUMER_STALLED.labels(name)
        self._reconnects = metrics.CONSUMER_RECONNECTS.labels(name)

    def read(self) -> None:
        self.read_at = time.monotonic()

    async def run(
        self, stopping: Callable[[], bool], sleep: Callable[[float], Awaitable[Any]]
    ) -> None:
        """Look every `watch_every` seconds until `stopping()`."""
        reconnected_at = 0.0
        while not stopping():
            await sleep(self.watch_every)
            if self.consumer() is None or stopping():
                continue
            now = time.monotonic()
            idle = now - self.read_at
            hung = self._hung_fetch(now)
            if idle < self.stall_seconds and not hung:
                if self.stalled:
                    self.stalled = False
                    self._stalled_gauge.set(0)
                    log.warning(f"{self.name}.resumed")
                continue
            if self.stalled and now - reconnected_at < min(self.stall_seconds, self.fetch_seconds):
                continue
            state = await self.report()
            state["hung_fetch"] = hung
            if not (hung or state["unread"] or state["error"]):
                continue
            if not self.stalled:
                self.stalled = True
                self._stalled_gauge.set(1)
                log.warning(f"{self.name}.stalled", idle_seconds=round(idle), **state)
            reconnected_at = time.monotonic()
            dropped = self.reconnect()
            self._reconnects.inc()
            log.warning(f"{self.name}.reconnected", connections=dropped, idle_seconds=round(idle))

    def _hung_fetch(self, now: float) -> bool:
        """Whether a fetch request seen at earlier looks is still unanswered `fetch_seconds`
        after it was first seen."""
        fetcher = getattr(self.consumer(), "_fetcher", None)
        pending = [t for t in list(getattr(fetcher, "_pending_tasks", ())) if not t.done()]
        self._fetches = {t: self._fetches.get(t, now) for t in pending}
        return any(now - seen >= self.fetch_seconds for seen in self._fetches.values())

    def reconnect(self) -> int:
        """Close the consumer's connections to the broker (their requests in flight fail, and
        are retried on new ones); how many were open."""
        conns = list(getattr(getattr(self.consumer(), "_client", None), "_conns", {}).values())
        for conn in conns:
            conn.close(reason=CloseReason.CONNECTION_BROKEN)
        return len(conns)

    async def report(self) -> dict[str, Any]:
        """The consumer's group and fetch state, and where its tasks wait (for a stall report)."""
        consumer = self.consumer()
        assert consumer is not None
        assigned = sorted(consumer.assignment())
        client = getattr(consumer, "_client", None)
        fetcher = getattr(consumer, "_fetcher", None)
        # Taken before any request below: a request may change what the fetcher waits for.
        local: dict[str, Any] = {
            "highwater": {tp.partition: consumer.highwater(tp) for tp in assigned}
        }
        if fetcher is not None:
            local |= {
                "fetches_in_flight": sorted(getattr(fetcher, "_in_flight", ())),
                "buffered": sorted(tp.partition for tp in getattr(fetcher, "_records", {})),
                "fetch_routine": awaiting(getattr(fetcher, "_fetch_task", None)),
                "fetches": [awaiting(t) for t in list(getattr(fetcher, "_pending_tasks", ()))],
            }
        if client is not None:
            local["leaders"] = {
                tp.partition: client.cluster.leader_for_partition(tp) for tp in assigned
            }
            local["connections"] = {
                str(key): (conn.connected(), len(getattr(conn, "_requests", ())))
                for key, conn in list(getattr(client, "_conns", {}).items())
            }
        local |= self.details()
        positions: dict[int, int | None] = {}
        ends: dict[int, int] = {}
        error = None
        try:
            for tp in assigned:
                positions[tp.partition] = await asyncio.wait_for(consumer.position(tp), 2)
            offsets = await asyncio.wait_for(consumer.end_offsets(assigned), 5)
            ends = {tp.partition: end for tp, end in offsets.items()}
        except Exception as exc:  # a report, whatever the client does
            error = repr(exc)
        paused = {tp.partition for tp in consumer.paused()}
        unread = {
            p: end - (positions.get(p) or 0)
            for p, end in ends.items()
            if end > (positions.get(p) or 0) and p not in paused
        }
        coordinator = getattr(consumer, "_coordinator", None)
        return {
            "assigned": [tp.partition for tp in assigned],
            "paused": sorted(paused),
            "positions": positions,
            "end_offsets": ends,
            "unread": unread,
            "error": error,
            "coordinator": getattr(coordinator, "coordinator_id", None),
            "generation": getattr(coordinator, "generation", None),
            "member": getattr(coordinator, "member_id", None),
            **local,
        }

"""Process-local counts of writes to the events and campaigns tables.

In the embedded platform the worker and the API share one process, so the API can tell whether
anything was written since it cached an answer without asking the store: the engagement sink
bumps one count after every insert, every write of campaign rows the other. A standalone API
(`fk api`) never sees them move, so they are only consulted when the caller knows the writers
live in the same process.
"""

import asyncio
from collections import deque
from collections.abc import Iterable, Mapping


class LocalChanges:
    """A count of writes, and for the latest `_KEPT` of them which (organisation, id) pairs each
    touched, when its writer says (the engagement sink: the campaigns of its batch)."""

    _KEPT = 256

    def __init__(self) -> None:
        self.version = 0
        self._touched: deque[tuple[int, frozenset[tuple[str, str]] | None]] = deque(
            maxlen=self._KEPT
        )

    def bump(self, touched: Iterable[tuple[str, str]] | None = None) -> None:
        """One more write; `touched`: the (organisation, id) pairs it changed, None when it
        may have changed anything (a CSV load also writes creator attributes)."""
        self.version += 1
        self._touched.append((self.version, None if touched is None else frozenset(touched)))

    def touched_since(self, version: int, org: str) -> set[str] | None:
        """The ids of `org` that the writes after `version` touched; None when that is not
        known (a write that may have changed anything, or one older than those kept)."""
        found: set[str] = set()
        if version >= self.version:
            return found
        if not self._touched or self._touched[0][0] > version + 1:
            return None
        for written, touched in reversed(self._touched):
            if written <= version:
                break
            if touched is None:
                return None
            found.update(key for owner, key in touched if owner == org)
        return found

    async def current(self) -> int:
        """The version as the read cache asks for it (an awaitable, like a store query)."""
        return self.version


ENGAGEMENT_WRITES = LocalChanges()
"""Bumped by every write of engagement rows: the stream's sink (with the campaigns of its batch)
and batch loads (which also write the creators table)."""
ENDPOINT_WRITES = LocalChanges()
"""Bumped by every write of webhook endpoint rows (the API's changes, the dispatcher's
disabling)."""
CAMPAIGN_WRITES = LocalChanges()
"""Bumped by every write of campaign rows (the API's ledger and the worker's projection)."""


async def engagement_and_campaign_writes() -> tuple[int, int]:
    """Both counts: what top-performer answers depend on (events, creators, campaign owners)."""
    return ENGAGEMENT_WRITES.version, CAMPAIGN_WRITES.version


class StoredProgress:
    """Per (topic, partition), the offset below which every record's effects are in the store,
    as the in-process workers report it after each batch. The embedded broker keeps messages in
    memory only, so the embedded platform acknowledges a write once its records are stored here,
    not merely once the broker has them (a kill -9 would take the broker's copy with it)."""

    def __init__(self) -> None:
        self._stored: dict[tuple[str, int], int] = {}
        self._waiters: list[asyncio.Future[None]] = []

    def advance(self, topic: str, offsets: Mapping[int, int]) -> None:
        """Records of `topic` before `offsets[partition]` have their effects stored."""
        for partition, offset in offsets.items():
            key = (topic, partition)
            if offset > self._stored.get(key, 0):
                self._stored[key] = offset
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def stored(self, records: Iterable[tuple[str, int, int]]) -> bool:
        return all(self._stored.get((t, p), 0) > offset for t, p, offset in records)

    async def wait(self, records: Iterable[tuple[str, int, int]], timeout: float) -> bool:
        """True once every (topic, partition, offset) is stored; False after `timeout` s."""
        wanted = list(records)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.stored(wanted):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                return False
        return True


STORED = StoredProgress()
"""Advanced by the engagement and campaign consumers of this process."""

"""Process-local counts of writes to the events and campaigns tables.

In the embedded platform the worker and the API share one process, so the API can tell whether
anything was written since it cached an answer without asking the store: the engagement sink
bumps one count after every insert, every write of campaign rows the other. A standalone API
(`fk api`) never sees them move, so they are only consulted when the caller knows the writers
live in the same process.
"""


class LocalChanges:
    def __init__(self) -> None:
        self.version = 0

    def bump(self) -> None:
        self.version += 1

    async def current(self) -> int:
        """The version as the read cache asks for it (an awaitable, like a store query)."""
        return self.version


ENGAGEMENT_WRITES = LocalChanges()
"""Bumped by every write of engagement rows: the stream's sink and batch loads (which also write
the creators table)."""
CAMPAIGN_WRITES = LocalChanges()
"""Bumped by every write of campaign rows (the API's ledger and the worker's projection)."""


async def engagement_and_campaign_writes() -> tuple[int, int]:
    """Both counts: what top-performer answers depend on (events, creators, campaign owners)."""
    return ENGAGEMENT_WRITES.version, CAMPAIGN_WRITES.version

"""A process-local count of writes to the events table.

In the embedded platform the worker and the API share one process, so the API can tell whether
anything was written since it cached an answer without asking the store: the engagement sink
bumps this after every insert. A standalone API (`fk api`) never sees it move, so it is only
consulted when the caller knows the writers live in the same process.
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

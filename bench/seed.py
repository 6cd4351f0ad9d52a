"""Fill a store with N engagement events straight through the sink's insert path (no broker):
`python -m bench.seed CHDB_URL DATABASE N CAMPAIGNS`. Runs in its own process because chDB
allows one data path per process."""

import random
import sys
import time

from core.clickhouse import Store
from streams.transforms import EVENT_COLUMNS

CHUNK = 200_000


def seed(url: str, database: str, n: int, campaigns: int, creators: int = 50_000) -> None:
    store = Store.open(url, database)
    rng = random.Random(3)
    now_ms = int(time.time() * 1000)
    platforms = ["instagram", "tiktok", "youtube", "x", "facebook"]
    for start in range(0, n, CHUNK):
        size = min(CHUNK, n - start)
        columns: list[list[object]] = [
            [f"seed-{start + i}" for i in range(size)],
            [now_ms - rng.randint(0, 72 * 3_600_000) for _ in range(size)],
            [f"inf_{rng.randrange(creators)}" for _ in range(size)],
            [f"cmp_{rng.randrange(campaigns)}" for _ in range(size)],
            [rng.choice(platforms) for _ in range(size)],
            [""] * size,
            [rng.randint(1, 5000) for _ in range(size)],
            [rng.randint(0, 300) for _ in range(size)],
            [rng.randint(0, 30) for _ in range(size)],
            [rng.randint(0, 20) for _ in range(size)],
            [0] * size,
            [None] * size,
            [[] for _ in range(size)],
            ["seed"] * size,
            [0] * size,
            list(range(start, start + size)),
        ]
        store.insert_sync("engagement_events", columns, EVENT_COLUMNS)
    store.command_sync("OPTIMIZE TABLE engagement_events FINAL")
    store.close()


if __name__ == "__main__":
    seed(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))

"""Fill a store with N engagement events straight through the sink's insert path (no broker):
`python -m bench.seed CHDB_URL DATABASE N CAMPAIGNS [POSTS_PER_CREATOR]`. Runs in its own process
because chDB allows one data path per process.

Without POSTS_PER_CREATOR every event names no post (each is a post of its own, the worst case
for rankings); with it, events are engagement increments on that many posts per creator, as a
platform's post-level stream sends them."""

import random
import sys
import time

from core.clickhouse import Store
from core.repositories.engagement import insert_event_columns_sync, merge_events_sync
from schemas.events import PLATFORMS
from streams.transforms import EVENT_COLUMNS

CHUNK = 200_000
ORG = "bench"
"""The organisation of every seeded event (the benchmarks' platform runs with it as
`FK_DEFAULT_ORG` and reads with its token)."""


def seed(
    url: str, database: str, n: int, campaigns: int, creators: int = 50_000, posts: int = 0
) -> None:
    store = Store.open(url, database)
    rng = random.Random(3)
    now_ms = int(time.time() * 1000)
    for start in range(0, n, CHUNK):
        size = min(CHUNK, n - start)
        who = [rng.randrange(creators) for _ in range(size)]
        if posts:
            # A post belongs to one creator, campaign and platform, as a real post does.
            post = [rng.randrange(posts) for _ in range(size)]
            campaign_of = [
                (c * 7919 + p * 104_729) % campaigns for c, p in zip(who, post, strict=True)
            ]
            platform_of = [
                PLATFORMS[(c + p) % len(PLATFORMS)] for c, p in zip(who, post, strict=True)
            ]
            post_ids = [f"inf_{c}-p{p}" for c, p in zip(who, post, strict=True)]
        else:
            campaign_of = [rng.randrange(campaigns) for _ in range(size)]
            platform_of = [rng.choice(PLATFORMS) for _ in range(size)]
            post_ids = [""] * size
        columns: list[list[object]] = [
            [f"seed-{start + i}" for i in range(size)],
            [now_ms - rng.randint(0, 72 * 3_600_000) for _ in range(size)],
            [f"inf_{c}" for c in who],
            [f"cmp_{c}" for c in campaign_of],
            list(platform_of),
            list(post_ids),
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
            [ORG] * size,
        ]
        insert_event_columns_sync(store, columns, EVENT_COLUMNS)
    merge_events_sync(store)
    store.close()


if __name__ == "__main__":
    seed(
        sys.argv[1],
        sys.argv[2],
        int(sys.argv[3]),
        int(sys.argv[4]),
        posts=int(sys.argv[5]) if len(sys.argv) > 5 else 0,
    )

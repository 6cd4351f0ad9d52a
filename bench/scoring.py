"""A scoring's cost in the store as posts grow: `python -m bench.scoring [posts] [rounds]`.

Each scope's ranking query (one campaign, some campaigns, every campaign in one pass, the whole
organisation) runs once in a fresh process on a store seeded with `posts` posts (1,000 creators,
200 campaigns, five platforms; in ten parts, as a stream leaves them unmerged), beside a plain
read of the same rows (`SELECT` of every post's sums: the floor any scoring pays). Printed per
query: seconds and the process's peak resident memory above what it held before the query
(`ru_maxrss`: the store engine's working memory plus the Arrow answer), medians of `rounds`.
"""

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CAMPAIGNS = 200
CREATORS = 1000
PARTS = 10
QUERIES: dict[str, Callable[[ModuleType], str]] = {
    "read every post (floor)": lambda q: "",
    "one campaign": lambda q: q._TOP_SQL["campaign"],
    "50 campaigns": lambda q: q._SOME_CAMPAIGNS_SQL,
    "every campaign (one pass)": lambda q: q._CAMPAIGNS_SQL,
    "organisation": lambda q: q._TOP_SQL["organisation"],
}
"""Each measured query's SQL, taken from `scoring.queries` once a child has imported it (the
parent process does not load the store engine); an empty one is the floor, a plain read."""


def seed(path: str, posts: int) -> None:
    from core.clickhouse import Store
    from scoring.queries import seed_posts_sync

    store = Store.open(f"chdb://{path}", "bench")
    seed_posts_sync(
        store, "bench", posts=max(PARTS, posts), campaigns=CAMPAIGNS, creators=CREATORS, parts=PARTS
    )
    store.close()


def child(path: str, name: str) -> None:
    """One query in this fresh process: its seconds and peak memory above the start."""
    from core.clickhouse import Store
    from scoring import queries
    from scoring.engagement import POST_CLIP

    store = Store.open(f"chdb://{path}", "bench", migrate=False)
    store.query_rows_sync("SELECT 1")  # the engine is up before the query is measured
    sql = QUERIES[name](queries)
    parameters: dict[str, Any] = {
        "org": "bench",
        "campaign": "cmp_7",
        "campaigns": [f"cmp_{i}" for i in range(0, CAMPAIGNS, 4)],
        "platform": "",
        "category": "",
        "clip": POST_CLIP,
        "limit": 10**7,
    }
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    if not sql:
        queries.read_posts_sync(store, "bench")
        rows = 0
    else:
        rows = store.query_arrow_sync(sql, parameters).num_rows
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "peak_mib": (peak - before) / 1024, "rows": rows}))
    store.close()


def run(posts: int = 1_800_000, rounds: int = 3) -> None:
    with tempfile.TemporaryDirectory(prefix="fk-bench-scoring-") as path:
        subprocess.run(
            [sys.executable, "-m", "bench.scoring", "seed", path, str(posts)],
            check=True,
            cwd=REPO,
            capture_output=True,
        )
        print(f"Scorings on {posts:,} posts ({CREATORS:,} creators, {CAMPAIGNS} campaigns)")
        print("| query | seconds | peak MiB above start | rows |")
        print("|---|---|---|---|")
        for name in QUERIES:
            results = []
            for _ in range(rounds):
                out = subprocess.run(
                    [sys.executable, "-m", "bench.scoring", "child", path, name],
                    check=True,
                    cwd=REPO,
                    capture_output=True,
                    text=True,
                ).stdout
                results.append(json.loads(out.strip().splitlines()[-1]))
            print(
                f"| {name} | {statistics.median(r['seconds'] for r in results):.2f}"
                f" | {statistics.median(r['peak_mib'] for r in results):.0f}"
                f" | {results[0]['rows']:,} |",
                flush=True,
            )


if __name__ == "__main__":
    if sys.argv[1:2] == ["seed"]:
        seed(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1:2] == ["child"]:
        child(sys.argv[2], sys.argv[3])
    else:
        run(*(int(a) for a in sys.argv[1:3]))

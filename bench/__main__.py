"""`make bench` (or `python -m bench [pipeline|rollups|freshness|api|webhooks|briefs|etl|rankings|
mix|insights]`): every benchmark, each figure beside its baseline from the same run."""

import asyncio
import platform
import sys
import time

from bench import (
    api,
    briefs,
    etl,
    freshness,
    insights,
    mix,
    pipeline,
    rankings,
    rollups,
    webhooks,
)


def main() -> int:
    only = set(sys.argv[1:])
    print(
        f"# fk benchmarks, {time.strftime('%Y-%m-%d %H:%M:%S')}, {platform.node()}, "
        f"Python {platform.python_version()}"
    )
    if not only or "pipeline" in only:
        asyncio.run(pipeline.run())
    if not only or "rollups" in only:
        rollups.run()
    if not only or "freshness" in only:
        asyncio.run(freshness.run())
    if not only or "api" in only:
        api.run()
    if not only or "webhooks" in only:
        asyncio.run(webhooks.run(burst=5000, rate=250, seconds=20))
    if not only or "briefs" in only:
        asyncio.run(briefs.run())
    if not only or "etl" in only:
        etl.run()
    if not only or "rankings" in only:
        rankings.run()
    if not only or "mix" in only:
        mix.run()
    if not only or "insights" in only:
        insights.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

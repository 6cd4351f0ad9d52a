"""`make bench`: every benchmark, each figure beside its baseline from the same run."""

import asyncio
import platform
import sys
import time

from bench import api, briefs, freshness, pipeline


def main() -> int:
    only = set(sys.argv[1:])
    print(
        f"# fk benchmarks, {time.strftime('%Y-%m-%d %H:%M:%S')}, {platform.node()}, "
        f"Python {platform.python_version()}"
    )
    if not only or "pipeline" in only:
        asyncio.run(pipeline.run())
    if not only or "freshness" in only:
        asyncio.run(freshness.run())
    if not only or "api" in only:
        api.run()
    if not only or "briefs" in only:
        asyncio.run(briefs.run())
    return 0


if __name__ == "__main__":
    sys.exit(main())

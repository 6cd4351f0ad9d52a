"""`make bench` (or `python -m bench [--smoke] [pipeline|decode|rollups|freshness|api|webhooks|
briefs|etl|rankings|scoring|mix|insights|commands|broker|rowinserts]`): every benchmark, each
figure beside its baseline from the same run.

`--smoke` runs each one in a tiny size, in seconds, so that a benchmark that no longer works is
seen at once (the test suite runs it: tests/test_bench_smoke.py); its figures mean nothing. A
tool a smoke run lacks (`hey`, pandas) skips the part that needs it, saying so.
"""

import argparse
import asyncio
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench import (
    api,
    briefs,
    broker,
    commands,
    decode,
    etl,
    freshness,
    insights,
    mix,
    pipeline,
    rankings,
    rollups,
    rowinserts,
    scoring,
    webhooks,
)


@dataclass(frozen=True)
class Benchmark:
    full: Callable[[], object]
    smoke: Callable[[], object]


BENCHMARKS: dict[str, Benchmark] = {
    "pipeline": Benchmark(
        lambda: asyncio.run(pipeline.run()),
        lambda: asyncio.run(pipeline.run(n=2000, rounds=1)),
    ),
    "decode": Benchmark(decode.run, lambda: decode.run(events=2000, rounds=2)),
    "rollups": Benchmark(rollups.run, lambda: rollups.run(rounds=1, batches=2, size=200)),
    "freshness": Benchmark(
        lambda: asyncio.run(freshness.run()),
        lambda: asyncio.run(freshness.run(rate=500, seconds=2)),
    ),
    "api": Benchmark(
        api.run, lambda: api.run(events=2000, campaigns=50, seconds=1, rounds=1, smoke=True)
    ),
    "webhooks": Benchmark(
        lambda: asyncio.run(webhooks.run(burst=5000, rate=250, seconds=20)),
        lambda: asyncio.run(webhooks.run(burst=20, rate=20, seconds=1)),
    ),
    "briefs": Benchmark(
        lambda: asyncio.run(briefs.run()),
        lambda: asyncio.run(briefs.run(events=300, repeats=2, new_requests=1)),
    ),
    "etl": Benchmark(
        etl.run,
        lambda: etl.run(rounds=1, seconds=1, sizes=(500,), latency_rounds=1, smoke=True),
    ),
    "rankings": Benchmark(
        rankings.run,
        lambda: rankings.run(
            sizes=(2000,),
            seconds=1,
            rounds=1,
            smoke=True,
            busy={"events": 2000, "campaigns": 50, "samples": 2, "rate": 100.0},
        ),
    ),
    "scoring": Benchmark(scoring.run, lambda: scoring.run(posts=20_000, rounds=1)),
    "mix": Benchmark(mix.run, lambda: mix.run(seconds=3, multiples=(0.05,))),
    "insights": Benchmark(insights.run, lambda: insights.run(smoke=True)),
    "commands": Benchmark(commands.run, lambda: commands.run(commands=5, campaigns=2)),
    "broker": Benchmark(
        lambda: asyncio.run(broker.run()), lambda: asyncio.run(broker.run((200,), produced=20))
    ),
    "rowinserts": Benchmark(rowinserts.run, lambda: rowinserts.run(inserts=3, rounds=1)),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"any of: {' '.join(BENCHMARKS)}")
    parser.add_argument("--smoke", action="store_true", help="a tiny size of each, to see it runs")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; known: {' '.join(BENCHMARKS)}")
    print(
        f"# fk benchmarks{' (smoke)' if args.smoke else ''}, {time.strftime('%Y-%m-%d %H:%M:%S')}"
        f", {platform.node()}, Python {platform.python_version()}"
    )
    for name, benchmark in BENCHMARKS.items():
        if not args.names or name in args.names:
            if args.smoke:
                print(f"## {name} (smoke)", flush=True)
            (benchmark.smoke if args.smoke else benchmark.full)()
    return 0


if __name__ == "__main__":
    sys.exit(main())

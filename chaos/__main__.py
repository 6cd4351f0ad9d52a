"""`python -m chaos` (or `make chaos`): see the package docstring."""

import argparse
import asyncio
import sys
from pathlib import Path

from chaos.run import Chaos, Options


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of chaos")
    parser.add_argument("--seed", type=int, default=1, help="seeds the kill schedule and workload")
    parser.add_argument("--shape", choices=("embedded", "split"), default="embedded")
    parser.add_argument("--interval", type=float, default=20.0, help="mean seconds between kills")
    parser.add_argument("--settle", type=float, default=180.0, help="seconds allowed to converge")
    parser.add_argument("--workdir", type=Path, default=Path("data/chaos"))
    args = parser.parse_args()
    options = Options(
        duration=args.duration,
        seed=args.seed,
        shape=args.shape,
        interval=args.interval,
        settle=args.settle,
        workdir=args.workdir,
    )
    report = asyncio.run(Chaos(options).run())
    print(report.render())
    return 0 if not report.mismatches else 1


if __name__ == "__main__":
    sys.exit(main())

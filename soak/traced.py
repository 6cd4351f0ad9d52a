"""`python -m soak.traced up ...`: `fk up` with tracemalloc on, for memory investigations. Each
SIGUSR1 writes a snapshot to `$FK_SOAK_SNAPSHOTS/<n>.snapshot` (the Python heap only: chDB's
and the broker's native memory are not in it)."""

import importlib
import os
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType


def main() -> int:
    tracemalloc.start(int(os.environ.get("FK_SOAK_TRACE_FRAMES", "1")))
    directory = Path(os.environ.get("FK_SOAK_SNAPSHOTS", "."))
    directory.mkdir(parents=True, exist_ok=True)
    taken = 0

    def snapshot(signum: int, frame: FrameType | None) -> None:
        nonlocal taken
        taken += 1
        partial = directory / f"{taken}.partial"
        tracemalloc.take_snapshot().dump(str(partial))
        partial.rename(directory / f"{taken}.snapshot")

    signal.signal(signal.SIGUSR1, snapshot)
    # Imported by name: cli.py is the composition root, outside the strictly type-checked packages.
    cli = importlib.import_module("cli")
    code: int = cli.main(sys.argv[1:])
    return code


if __name__ == "__main__":
    sys.exit(main())

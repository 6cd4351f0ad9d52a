"""`python -m soak.traced up ...`: `fk up` for memory investigations. With FK_SOAK_SNAPSHOTS set,
tracemalloc is on and each SIGUSR1 writes a snapshot to `$FK_SOAK_SNAPSHOTS/<n>.snapshot` (the
Python heap only: chDB's and the broker's native memory are not in it); with FK_SOAK_PROBE set
(a JSON-lines path), soak.probe samples the process's memory by kind every
FK_SOAK_PROBE_EVERY seconds (60), and with FK_SOAK_PROBE_TRIM=1 returns glibc's free memory
after each sample (an experiment: what trimming would give)."""

import os
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType


def main() -> int:
    if probe := os.environ.get("FK_SOAK_PROBE"):
        from soak import probe as probes

        probes.start(
            Path(probe),
            float(os.environ.get("FK_SOAK_PROBE_EVERY", "60")),
            trim=os.environ.get("FK_SOAK_PROBE_TRIM") == "1",
        )
    if "FK_SOAK_SNAPSHOTS" in os.environ:
        trace(Path(os.environ["FK_SOAK_SNAPSHOTS"]))
    # Imported only now, so that the snapshots hold what the platform's own imports allocate.
    from fk.cli import main as fk

    return fk(sys.argv[1:])


def trace(directory: Path) -> None:
    tracemalloc.start(int(os.environ.get("FK_SOAK_TRACE_FRAMES", "1")))
    directory.mkdir(parents=True, exist_ok=True)
    taken = 0

    def snapshot(signum: int, frame: FrameType | None) -> None:
        nonlocal taken
        taken += 1
        partial = directory / f"{taken}.partial"
        tracemalloc.take_snapshot().dump(str(partial))
        partial.rename(directory / f"{taken}.snapshot")

    signal.signal(signal.SIGUSR1, snapshot)


if __name__ == "__main__":
    sys.exit(main())

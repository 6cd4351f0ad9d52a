"""What grew on the Python heap of a traced `fk up` (soak.traced) between the snapshot at the end
of the warm-up and the one at the end of the load, by source line."""

import time
import tracemalloc
from pathlib import Path


def wait_for(path: Path, timeout: float = 180.0) -> bool:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def heap_growth(directory: Path, top: int = 15) -> str:
    first, last = directory / "1.snapshot", directory / "2.snapshot"
    if not (wait_for(first) and wait_for(last)):
        return f"Python heap: no snapshots in {directory}."
    before = tracemalloc.Snapshot.load(str(first))
    after = tracemalloc.Snapshot.load(str(last))
    total_before = sum(s.size for s in before.statistics("filename"))
    total_after = sum(s.size for s in after.statistics("filename"))
    growth = (total_after - total_before) / 2**20
    lines = [
        f"Python heap (tracemalloc): {total_before / 2**20:.1f} MiB at warm-up end, "
        f"{total_after / 2**20:.1f} MiB at the end ({growth:+.1f} MiB)",
        "",
        "| source line | growth | blocks | size at end |",
        "|---|---|---|---|",
    ]
    for stat in after.compare_to(before, "lineno")[:top]:
        frame = stat.traceback[0]
        where = f"{frame.filename.rsplit('site-packages/', 1)[-1]}:{frame.lineno}"
        lines.append(
            f"| {where} | {stat.size_diff / 2**20:+.2f} MiB | {stat.count_diff:+,} | "
            f"{stat.size / 2**20:.2f} MiB |"
        )
    return "\n".join(lines)

"""Where a probed `fk up` (soak.traced with FK_SOAK_PROBE_EVERY) holds its memory, sampled from
inside the process: resident memory by kind, the C allocators' own figures (glibc's arenas for
Python, the store engine's jemalloc), the store engine's caches and parts, Arrow's pool and the
Python objects by type. One JSON line per sample, read after the run with `python -m soak.probe`."""

import argparse
import ctypes
import gc
import json
import re
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client

ENGINE_METRICS = (
    "MemoryTracking",
    "MarkCacheBytes",
    "PrimaryIndexCacheBytes",
    "IndexMarkCacheBytes",
    "UncompressedCacheBytes",
    "QueryCacheBytes",
    "QueryConditionCacheBytes",
    "CompiledExpressionCacheBytes",
    "PageCacheBytes",
    "MergesMutationsMemoryTracking",
    "MMapCacheCells",
)

_JEMALLOC_TOTALS = re.compile(
    r"Allocated: (\d+), active: (\d+), metadata: (\d+).*?resident: (\d+), mapped: (\d+), "
    r"retained: (\d+)"
)


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _libc() -> Any:
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _Mallinfo2
    return libc


def process_memory() -> dict[str, int]:
    """Resident memory of this process by kind (anonymous, file-backed), in bytes."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon", "RssFile", "Threads"):
            number = int(value.split()[0])
            fields[name] = number if name == "Threads" else number * 1024
    return fields


def glibc_heap(libc: Any) -> dict[str, int]:
    info = libc.mallinfo2()
    return {
        "arena": info.arena,  # bytes of the main and thread arenas (sbrk/mmap'd heaps)
        "mmapped": info.hblkhd,  # large blocks mapped on their own
        "in_use": info.uordblks,
        "free": info.fordblks,  # held by the arenas, not returned to the system
    }


def engine_memory(client: Client) -> dict[str, Any]:
    metrics: dict[str, int] = {
        str(name): int(value)
        for name, value in client.query(
            "SELECT metric, value FROM system.metrics WHERE metric IN {names:Array(String)}",
            parameters={"names": list(ENGINE_METRICS)},
        ).result_rows
    }
    parts = client.query(
        "SELECT database || '.' || table, count(), sum(rows), "
        "sum(primary_key_bytes_in_memory_allocated), "
        "sum(index_granularity_bytes_in_memory_allocated) "
        "FROM system.parts WHERE active GROUP BY 1"
    ).result_rows
    stats = str(client.query("SELECT stats FROM system.jemalloc_stats").result_rows[0][0])
    totals = _JEMALLOC_TOTALS.search(stats)
    jemalloc = (
        dict(
            zip(
                ("allocated", "active", "metadata", "resident", "mapped", "retained"),
                (int(v) for v in totals.groups()),
                strict=True,
            )
        )
        if totals
        else {}
    )
    return {
        "metrics": metrics,
        "jemalloc": jemalloc,
        "parts": {
            table: {"parts": n, "rows": rows, "pk_bytes": pk, "granularity_bytes": gran}
            for table, n, rows, pk, gran in parts
        },
    }


def python_heap(types: int = 25) -> dict[str, Any]:
    started = time.monotonic()
    counts = Counter(type(o).__name__ for o in gc.get_objects())
    heap: dict[str, Any] = {
        "blocks": sys.getallocatedblocks(),
        "objects_by_type": dict(counts.most_common(types)),
        "gc_seconds": round(time.monotonic() - started, 3),
    }
    try:
        import pyarrow as pa

        heap["arrow_allocated"] = pa.total_allocated_bytes()
    except ImportError:
        pass
    return heap


def run(
    path: Path,
    every: float,
    store_url: str,
    options: dict[str, Any],
    delay: float,
    trim: bool = False,
) -> None:
    """Sample every `every` s into `path` (JSON lines) until the process exits; the engine is
    queried through a client of its own on the store's data path, once the platform opened it.
    With `trim`, glibc's free memory is returned after each sample (`malloc_trim`) and the
    resident memory sampled again."""
    import clickhouse_connect

    libc = _libc()
    started = time.monotonic()
    time.sleep(delay)
    client: Client | None = None
    while True:
        sample: dict[str, Any] = {
            "at": round(time.monotonic() - started, 1),
            "wall": round(time.time(), 1),
        }
        sample["process"] = process_memory()
        sample["glibc"] = glibc_heap(libc)
        try:
            if client is None:
                client = clickhouse_connect.get_client(dsn=store_url, chdb_options=options)
            sample["engine"] = engine_memory(client)
        except Exception as exc:  # a probe that failed says why, and samples on
            sample["engine_error"] = str(exc)[:300]
        sample["python"] = python_heap()
        if trim:
            # An experiment: how much of the resident memory glibc's arenas hold free.
            libc.malloc_trim(0)
            sample["after_trim"] = process_memory()
            sample["glibc_after_trim"] = glibc_heap(libc)
        with path.open("a") as out:
            out.write(json.dumps(sample) + "\n")
        time.sleep(every)


def start(path: Path, every: float, delay: float = 20.0, trim: bool = False) -> None:
    from core.clickhouse import CHDB_OPTIONS
    from core.settings import get_settings

    settings = get_settings()
    threading.Thread(
        target=run,
        args=(path, every, settings.store_url, CHDB_OPTIONS, delay, trim),
        name="soak-probe",
        daemon=True,
    ).start()


def _mib(value: float) -> str:
    return f"{value / 2**20:,.0f}"


def summarise(path: Path, start_at: float = 0.0, *, from_wall: float | None = None) -> str:
    """The first sample at or after `start_at` s of the process (or `from_wall`, a Unix time)
    beside the last: what grew, in MiB."""
    samples = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    first = next(
        s for s in samples if (s["at"] >= start_at if from_wall is None else s["wall"] >= from_wall)
    )
    last = samples[-1]

    def row(name: str, a: float, b: float) -> str:
        return f"| {name} | {_mib(a)} | {_mib(b)} | {(b - a) / 2**20:+,.1f} |"

    lines = [
        f"probe samples at {first['at']:.0f} s and {last['at']:.0f} s (MiB)",
        "",
        "| what | first | last | change |",
        "|---|---|---|---|",
    ]
    for key in ("VmRSS", "RssAnon", "RssFile"):
        lines.append(row(key, first["process"][key], last["process"][key]))
    for key in ("arena", "mmapped", "in_use", "free"):
        lines.append(row(f"glibc {key}", first["glibc"][key], last["glibc"][key]))
    if "engine" in first and "engine" in last:
        for key, value in last["engine"]["jemalloc"].items():
            lines.append(row(f"jemalloc {key}", first["engine"]["jemalloc"].get(key, 0), value))
        for key, value in last["engine"]["metrics"].items():
            if key == "MMapCacheCells":
                continue
            lines.append(row(key, first["engine"]["metrics"].get(key, 0), value))
        pk = [sum(t["pk_bytes"] for t in s["engine"]["parts"].values()) for s in (first, last)]
        lines.append(row("parts primary keys", pk[0], pk[1]))
    lines.append(
        row(
            "arrow pool",
            first["python"].get("arrow_allocated", 0),
            last["python"].get("arrow_allocated", 0),
        )
    )
    lines.append(
        f"| Python blocks | {first['python']['blocks']:,} | {last['python']['blocks']:,} | "
        f"{last['python']['blocks'] - first['python']['blocks']:+,} |"
    )
    before = first["python"]["objects_by_type"]
    after = last["python"]["objects_by_type"]
    grown = sorted(after, key=lambda t: after[t] - before.get(t, 0), reverse=True)[:10]
    lines.append("")
    lines.append(
        "objects by type (grown most): "
        + ", ".join(f"{t} {before.get(t, 0):,} → {after[t]:,}" for t in grown)
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path", type=Path, help="the probe's JSON lines (<workdir>/probe.jsonl)")
    parser.add_argument("--from", dest="start_at", type=float, default=120.0)
    args = parser.parse_args()
    print(summarise(args.path, args.start_at))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The memory probe of a probed `fk up` (soak.probe): what it reads from the store engine and the
process, and its summary of what grew."""

import json
from pathlib import Path

from core.clickhouse import Store
from soak.probe import ENGINE_METRICS, engine_memory, python_heap, summarise

MiB = 2**20


def test_the_engine_reports_its_tracked_memory_jemalloc_and_parts(store: Store) -> None:
    store.command_sync("CREATE TABLE probed (x UInt64) ENGINE = MergeTree ORDER BY x")
    store.command_sync("INSERT INTO probed SELECT number FROM numbers(1000)")
    found = engine_memory(store.client)
    assert set(found["metrics"]) == set(ENGINE_METRICS)
    assert found["metrics"]["MemoryTracking"] > 0
    assert found["jemalloc"]["resident"] >= found["jemalloc"]["allocated"] > 0
    assert found["parts"][f"{store.database}.probed"]["rows"] == 1000


def test_the_summary_sets_the_sample_after_warm_up_beside_the_last(tmp_path: Path) -> None:
    def sample(at: float, rss: int, blocks: int, candidates: int) -> dict[str, object]:
        process = {"VmRSS": rss * MiB, "RssAnon": (rss - 200) * MiB, "RssFile": 200 * MiB}
        glibc = {"arena": 300 * MiB, "mmapped": 0, "in_use": 280 * MiB, "free": 20 * MiB}
        python = {"blocks": blocks, "objects_by_type": {"Candidate": candidates, "dict": 10}}
        return {"at": at, "wall": 1000 + at, "process": process, "glibc": glibc, "python": python}

    path = tmp_path / "probe.jsonl"
    lines = [sample(30, 900, 10, 5), sample(130, 1000, 100, 50), sample(600, 1100, 400, 200)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    summary = summarise(path, 120)
    assert "probe samples at 130 s and 600 s" in summary
    assert "| VmRSS | 1,000 | 1,100 | +100.0 |" in summary
    assert "Candidate 50 → 200" in summary
    assert summarise(path, from_wall=1100) == summary
    assert python_heap()["blocks"] > 0

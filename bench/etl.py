"""Batch ETL: 10k and 1M generated rows loaded end to end (validation, storage, scores
queryable) beside a pandas `read_csv` + validation + groupby baseline on the same file in the
same run, each in its own process so peak memory (ru_maxrss) is the run's own; then
`GET /top-performers` latency on the 1M rows beside `/healthz` under `hey -c 50 -q 10`.

`python -m bench.etl [rounds]` (needs the `bench` extra for pandas, and `hey`);
`python -m bench.etl top-performers [rounds]` runs only the latency part on a generated 1M-row
file (healthz and top-performers p99 side by side, and the first request after start)."""

import importlib.util
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import free_port, have_hey, median, platform_env
from schemas.events import PLATFORMS

REPO = Path(__file__).resolve().parents[1]


def _child(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.etl", *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "FK_LOG_LEVEL": "WARNING"},
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_load(path: str, store_dir: str) -> None:
    """Open a fresh store, then time: load + validation + storage + top performers scored."""
    import asyncio

    from core.clickhouse import Store
    from etl.loader import Outputs, load_file
    from scoring.queries import rank, scored_creators

    store = Store.open(f"chdb://{store_dir}", "bench")
    started = time.perf_counter()
    report = load_file(store, Path(path), Outputs.beside(Path(path), Path(store_dir)), org="bench")
    loaded = time.perf_counter()
    creators = asyncio.run(
        scored_creators(store, org="bench", campaign_id=None, platform=None, category=None)
    )
    top = rank(creators, sort="engagementScore", limit=10, min_views=0)
    done = time.perf_counter()
    print(
        json.dumps(
            {
                "seconds": done - started,
                "load_seconds": loaded - started,
                "score_seconds": done - loaded,
                "rows": report.rows,
                "inserted": report.inserted,
                "rejected": report.rejected,
                "creators": top.total,
                "peak_mb": _peak_mb(),
            }
        )
    )


def child_pandas(path: str) -> None:
    """The baseline: read the file with pandas, validate the same rules, aggregate per creator."""
    import pandas as pd

    started = time.perf_counter()
    df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    bad = pd.Series(False, index=df.index)
    for column in ("campaignId", "influencerId", "platform"):
        bad |= df[column].str.strip() == ""
    bad |= ~df["platform"].str.strip().str.lower().isin(PLATFORMS)
    numbers = {}
    for column in ("views", "likes", "comments", "shares", "saves", "followers"):
        text = df[column].str.strip()
        optional = column in ("saves", "followers")
        value = pd.to_numeric(text, errors="coerce")
        integer = text.str.fullmatch(r"-?\d{1,18}")
        bad |= (~integer & ~((text == "") & optional)) | (value < 0)
        numbers[column] = value.fillna(0)
    bad |= numbers["views"] <= 0
    posted = pd.to_datetime(df["postedAt"], errors="coerce", utc=True, format="ISO8601")
    bad |= posted.isna() & (df["postedAt"].str.strip() != "")
    good = df.loc[~bad, ["influencerId"]].assign(
        **{c: numbers[c][~bad] for c in ("views", "likes", "comments", "shares")}
    )
    sums = good.groupby("influencerId").sum()
    sums["rate"] = (sums.likes + sums.comments + sums.shares) / sums.views * 100
    top = sums.sort_values("rate", ascending=False).head(10)
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - started,
                "rows": len(df),
                "rejected": int(bad.sum()),
                "creators": len(sums),
                "top": len(top),
                "peak_mb": _peak_mb(),
            }
        )
    )


def child_generate(path: str, rows: str) -> None:
    from etl.generate import write_sample

    write_sample(Path(path), int(rows), invalid_rate=0.005)
    print(json.dumps({"rows": int(rows)}))


def _load_vs_pandas(tmp: Path, csv: Path, rounds: int, *, pandas: bool) -> dict[str, float]:
    """`pandas` False (a smoke run without the `bench` extra): only our side runs."""
    ours, theirs = [], []
    for r in range(rounds):
        store_dir = tmp / f"store-{csv.stem}-{r}"
        ours.append(_child("load", str(csv), str(store_dir)))
        shutil.rmtree(store_dir, ignore_errors=True)
        if not pandas:
            print(
                f"  {csv.stem} round {r + 1}: fk etl {ours[-1]['seconds']:.2f}s; rows "
                f"{ours[-1]['rows']}, rejected {ours[-1]['rejected']} (pandas not installed)"
            )
            continue
        theirs.append(_child("pandas", str(csv)))
        print(
            f"  {csv.stem} round {r + 1}: fk etl {ours[-1]['seconds']:.2f}s "
            f"(load {ours[-1]['load_seconds']:.2f}s + scores {ours[-1]['score_seconds']:.2f}s, "
            f"peak {ours[-1]['peak_mb']:.0f} MB), pandas {theirs[-1]['seconds']:.2f}s "
            f"(peak {theirs[-1]['peak_mb']:.0f} MB); rows {ours[-1]['rows']}, rejected "
            f"{ours[-1]['rejected']} (pandas {theirs[-1]['rejected']})"
        )
    if not pandas:
        return {"seconds": median([o["seconds"] for o in ours])}
    result = {
        "seconds": median([o["seconds"] for o in ours]),
        "peak_mb": max(o["peak_mb"] for o in ours),
        "pandas_seconds": median([t["seconds"] for t in theirs]),
        "pandas_peak_mb": max(t["peak_mb"] for t in theirs),
    }
    ratio = result["pandas_seconds"] / result["seconds"]
    print(
        f"{csv.stem}: fk etl {result['seconds']:.2f}s end to end (median), pandas baseline "
        f"{result['pandas_seconds']:.2f}s, ratio pandas/fk {ratio:.2f}; "
        f"peak memory fk {result['peak_mb']:.0f} MB, pandas {result['pandas_peak_mb']:.0f} MB"
    )
    return result


def _latency(tmp: Path, csv: Path, seconds: int, rounds: int) -> dict[str, float]:
    import httpx

    from bench.api import Platform, hey, wait_ready
    from bench.common import environment
    from core.auth import issue_token
    from core.settings import DEV_JWT_SECRET

    with environment() as (bootstrap, work):
        port = free_port()
        env = platform_env(bootstrap, work / "data", port)
        subprocess.run(
            [sys.executable, "-m", "fk", "etl", "--direct", "--out", str(work), str(csv)],
            check=True,
            env=env,
            cwd=work,
            capture_output=True,
        )
        base = f"http://127.0.0.1:{port}"
        token = issue_token(DEV_JWT_SECRET, org="bench")
        platform = Platform(work, env)
        platform.start()
        try:
            wait_ready(base)
            url = f"{base}/top-performers?limit=20&sort=engagementScore"
            started = time.perf_counter()
            first = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
            first_ms = (time.perf_counter() - started) * 1000
            assert first.status_code == 200, first.text
            print(f"  first /top-performers on {csv.stem} (cold cache): {first_ms:.0f} ms")
            health, tops = [], []
            for r in range(rounds):
                health.append(hey(f"{base}/healthz", None, seconds))
                tops.append(hey(url, token, seconds))
                print(
                    f"  round {r + 1}: healthz p99 {health[-1]['p99_ms']:.1f} ms "
                    f"({health[-1]['rps']:.0f} rps), top-performers p99 "
                    f"{tops[-1]['p99_ms']:.1f} ms ({tops[-1]['rps']:.0f} rps)"
                )
        finally:
            platform.stop()
    h99 = median([h["p99_ms"] for h in health])
    t99 = median([t["p99_ms"] for t in tops])
    print(
        f"top-performers at 500 req/s, 50 clients, {csv.stem}: /healthz p99 {h99:.1f} ms, "
        f"/top-performers p99 {t99:.1f} ms, ratio {t99 / h99:.2f} (medians); "
        f"first request {first_ms:.0f} ms"
    )
    return {"healthz_p99_ms": h99, "top_p99_ms": t99, "ratio": t99 / h99, "first_ms": first_ms}


def run(
    rounds: int = 3,
    seconds: int = 15,
    sizes: tuple[int, ...] = (10_000, 1_000_000),
    latency_rounds: int = 3,
    *,
    smoke: bool = False,
) -> dict[str, Any]:
    """Each size of file loaded beside pandas; the latency part on the largest. `smoke`:
    without pandas or `hey`, the parts that need them are skipped."""
    latency = have_hey(required=not smoke)
    pandas = importlib.util.find_spec("pandas") is not None
    if not (pandas or smoke):
        raise SystemExit("pandas not found: pip install -e '.[bench]'")
    with tempfile.TemporaryDirectory(prefix="fk-bench-etl-") as name:
        tmp = Path(name)
        files = {rows: tmp / f"performance-{rows}.csv" for rows in sizes}
        started = time.perf_counter()
        for rows, path in files.items():
            _child("generate", str(path), str(rows))
        print(
            f"  generated {', '.join(f'{rows:,}' for rows in files)} rows in "
            f"{time.perf_counter() - started:.1f}s (not timed)"
        )
        result: dict[str, Any] = {
            f"{rows}": _load_vs_pandas(tmp, path, rounds, pandas=pandas)
            for rows, path in files.items()
        }
        if latency:
            result["latency"] = _latency(tmp, files[max(files)], seconds, latency_rounds)
        return result


def run_top_performers(rounds: int = 2, seconds: int = 15) -> dict[str, float]:
    have_hey(required=True)
    with tempfile.TemporaryDirectory(prefix="fk-bench-top-") as name:
        large = Path(name) / "performance-1m.csv"
        _child("generate", str(large), "1000000")
        return _latency(Path(name), large, seconds, rounds)


if __name__ == "__main__":
    if sys.argv[1:2] == ["top-performers"]:
        run_top_performers(*(int(a) for a in sys.argv[2:3]))
        sys.exit(0)
    commands: dict[str, Callable[..., None]] = {
        "load": child_load,
        "pandas": child_pandas,
        "generate": child_generate,
    }
    if len(sys.argv) > 1 and sys.argv[1] in commands:
        commands[sys.argv[1]](*sys.argv[2:])
    else:
        run(int(sys.argv[1]) if len(sys.argv) > 1 else 3)

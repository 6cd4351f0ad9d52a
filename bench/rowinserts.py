"""Small row inserts, as commands and deliveries make them: `python -m bench rowinserts`.

Two campaign versions an insert into `campaigns`, on a store thread as the platform runs them:
through the driver's own insert (its Python serialisation and, on chDB, a temporary file) as the
baseline, beside the store's JSON rows (`core.jsonrows`). Each both with the interpreter to
itself and with a busy Python thread beside it, as `fk up`'s event loop is under load: a store
thread then waits for the interpreter lock at every step of its Python work. Printed per path:
wall and store-thread CPU per insert (medians of rounds), and the ratio JSON / driver.
"""

import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import bench_settings
from core.clickhouse import Store
from core.repositories.campaigns import CAMPAIGN_COLUMNS

TABLE = "campaigns"


def _columns(i: int) -> list[Sequence[Any]]:
    now = datetime.now(UTC)
    body = '{"id":"x"}'
    rows = [
        (f"cmp_bench_{i}_{j}", "demo", "Launch", "Acme", "draft", 1, body, now, now, None, None)
        for j in range(2)
    ]
    return [list(c) for c in zip(*rows, strict=True)]


def _measure(insert: Callable[[int], None], inserts: int, busy: bool) -> tuple[float, float]:
    """One round: (wall ms, thread CPU ms) per insert."""
    stop = threading.Event()

    def spin() -> None:
        n = 0
        while not stop.is_set():
            n += 1

    spinner = threading.Thread(target=spin, daemon=True)
    if busy:
        spinner.start()
    try:
        wall, cpu = time.perf_counter(), time.thread_time()
        for i in range(inserts):
            insert(i)
        return (
            (time.perf_counter() - wall) * 1000 / inserts,
            (time.thread_time() - cpu) * 1000 / inserts,
        )
    finally:
        stop.set()
        if busy:
            spinner.join()


def run(inserts: int = 200, rounds: int = 5) -> None:
    with tempfile.TemporaryDirectory(prefix="fk-bench-") as tmp:
        settings = bench_settings("127.0.0.1:9092", Path(tmp))  # no broker is used
        store = Store.from_settings(settings)
        try:
            client = store._thread_client()

            def driver(i: int) -> None:
                client.insert(
                    TABLE, _columns(i), column_names=list(CAMPAIGN_COLUMNS), column_oriented=True
                )

            def json_rows(i: int) -> None:
                store.insert_sync(TABLE, _columns(i), CAMPAIGN_COLUMNS)

            json_rows(-1)  # the column types, read once per table
            print(
                f"row inserts: {inserts} inserts of two campaign versions a round, {rounds}"
                " rounds, paths alternated; medians of the rounds"
            )
            print("| interpreter | path | wall ms / insert | thread CPU ms / insert |")
            print("|---|---|---|---|")
            for busy in (False, True):
                figures: dict[str, list[tuple[float, float]]] = {"driver": [], "json": []}
                for _ in range(rounds):
                    figures["driver"].append(_measure(driver, inserts, busy))
                    figures["json"].append(_measure(json_rows, inserts, busy))
                medians = {
                    path: tuple(statistics.median(f[k] for f in fs) for k in (0, 1))
                    for path, fs in figures.items()
                }
                label = "busy thread beside" if busy else "to itself"
                for path in ("driver", "json"):
                    wall, cpu = medians[path]
                    print(f"| {label} | {path} | {wall:.2f} | {cpu:.2f} |")
                ratio = medians["json"][0] / medians["driver"][0]
                print(f"| {label} | json / driver | {ratio:.2f}x | |", flush=True)
        finally:
            store.command_sync(f"DROP DATABASE IF EXISTS `{settings.clickhouse_database}`")
            store.close()

"""The store's async wrappers on real chDB: its threads run queries side by side."""

import asyncio
import time

import pyarrow as pa

from core.clickhouse import CHDB_OPTIONS, Store
from core.repositories.campaigns import created_campaigns
from tests.api.test_top_performers import add_campaign


async def test_store_threads_run_queries_side_by_side(store: Store) -> None:
    # chDB's client serialises calls on a per-client lock: one client shared by the store's
    # threads made four half-second queries take two seconds.
    started = time.monotonic()
    results = await asyncio.gather(*(store.query_rows("SELECT sleep(0.5)") for _ in range(4)))
    elapsed = time.monotonic() - started
    assert results == [[(0,)]] * 4
    assert elapsed < 1.5, f"four 0.5 s queries took {elapsed:.2f} s: they ran one at a time"


async def test_store_threads_see_each_others_writes(store: Store) -> None:
    await store.command("CREATE TABLE side (n UInt32) ENGINE = MergeTree ORDER BY n")
    await asyncio.gather(*(store.insert("side", [[n]], ["n"]) for n in range(8)))
    counts = await asyncio.gather(*(store.query_rows("SELECT count() FROM side") for _ in range(4)))
    assert counts == [[(8,)]] * 4


async def test_inserts_do_not_wait_behind_queries_that_hold_every_reading_thread(
    store: Store,
) -> None:
    """Under load every reading thread may be busy with a ranking: ingestion has threads of its
    own, so an insert lands while four one-second queries still run."""
    await store.command("CREATE TABLE landing (n UInt32) ENGINE = MergeTree ORDER BY n")
    busy = [asyncio.ensure_future(store.query_rows("SELECT sleep(1)")) for _ in range(4)]
    await asyncio.sleep(0.1)  # the four queries hold the four reading threads
    started = time.monotonic()
    await store.insert("landing", [[1]], ["n"])
    inserted_in = time.monotonic() - started
    assert not any(q.done() for q in busy), "the queries ended before the insert: nothing shown"
    await asyncio.gather(*busy)
    assert inserted_in < 0.8, f"the insert waited {inserted_in:.2f} s behind the queries"


async def test_created_campaigns_are_read_for_many_ids_in_one_query(store: Store) -> None:
    add_campaign(store, "cmp_x", "acme")
    add_campaign(store, "cmp_y", "globex")
    add_campaign(store, "cmp_y", "globex")  # a later version: one answer per campaign
    add_campaign(store, "cmp_y", "acme")  # another organisation's campaign of the same id
    keys = [("acme", "cmp_x"), ("globex", "cmp_y"), ("acme", "cmp_y"), ("globex", "cmp_x")]
    assert await created_campaigns(store, [*keys, ("acme", "cmp_nobody")]) == dict.fromkeys(
        keys[:3], True
    )
    assert await created_campaigns(store, []) == {}


def test_the_embedded_engines_caches_are_bounded(store: Store) -> None:
    rows = dict(
        store.query_rows_sync(
            "SELECT name, value FROM system.server_settings WHERE name IN {names:Array(String)}",
            {"names": list(CHDB_OPTIONS)},
        )
    )
    assert {name: int(value) for name, value in rows.items()} == CHDB_OPTIONS


async def test_row_inserts_do_not_wait_behind_the_streams_bulk_inserts(store: Store) -> None:
    """Campaign versions, deliveries and keys (row inserts) have threads of their own: they land
    while bulk Arrow inserts (the engagement stream's) hold every bulk thread."""
    await store.command("CREATE TABLE bulk (n UInt32) ENGINE = MergeTree ORDER BY n")
    await store.command("CREATE TABLE bulk_seen (n UInt32, s UInt8) ENGINE = MergeTree ORDER BY n")
    # Each bulk insert takes ~1 s: its view sleeps 0.5 s on each of its two rows.
    await store.command(
        "CREATE MATERIALIZED VIEW bulk_slowly TO bulk_seen AS SELECT n, sleepEachRow(0.5) AS s"
        " FROM bulk"
    )
    await store.command("CREATE TABLE rows (n UInt32) ENGINE = MergeTree ORDER BY n")
    two = pa.table({"n": pa.array([1, 2], pa.uint32())})
    busy = [asyncio.ensure_future(store.insert_arrow("bulk", two)) for _ in range(2)]
    await asyncio.sleep(0.1)  # the two bulk inserts hold the two bulk threads
    started = time.monotonic()
    await store.insert("rows", [[1]], ["n"])
    inserted_in = time.monotonic() - started
    assert not any(b.done() for b in busy), "the bulk inserts ended first: nothing shown"
    await asyncio.gather(*busy)
    assert inserted_in < 0.6, f"the row insert waited {inserted_in:.2f} s behind bulk inserts"


def test_warming_starts_every_store_thread_with_its_own_client(store: Store) -> None:
    """`fk up`, `fk api` and `fk worker` warm their store at start, so no request after a start
    waits for a store thread to start and open its client."""
    executors = {
        "reads": (store._executor, 4),
        "bulk inserts": (store._write_executor, 2),
        "row inserts": (store._row_write_executor, 2),
    }
    assert store._clients == []
    store.warm()
    assert {name: len(e._threads) for name, (e, _) in executors.items()} == {
        name: size for name, (_, size) in executors.items()
    }
    assert len(store._clients) == 8
    assert len({id(c) for c in store._clients}) == 8
    store.warm()
    assert len(store._clients) == 8, "warming again opened more clients"

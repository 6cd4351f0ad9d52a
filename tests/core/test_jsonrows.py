"""Row inserts as JSON lines (`core.jsonrows`) store exactly what the driver's insert stores."""

import math
from datetime import UTC, date, datetime, timedelta, timezone

from core import jsonrows
from core.clickhouse import Store

COLUMNS = (
    "id String, tag LowCardinality(String), n Int64, big UInt64, ratio Float64,"
    " code Nullable(UInt16), tags Array(LowCardinality(String)), at DateTime64(3, 'UTC'),"
    " maybe Nullable(DateTime64(3, 'UTC')), fine DateTime64(6, 'UTC'), whole DateTime('UTC'),"
    " day Date, flag UInt8, zoned DateTime64(3, 'Asia/Tokyo')"
)
NAMES = (
    "id", "tag", "n", "big", "ratio", "code", "tags", "at", "maybe", "fine", "whole", "day", "flag",
)  # fmt: skip
ZONED = (*NAMES, "zoned")

_AT = datetime(2026, 12, 7, 22, 0, 0, 123_987, tzinfo=UTC)
ROWS = [
    # Quotes, backslashes, a newline, a tab, non-ASCII text and an emoji in strings.
    ('q"uo\'te\\ \n\tend é 🎯', "a", -5, 2**64 - 1, 0.1, None, ["x", "é"], _AT, None, _AT, _AT,
     date(2026, 12, 7), True),
    # Another zone, a naive datetime (the process's zone, as the driver reads it), ISO text and
    # ticks as an int.
    ("second", "b", 0, 0, -1.5e300, 404, [], _AT.astimezone(timezone(timedelta(hours=5))),
     _AT.replace(tzinfo=None), "2026-12-07T22:00:00.5+00:00", 1_796_680_800, _AT, False),
    ("third", "", 2**62, 7, 0.0, 0, ["only"], 1_796_680_800_999, "2026-01-01 00:00:00.001",
     datetime(1999, 1, 1, tzinfo=UTC), datetime(2000, 2, 29, 23, 59, 59, tzinfo=UTC),
     date(2024, 2, 29), 1),
    # The epoch itself (an endpoint's "no previous secret" expiry).
    ("zero", "c", 1, 1, 1.0, 1, [], datetime(1970, 1, 1, tzinfo=UTC), 0,
     datetime(1970, 1, 1, tzinfo=UTC), 0, date(1970, 1, 1), 0),
]  # fmt: skip


def _columns(rows: list[tuple[object, ...]]) -> list[list[object]]:
    return [list(c) for c in zip(*rows, strict=True)]


def _make(store: Store, name: str) -> None:
    store.command_sync(f"CREATE TABLE {name} ({COLUMNS}) ENGINE = MergeTree ORDER BY id")


def _read(store: Store, name: str) -> list[tuple[object, ...]]:
    return store.query_rows_sync(f"SELECT {', '.join(NAMES)} FROM {name} ORDER BY id")


async def test_json_rows_store_what_the_drivers_insert_stores(store: Store) -> None:
    _make(store, "by_json")
    _make(store, "by_driver")
    converters = store._converters(store.client, "by_json", NAMES)
    assert converters is not None
    # One row an insert: the driver takes a column's values as its first value's type.
    for row in ROWS:
        columns = _columns([row])
        assert jsonrows.encode(columns, converters) is not None, "the row takes the JSON path"
        await store.insert("by_json", columns, NAMES)
        store.client.insert("by_driver", columns, column_names=list(NAMES), column_oriented=True)

    stored = _read(store, "by_json")
    assert len(stored) == len(ROWS)
    assert stored == _read(store, "by_driver")
    first = dict(zip(NAMES, stored[0], strict=True))
    assert first["id"] == "q\"uo'te\\ \n\tend é 🎯"
    assert first["at"].replace(tzinfo=UTC) == _AT.replace(microsecond=123_000)  # truncated
    assert first["maybe"] is None


async def test_values_json_cannot_carry_exactly_go_through_the_drivers_insert(
    store: Store,
) -> None:
    rows = [("nan", "a", 1, 1, math.nan, None, [], _AT, None, _AT, _AT, date(2026, 1, 1), 0)]
    _make(store, "fallback")
    columns = _columns(rows)
    converters = store._converters(store.client, "fallback", NAMES)
    assert converters is not None
    assert jsonrows.encode(columns, converters) is None

    await store.insert("fallback", columns, NAMES)

    (stored,) = _read(store, "fallback")
    assert math.isnan(dict(zip(NAMES, stored, strict=True))["ratio"])


async def test_a_datetime_column_in_another_zone_goes_through_the_drivers_insert(
    store: Store,
) -> None:
    _make(store, "zoned")
    converters = store._converters(store.client, "zoned", ZONED)
    assert converters is not None
    columns = _columns([(*ROWS[0], _AT)])
    assert jsonrows.encode(columns, converters) is None

    await store.insert("zoned", columns, ZONED)

    (stored,) = store.query_rows_sync("SELECT toUnixTimestamp64Milli(zoned) FROM zoned")
    assert stored == (int(_AT.timestamp() * 1000),)


def test_the_encoder_refuses_what_it_cannot_write_exactly() -> None:
    as_is = jsonrows.converter("String")
    assert jsonrows.encode([[b"bytes"]], [as_is]) is None
    assert jsonrows.encode([[math.inf]], [jsonrows.converter("Nullable(Float64)")]) is None
    assert jsonrows.encode([[1.5]], [jsonrows.converter("DateTime64(3, 'UTC')")]) is None
    assert jsonrows.encode([["a", "b"], [1, 2]], [as_is, as_is]) == b'["a",1]\n["b",2]'


def test_datetimes_become_utc_text_truncated_to_the_columns_precision() -> None:
    to_ms = jsonrows.converter("Nullable(DateTime64(3, 'UTC'))")
    assert to_ms is not None
    at = datetime(2026, 12, 7, 23, 59, 59, 999_999, tzinfo=timezone(timedelta(hours=1)))
    assert to_ms(at) == "2026-12-07 22:59:59.999"
    assert to_ms(1_999) == "1970-01-01 00:00:01.999"  # an int is ticks, as the driver takes it
    assert to_ms(None) is None
    to_s = jsonrows.converter("DateTime('UTC')")
    assert to_s is not None
    assert to_s(datetime(1970, 1, 1, 0, 0, 2, 500_000, tzinfo=UTC)) == "1970-01-01 00:00:02"


def test_warming_reads_every_tables_column_types_at_once(store: Store) -> None:
    """The first row insert into each table after a start needs no look-up of its columns."""
    store.warm()
    assert store._column_types["campaigns"]["created_at"] == "DateTime64(3, 'UTC')"
    assert store._column_types["webhook_deliveries"]["due_at"] == "DateTime64(3, 'UTC')"
    assert store._converters(store.client, "campaign_idempotency_keys", ("org", "key")) == [
        None,
        None,
    ]

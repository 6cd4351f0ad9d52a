"""The decoder: every valid shape accepted, every invalid one rejected with a bounded reason."""

import time
from datetime import UTC, datetime

import pytest

from core.clickhouse import Store
from schemas.events import DeadLetterReason, EngagementEvent, Platform
from streams.transforms import EVENT_COLUMNS, EventBatch, Rejection, Row, decode_event, decode_row
from tests.factories import encode, make_event

# Fixed at import: every case below states its timestamps relative to it.
NOW_MS = int(time.time() * 1000)


def decode(raw: bytes) -> EngagementEvent | Rejection:
    return decode_event(raw, now_ms=NOW_MS, max_future_ms=300_000)


def test_accepts_rfc3339_with_offset_and_normalises_to_utc() -> None:
    event = decode(encode(make_event(timestamp="2026-11-27T15:48:10+05:30")))
    assert isinstance(event, EngagementEvent)
    assert event.timestamp == datetime(2026, 11, 27, 10, 18, 10, tzinfo=UTC)


def test_accepts_epoch_milliseconds() -> None:
    event = decode(encode(make_event(timestamp=1795774560000)))
    assert isinstance(event, EngagementEvent)
    assert event.timestamp_ms == 1795774560000


def test_epoch_milliseconds_are_kept_exactly() -> None:
    # 2004-08-21T08:36:26.909Z: as float seconds times 1000 it truncates to ...908.
    event = decode(encode(make_event(timestamp=1093077386909)))
    assert isinstance(event, EngagementEvent)
    assert event.timestamp_ms == 1093077386909


def test_defaults_counts_to_zero_and_ignores_unknown_fields() -> None:
    raw = encode(
        {
            "eventId": "e1",
            "timestamp": NOW_MS,
            "influencerId": "i",
            "platform": "x",
            "newField": {"nested": True},
        }
    )
    event = decode(raw)
    assert isinstance(event, EngagementEvent)
    assert (event.views, event.likes, event.saves, event.campaign_id) == (0, 0, 0, None)
    assert event.platform is Platform.x


def test_accepts_the_shared_examples() -> None:
    lines = [
        b'{"eventId":"4f1c2b0e-0001","timestamp":"2026-11-27T10:15:00Z","influencerId":"inf_aarav",'
        b'"platform":"instagram","campaignId":"cmp_diwali_24","postId":"ig_1002","views":120,'
        b'"likes":9,"comments":1,"shares":0,"followers":152400,"hashtags":["#diwali","#foodie"]}',
        b'{"eventId":"4f1c2b0e-0003","timestamp":"2026-11-27T15:48:10+05:30","influencerId":'
        b'"inf_meera","platform":"youtube","postId":"yt_80","views":2300,"likes":140,'
        b'"comments":22,"shares":4}',
    ]
    for line in lines:
        assert isinstance(
            decode_event(line, now_ms=1795774560000 + 10**9, max_future_ms=0), EngagementEvent
        )


@pytest.mark.parametrize(
    ("raw", "reason", "mentions"),
    [
        (b"not json", DeadLetterReason.invalid_json, "JSON"),
        (b"", DeadLetterReason.invalid_json, "JSON"),
        (b"[1, 2]", DeadLetterReason.invalid_event, "object"),
        (encode(make_event(views=-1)), DeadLetterReason.invalid_event, "views"),
        (encode(make_event(likes="5")), DeadLetterReason.invalid_event, "likes"),
        (encode(make_event(shares=1.5)), DeadLetterReason.invalid_event, "shares"),
        (encode(make_event(comments=True)), DeadLetterReason.invalid_event, "comments"),
        (encode(make_event(platform="myspace")), DeadLetterReason.invalid_event, "platform"),
        (encode(make_event(influencerId=None)), DeadLetterReason.invalid_event, "influencerId"),
        (encode(make_event(eventId="")), DeadLetterReason.invalid_event, "eventId"),
        (
            encode(make_event(timestamp="2026-11-27T10:15:00")),
            DeadLetterReason.invalid_event,
            "offset",
        ),
        (encode(make_event(timestamp="yesterday")), DeadLetterReason.invalid_event, "timestamp"),
        (encode(make_event(timestamp=12)), DeadLetterReason.invalid_event, "range"),
        (
            encode(make_event(timestamp=NOW_MS + 301_000)),
            DeadLetterReason.future_timestamp,
            "future",
        ),
        (encode(make_event(hashtags="#one")), DeadLetterReason.invalid_event, "hashtags"),
        (b'{"eventId": "' + b"x" * 1_000_000 + b'"}', DeadLetterReason.too_large, "bytes"),
    ],
)
def test_rejects_with_reason(raw: bytes, reason: DeadLetterReason, mentions: str) -> None:
    result = decode(raw)
    assert isinstance(result, Rejection)
    assert result.reason is reason
    assert mentions.lower() in result.error.lower()


def test_rejects_missing_value() -> None:
    result = decode_event(None, now_ms=NOW_MS, max_future_ms=0)
    assert isinstance(result, Rejection)
    assert result.reason is DeadLetterReason.invalid_json


def test_timestamp_just_inside_the_future_skew_is_accepted() -> None:
    assert isinstance(decode(encode(make_event(timestamp=NOW_MS + 299_000))), EngagementEvent)


def test_batch_lays_out_columns_in_store_order() -> None:
    batch = EventBatch(source="stream")
    event = decode(
        encode(
            make_event(
                eventId="e1",
                campaignId=None,
                followers=7,
                hashtags=["#a"],
                timestamp=NOW_MS - 60_000,
            )
        )
    )
    assert isinstance(event, EngagementEvent)
    batch.add(event, partition=2, offset=41, org="acme")
    row = dict(zip(EVENT_COLUMNS, (col[0] for col in batch.columns), strict=True))
    assert row["event_id"] == "e1"
    assert row["campaign_id"] == ""
    assert row["followers"] == 7
    assert row["hashtags"] == ("#a",)
    assert (row["kafka_partition"], row["kafka_offset"]) == (2, 41)
    assert row["org"] == "acme"
    assert len(batch) == 1


def _row(event_id: str) -> Row:
    return (event_id, NOW_MS, "inf", "", "x", "", 1, 0, 0, 0, 0, None, ())


def test_a_batch_keeps_the_first_event_of_each_key() -> None:
    batch = EventBatch()
    first = batch.add_rows(
        [_row("a"), _row("b")], partitions=[0, 0], offsets=[1, 2], orgs=["o"] * 2
    )
    assert first == 0
    # `add_rows` returns the duplicates it left out: none above, here one repeated in the rows,
    # one the batch holds, and one of another organisation that is not a duplicate.
    left_out = batch.add_rows(
        [_row("c"), _row("c"), _row("a"), _row("a")],
        partitions=[1, 1, 1, 2],
        offsets=[3, 4, 5, 6],
        orgs=["o", "o", "o", "p"],
    )
    assert left_out == 2
    assert list(batch.keys()) == [("o", "a"), ("o", "b"), ("o", "c"), ("p", "a")]
    assert (batch.partitions, batch.offsets) == ([0, 0, 1, 2], [1, 2, 3, 6])
    assert batch.ids == {("o", "a"), ("o", "b"), ("o", "c"), ("p", "a")}
    assert batch.add_row(_row("d"), partition=0, offset=7, org="o")
    assert not batch.add_row(_row("d"), partition=0, offset=8, org="o")
    assert [column[-1] for column in batch.columns][-3:] == [0, 7, "o"]
    assert len(batch) == 5


async def test_a_batch_stored_as_arrow_reads_back_as_it_was_decoded(store: Store) -> None:
    raws = [
        make_event(eventId="a1", followers=12, hashtags=["#x", "#y"], timestamp=1093077386909),
        make_event(
            eventId="a2", campaignId=None, postId="p9", timestamp="2026-11-27T15:48:10+05:30"
        ),
    ]
    batch = EventBatch(source="stream")
    for offset, raw in enumerate(raws):
        row = decode_row(encode(raw), now_ms=NOW_MS, max_future_ms=0)
        assert isinstance(row, tuple)
        batch.add_row(row, partition=3, offset=offset, org="acme")
    await store.insert_arrow("engagement_events", batch.arrow())
    stored = await store.query_rows(
        f"SELECT {', '.join(EVENT_COLUMNS[:1])}, toUnixTimestamp64Milli(event_time), "
        f"{', '.join(EVENT_COLUMNS[2:])} FROM engagement_events ORDER BY event_id"
    )
    expected = [
        (*row[:12], list(row[12]), "stream", 3, offset, "acme")
        for offset, row in enumerate(batch.rows)
    ]
    assert [tuple(r) for r in stored] == expected
    assert (stored[0][1], stored[0][11], stored[1][11]) == (1093077386909, 12, None)

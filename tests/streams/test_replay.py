"""Replay pacing and the CSV-row-to-event mapping (pure; no broker)."""

import time

from streams.replay import Message, csv_row_to_event, paced


async def _collect(messages: list[Message], **kwargs: float | None) -> float:
    started = time.monotonic()
    async for _ in paced(messages, rate=kwargs.get("rate"), speedup=kwargs.get("speedup")):
        pass
    return time.monotonic() - started


async def test_rate_limits_events_per_second() -> None:
    messages = [Message(None, b"{}", None) for _ in range(21)]
    assert await _collect(messages, rate=100) >= 0.2


async def test_speedup_paces_by_recorded_event_time() -> None:
    messages = [Message(None, b"{}", 1_000_000 + i * 1000) for i in range(4)]  # 3 s recorded
    elapsed = await _collect(messages, speedup=10)
    assert 0.3 <= elapsed < 1.5


async def test_without_pacing_it_does_not_wait() -> None:
    messages = [Message(None, b"{}", 1_000_000 + i * 60_000) for i in range(100)]
    assert await _collect(messages) < 0.5


def test_csv_rows_become_events_with_a_content_hash_id() -> None:
    row = {
        "campaignId": "c",
        "influencer_id": "i",
        "platform": "tiktok",
        "views": "10",
        "likes": "2",
        "postedAt": "2026-11-27T10:00:00Z",
        "handle": "@i",
    }
    event = csv_row_to_event(row)
    assert event["influencerId"] == "i"
    assert event["views"] == 10
    assert event["timestamp"] == "2026-11-27T10:00:00Z"
    assert str(event["eventId"]).startswith("csv-")
    assert csv_row_to_event(dict(row))["eventId"] == event["eventId"]
    assert csv_row_to_event({**row, "views": "11"})["eventId"] != event["eventId"]

"""Test data: engagement events and an independent reference aggregation."""

import itertools
import time
from collections import defaultdict
from typing import Any

import orjson

from core.clickhouse import Store

_ids = itertools.count()


def make_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "eventId": f"ev-{next(_ids)}-{time.monotonic_ns()}",
        "timestamp": int(time.time() * 1000) - 60_000,
        "influencerId": "inf_a",
        "platform": "instagram",
        "campaignId": "cmp_a",
        "views": 100,
        "likes": 10,
        "comments": 2,
        "shares": 1,
        "saves": 3,
    }
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not None}


def encode(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)


_COUNTS = ("views", "likes", "comments", "shares", "saves")


def reference_metrics(
    events: list[dict[str, Any]], *, key: str, entity: str, now_ms: int
) -> dict[str, dict[str, Any]]:
    """What the API must answer, computed independently: first occurrence of each eventId wins.
    Windows are minute-aligned: the current minute of `now_ms` and the 60 (1 440) before it."""
    seen: set[str] = set()
    windows: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys((*_COUNTS, "events"), 0))
    for e in events:
        if e["eventId"] in seen:
            continue
        seen.add(e["eventId"])
        if e.get(key) != entity:
            continue
        minutes_ago = now_ms // 60_000 - e["timestamp"] // 60_000
        names = (
            ["total"]
            + (["window24h"] if minutes_ago <= 24 * 60 else [])
            + (["window1h"] if minutes_ago <= 60 else [])
        )
        for name in names:
            for c in _COUNTS:
                windows[name][c] += e.get(c, 0)
            windows[name]["events"] += 1
    out: dict[str, dict[str, Any]] = {}
    for name in ("window1h", "window24h", "total"):
        w: dict[str, Any] = dict(windows[name])
        w["engagements"] = w["likes"] + w["comments"] + w["shares"]
        w["engagementRate"] = round(w["engagements"] / w["views"] * 100, 4) if w["views"] else 0.0
        out[name] = w
    return out


ENGAGEMENT_TABLES = ("engagement_events", "post_totals", "creator_followers", "hashtag_minute")
"""The events table and the state the store maintains from it."""


def clear_events(store: Store) -> None:
    """Empty the events table and everything maintained from it (a truncate fires no view)."""
    for table in ENGAGEMENT_TABLES:
        store.command_sync(f"TRUNCATE TABLE {table}")

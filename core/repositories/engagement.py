"""The `engagement_events` table (every stored event, written by the engagement consumer and
the CSV loader) and its materialized views, and the reads answered from them: metrics windows,
the busiest campaigns, forecasts' hours and the minutes the insights agent restores from."""

from datetime import UTC, datetime
from typing import Any, NamedTuple

from core.clickhouse import Store

_MINUTES_SQL = """
SELECT org, {column}, intDiv(toUnixTimestamp64Milli(event_time), 60000) AS minute,
       sum(views), sum(likes) + sum(comments) + sum(shares)
FROM engagement_events
WHERE event_time >= {{since:DateTime64(3, 'UTC')}} AND event_time < {{until:DateTime64(3, 'UTC')}}
  AND {column} != ''
GROUP BY org, {column}, minute
ORDER BY minute
LIMIT {{limit:UInt32}}
"""
_KINDS = (("campaign", "campaign_id"), ("creator", "influencer_id"))


class StoredMinute(NamedTuple):
    """One minute's views and engagements of a campaign or a creator, by event time."""

    minute: int
    org: str
    kind: str
    scope_id: str
    views: int
    engagements: int


async def stored_minutes(
    store: Store, since_minute: int, until_minute: int, limit: int = 5_000_000
) -> list[StoredMinute]:
    """Per-minute views and engagements of every (organisation, campaign) and (organisation,
    creator) in [since_minute, until_minute), by event time, oldest first. The rollups the
    stored events made, for the insights agent's restart."""
    bounds: dict[str, Any] = {
        "since": datetime.fromtimestamp(since_minute * 60, UTC),
        "until": datetime.fromtimestamp(until_minute * 60, UTC),
        "limit": limit,
    }
    out: list[StoredMinute] = []
    for kind, column in _KINDS:
        rows = await store.query_rows(_MINUTES_SQL.format(column=column), bounds)
        out += [
            StoredMinute(int(minute), org, kind, scope_id, int(views), int(engagements))
            for org, scope_id, minute, views, engagements in rows
        ]
    out.sort(key=lambda r: r.minute)
    return out

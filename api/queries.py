"""Every store query the API makes, parameterised and bounded."""

from datetime import datetime, timedelta
from typing import Literal

from core.clickhouse import Store
from schemas.api import EntityMetrics, MetricsWindow

_FIELDS = ("views", "likes", "comments", "shares", "saves")


def _window_exprs(condition: str) -> list[str]:
    exprs = [f"sumIf({f}, {condition})" for f in _FIELDS]
    exprs.append(f"countIf({condition})")
    return exprs


_METRICS_SELECT = ", ".join(
    _window_exprs("event_time >= {h1:DateTime64(3, 'UTC')}")
    + _window_exprs("event_time >= {h24:DateTime64(3, 'UTC')}")
    + [f"sum({f})" for f in _FIELDS]
    + ["count()"]
)

_METRICS_SQL = {
    kind: f"SELECT {_METRICS_SELECT} FROM engagement_events WHERE {column} = {{id:String}}"
    for kind, column in (("campaign", "campaign_id"), ("influencer", "influencer_id"))
}


def _window(values: tuple[int, ...]) -> MetricsWindow:
    views, likes, comments, shares, saves, events = (int(v) for v in values)
    engagements = likes + comments + shares
    rate = round(engagements / views * 100, 4) if views else 0.0
    return MetricsWindow(
        views=views,
        likes=likes,
        comments=comments,
        shares=shares,
        saves=saves,
        engagements=engagements,
        engagement_rate=rate,
        events=events,
    )


async def warm_up(store: Store, now: datetime) -> None:
    """Run each read once at start-up so the first client request does not pay for loading the
    store's indexes and marks."""
    for kind in ("campaign", "influencer"):
        await entity_metrics(store, kind, "", now)


async def entity_metrics(
    store: Store, kind: Literal["campaign", "influencer"], entity_id: str, now: datetime
) -> EntityMetrics | None:
    """Windowed sums for one campaign or creator by event time; None when it has no events.

    The sort key (campaign) or the `by_influencer` projection (creator) bounds the scan.
    """
    rows = await store.query_rows(
        _METRICS_SQL[kind],
        {"id": entity_id, "h1": now - timedelta(hours=1), "h24": now - timedelta(hours=24)},
    )
    values = tuple(rows[0])
    if not values or values[-1] == 0:
        return None
    return EntityMetrics(
        window_1h=_window(values[0:6]),
        window_24h=_window(values[6:12]),
        total=_window(values[12:18]),
    )

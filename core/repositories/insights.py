"""The `campaign_insights` table: written by the campaign worker, read by the insights agent at
start-up and by `GET /insights`."""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from core.clickhouse import Store
from schemas.insights import INSIGHT_EVENT, CampaignInsight, InsightKind

INSIGHT_COLUMNS = (
    "org",
    "event_id",
    "insight_id",
    "status",
    "kind",
    "scope_kind",
    "scope_id",
    "campaign_id",
    "metric",
    "occurred_at",
    "body",
)


async def insert_insights(store: Store, insights: Sequence[CampaignInsight]) -> None:
    """One row per event; an event read again replaces its row (same sort key)."""
    if not insights:
        return
    rows = [
        (
            i.org,
            i.event_id,
            i.insight_id,
            i.status,
            i.kind,
            i.scope.kind,
            i.scope.id,
            i.campaign_id,
            i.metric,
            i.occurred_at,
            i.model_dump_json(by_alias=True),
        )
        for i in insights
    ]
    await store.insert("campaign_insights", list(zip(*rows, strict=True)), INSIGHT_COLUMNS)


async def stored_event_ids(store: Store, since: datetime) -> set[str]:
    """Ids of the insight events stored since `since` (what a restarted agent must not send
    again)."""
    rows = await store.query_rows(
        "SELECT DISTINCT event_id FROM campaign_insights"
        " WHERE occurred_at >= {since:DateTime64(3, 'UTC')} LIMIT 1000000",
        {"since": since},
    )
    return {event_id for (event_id,) in rows}


_RECENT_SQL = """
SELECT body FROM campaign_insights FINAL
WHERE org = {org:String} AND occurred_at >= {since:DateTime64(3, 'UTC')}
"""
_BEFORE_SQL = (
    " AND (occurred_at < {ts:DateTime64(3, 'UTC')}"
    " OR (occurred_at = {ts:DateTime64(3, 'UTC')} AND event_id < {id:String}))"
)
_EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
_LATEST = datetime(2299, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)


async def recent_insights(
    store: Store,
    org: str,
    *,
    campaign_id: str | None = None,
    kind: InsightKind | None = None,
    since: datetime | None = None,
    before: tuple[datetime, str] | None = None,
    limit: int = 100,
) -> list[CampaignInsight]:
    """An organisation's insight events, newest first (by `occurredAt`, then `eventId`), at or
    after `since`, strictly older than `before` (an item's (occurredAt, eventId): the cursor),
    of one campaign and one kind when given. The sort key (org, occurred_at, event_id) makes
    it a read of the organisation's range backwards until `limit` rows pass the filters. A
    `since` outside what the store holds is clamped to it."""
    sql = _RECENT_SQL
    params: dict[str, Any] = {
        "org": org,
        "since": min(max(since or _EARLIEST, _EARLIEST), _LATEST),
        "limit": limit,
    }
    if before is not None:
        sql += _BEFORE_SQL
        params |= {"ts": before[0], "id": before[1]}
    if campaign_id is not None:
        sql += " AND campaign_id = {cmp:String}"
        params["cmp"] = campaign_id
    if kind is not None:
        sql += " AND kind = {kind:String}"
        params["kind"] = kind
    sql += " ORDER BY occurred_at DESC, event_id DESC LIMIT {limit:UInt32}"
    rows = await store.query_rows(sql, params)
    return [INSIGHT_EVENT.validate_json(body) for (body,) in rows]

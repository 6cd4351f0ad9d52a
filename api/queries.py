"""Every store query the API makes, parameterised and bounded."""

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from core.clickhouse import Store
from core.coalesce import Gathered
from core.rollups import metrics_window, window_starts
from schemas.api import EntityMetrics
from schemas.dashboard import (
    CampaignEngagement,
    CampaignEngagementList,
)

if TYPE_CHECKING:
    from api.deps import Services

MINUTE_SECONDS = 60

# One row per id and age bucket (0: the last hour, 1: the rest of the last 24 hours, 2: older),
# six sums each; the windows are sums of buckets. A quarter cheaper on chDB than 24 conditional
# sums per row (~4.3 against ~5.8 ms for a point read), for the same exact answer.
_METRICS_SQL = {
    kind: f"SELECT {column},"
    " multiIf(event_time >= {h1:DateTime64(3, 'UTC')}, 0,"
    " event_time >= {h24:DateTime64(3, 'UTC')}, 1, 2) AS age,"
    " sum(views), sum(likes), sum(comments), sum(shares), sum(saves), count()"
    " FROM engagement_events"
    f" WHERE org = {{org:String}} AND {column} IN {{ids:Array(String)}} GROUP BY {column}, age"
    for kind, column in (("campaign", "campaign_id"), ("influencer", "influencer_id"))
}


async def warm_up(store: Store, now: datetime) -> None:
    """Run each read once at start-up so the first client request does not pay for loading the
    store's indexes and marks."""
    for kind in ("campaign", "influencer"):
        await entities_metrics(store, kind, "", [""], now)


MetricsKind = Literal["campaign", "influencer"]


async def entities_metrics(
    store: Store, kind: MetricsKind, org: str, ids: list[str], now: datetime
) -> dict[str, EntityMetrics]:
    """Windowed sums by event time of one organisation's events for campaigns or creators, in
    one query; an id without events has no entry. Windows are minute-aligned
    (`core.rollups.window_starts`), as the in-memory rollups answer them.

    The sort key (campaign) or the `by_org_influencer_metrics` projection (creator) bounds the scan.
    """
    rows = await store.query_rows(_METRICS_SQL[kind], {"org": org, "ids": ids, **_bounds(now)})
    buckets: dict[str, list[tuple[int, ...]]] = {}
    for row in rows:
        sums = buckets.setdefault(str(row[0]), [(0,) * 6] * 3)
        sums[int(row[1])] = tuple(int(v) for v in row[2:8])
    return {
        entity: EntityMetrics(
            window_1h=metrics_window(hour),
            window_24h=metrics_window(day := _add(hour, rest)),
            total=metrics_window(_add(day, older)),
        )
        for entity, (hour, rest, older) in buckets.items()
    }


def _bounds(now: datetime) -> dict[str, datetime]:
    """The starts of the 1 h and 24 h windows at `now` (minute-aligned: `window_starts`)."""
    hour_from, day_from = window_starts(int(now.timestamp() * 1000))
    return {
        "h1": datetime.fromtimestamp(hour_from * MINUTE_SECONDS, UTC),
        "h24": datetime.fromtimestamp(day_from * MINUTE_SECONDS, UTC),
    }


def _add(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(x + y for x, y in zip(a, b, strict=True))


def metrics_reads(store: Store, kind: MetricsKind) -> Gathered[tuple[str, str], bytes]:
    """Serialised metrics answers of one kind, read by (organisation, id); keys asked for while
    a read runs are read together by the next one (one query per organisation for many point
    reads under load)."""

    async def fetch(keys: list[tuple[str, str]]) -> dict[tuple[str, str], bytes]:
        now = datetime.now(UTC)
        by_org: dict[str, list[str]] = {}
        for org, entity in keys:
            by_org.setdefault(org, []).append(entity)
        answers: dict[tuple[str, str], bytes] = {}
        for org, ids in by_org.items():
            found = await entities_metrics(store, kind, org, ids, now)
            answers.update(
                ((org, k), m.model_dump_json(by_alias=True).encode()) for k, m in found.items()
            )
        return answers

    return Gathered(fetch)


_MAX_KNOWN_CAMPAIGNS = 1_000_000


async def campaign_created(services: "Services", org: str, campaign_id: str) -> bool:
    """Whether the organisation created a campaign of this id (another organisation's campaign
    of the id does not count). A created campaign stays created, so a yes is remembered; a no
    is cached only as long as metrics answers are."""
    key = (org, campaign_id)
    if key in services.known_campaigns:
        return True
    created = await services.created.get(
        ("created", *key), lambda: services.created_reads.get(key), services.campaigns_version
    )
    if created:
        if len(services.known_campaigns) >= _MAX_KNOWN_CAMPAIGNS:
            services.known_campaigns.clear()
        services.known_campaigns.add(key)
    return bool(created)


# -- dashboard ------------------------------------------------------------------------------


def _window_exprs(condition: str) -> list[str]:
    exprs = [f"sumIf({f}, {condition})" for f in ("views", "likes", "comments", "shares", "saves")]
    exprs.append(f"countIf({condition})")
    return exprs


_METRICS_SELECT = ", ".join(
    _window_exprs("event_time >= {h1:DateTime64(3, 'UTC')}")
    + _window_exprs("event_time >= {h24:DateTime64(3, 'UTC')}")
    + [f"sum({f})" for f in ("views", "likes", "comments", "shares", "saves")]
    + ["count()"]
)

# All three windows of the organisation's busiest campaigns in one scan, with the names and
# statuses of those it created.
_BUSIEST_SQL = f"""
SELECT e.*, c.name, c.status
FROM (
    SELECT campaign_id, {_METRICS_SELECT}
    FROM engagement_events
    WHERE org = {{org:String}} AND campaign_id != ''
    GROUP BY campaign_id
    ORDER BY countIf(event_time >= {{h24:DateTime64(3, 'UTC')}}) DESC, count() DESC,
             campaign_id ASC
    LIMIT {{limit:UInt32}}
) AS e
LEFT JOIN (
    SELECT id, argMax(name, version) AS name, argMax(status, version) AS status
    FROM campaigns WHERE org = {{org:String}} GROUP BY id
) AS c ON c.id = e.campaign_id
SETTINGS join_use_nulls = 1
"""


async def busiest_campaigns(
    store: Store, org: str, now: datetime, limit: int
) -> CampaignEngagementList:
    """The organisation's campaigns by its events in the last 24 hours, then all time, then
    id."""
    rows = await store.query_rows(
        _BUSIEST_SQL,
        {"org": org, "limit": limit, **_bounds(now)},
    )
    items = [
        CampaignEngagement(
            campaign_id=r[0],
            window_1h=metrics_window(r[1:7]),
            window_24h=metrics_window(r[7:13]),
            total=metrics_window(r[13:19]),
            name=r[19],
            status=r[20],
        )
        for r in rows
    ]
    items.sort(key=lambda c: (-c.window_24h.events, -c.total.events, c.campaign_id))
    return CampaignEngagementList(items=items, limit=limit, as_of=now)


# -- forecasts ------------------------------------------------------------------------------

HOUR_SECONDS = 3600


async def campaign_hours(
    store: Store, org: str, campaign_id: str, since_hour: int, until_hour: int
) -> tuple[dict[int, tuple[int, int]], tuple[int, int]]:
    """One organisation's campaign's views and engagements per hour (hours since the epoch) in
    [since_hour, until_hour), and their sums before `since_hour` (the sort key bounds the
    scan)."""
    rows = await store.query_rows(
        "SELECT if(event_time < {since:DateTime64(3, 'UTC')}, -1,"
        " intDiv(toUnixTimestamp64Milli(event_time), 3600000)) AS hour,"
        " sum(views), sum(likes) + sum(comments) + sum(shares)"
        " FROM engagement_events"
        " WHERE org = {org:String} AND campaign_id = {cmp:String}"
        " AND event_time < {until:DateTime64(3, 'UTC')}"
        " GROUP BY hour ORDER BY hour LIMIT {limit:UInt32}",
        {
            "org": org,
            "cmp": campaign_id,
            "since": datetime.fromtimestamp(since_hour * HOUR_SECONDS, UTC),
            "until": datetime.fromtimestamp(until_hour * HOUR_SECONDS, UTC),
            "limit": until_hour - since_hour + 1,
        },
    )
    hours = {int(r[0]): (int(r[1]), int(r[2])) for r in rows}
    earlier = hours.pop(-1, (0, 0))
    return hours, earlier

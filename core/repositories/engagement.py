"""The `engagement_events` table: every stored event, written by the engagement consumer, and
the reads answered from it (metrics windows, the busiest campaigns, forecasts' hours, the
minutes the rollups and the insights agent restore from, the brief tools' questions)."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import pyarrow as pa

from core.clickhouse import Store
from core.rollups import metrics_window, window_starts
from schemas.api import EntityMetrics, MetricsKind
from schemas.dashboard import CampaignEngagement, CampaignEngagementList

# -- metrics windows ---------------------------------------------------------------------

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
    for entity, age, views, likes, comments, shares, saves, events in rows:
        windows = buckets.setdefault(str(entity), [(0,) * 6] * 3)
        windows[int(age)] = (
            int(views),
            int(likes),
            int(comments),
            int(shares),
            int(saves),
            int(events),
        )
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


# -- the dashboard's busiest campaigns, named from `campaigns` ------------------------------


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
            campaign_id=campaign_id,
            window_1h=metrics_window(sums[0:6]),
            window_24h=metrics_window(sums[6:12]),
            total=metrics_window(sums[12:18]),
            name=name,
            status=status,
        )
        for campaign_id, *sums, name, status in rows
    ]
    items.sort(key=lambda c: (-c.window_24h.events, -c.total.events, c.campaign_id))
    return CampaignEngagementList(items=items, limit=limit, as_of=now)


# -- forecasts' hours ---------------------------------------------------------------------------

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
    hours = {int(hour): (int(views), int(engagements)) for hour, views, engagements in rows}
    earlier = hours.pop(-1, (0, 0))
    return hours, earlier


# -- the insights agent's restore -----------------------------------------------------------

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


# -- the in-memory rollups' fold ------------------------------------------------------------

_RECENT_MINUTES_SQL = """
SELECT org, {column}, intDiv(toUnixTimestamp64Milli(event_time), 60000) AS minute,
       sum(views), sum(likes), sum(comments), sum(shares), sum(saves), count()
FROM engagement_events
WHERE {where} AND event_time >= fromUnixTimestamp64Milli({{since:Int64}}) AND {column} != ''
GROUP BY org, {column}, minute
"""
_OLDER_SUMS_SQL = """
SELECT org, {column}, sum(views), sum(likes), sum(comments), sum(shares), sum(saves), count()
FROM engagement_events
WHERE {where} AND event_time < fromUnixTimestamp64Milli({{since:Int64}}) AND {column} != ''
GROUP BY org, {column}
"""


def recent_minute_sums_sync(
    store: Store, column: str, where: str, parameters: dict[str, Any]
) -> list[tuple[Any, ...]]:
    """(org, id, minute, views, likes, comments, shares, saves, events) of each id of `column`
    and minute from `since` (epoch ms) on, of the events `where` selects."""
    return store.query_rows_sync(_RECENT_MINUTES_SQL.format(column=column, where=where), parameters)


def older_sums_sync(
    store: Store, column: str, where: str, parameters: dict[str, Any]
) -> list[tuple[Any, ...]]:
    """(org, id, views, likes, comments, shares, saves, events) of each id of `column` before
    `since` (epoch ms), of the events `where` selects."""
    return store.query_rows_sync(_OLDER_SUMS_SQL.format(column=column, where=where), parameters)


# -- the engagement sink --------------------------------------------------------------------

_INSERT_SETTINGS = {"max_partitions_per_insert_block": 0}
"""A batch may hold events of any number of months (the table's partitions): one request with
events in 101 months must land, not fail the store's per-insert partition limit forever."""


async def insert_event_table(store: Store, table: pa.Table) -> None:
    """One batch of events (columns of `engagement_events`) in one insert."""
    await store.insert_arrow("engagement_events", table, _INSERT_SETTINGS)


def insert_event_columns_sync(
    store: Store, columns: Sequence[Sequence[Any]], names: Sequence[str]
) -> None:
    """Events given as columns (`names`) in one insert, from a thread (seeding a benchmark)."""
    store.insert_sync("engagement_events", columns, names)


def merge_events_sync(store: Store) -> None:
    """Merge the table's parts, as a store left alone for a while would have."""
    store.command_sync("OPTIMIZE TABLE engagement_events FINAL")


async def streamed_event_times(
    store: Store, start_ms: int, default_org: str
) -> Sequence[Sequence[Any]]:
    """Columns (event time in epoch ms, organisation, event id) of the streamed events from
    `start_ms` on; an event stored without an organisation is `default_org`'s."""
    return await store.query_columns(
        "SELECT toUnixTimestamp64Milli(event_time), if(org = '', {default:String}, org),"
        " event_id FROM engagement_events"
        " WHERE source = 'stream' AND event_time >= fromUnixTimestamp64Milli({start:Int64})",
        {"start": start_ms, "default": default_org},
    )


async def streamed_event_keys(
    store: Store, ids: Sequence[str], *, before_ms: int | None, default_org: str
) -> Sequence[Sequence[Any]]:
    """Columns (organisation, event id) of the streamed events among `ids` (older than
    `before_ms` when given)."""
    bound = (
        "" if before_ms is None else (" AND event_time < fromUnixTimestamp64Milli({before:Int64})")
    )
    return await store.query_columns(
        "SELECT if(org = '', {default:String}, org), event_id"
        " FROM engagement_events WHERE source = 'stream'"
        f"{bound} AND event_id IN {{ids:Array(String)}}",
        {"before": before_ms or 0, "ids": ids, "default": default_org},
    )


async def count_events(store: Store) -> int:
    """How many event rows the store holds."""
    rows = await store.query_rows("SELECT count() FROM engagement_events")
    return int(rows[0][0])


# -- the brief tools' questions -------------------------------------------------------------

TREND_WINDOW = timedelta(hours=24)
CREATOR_WINDOW = timedelta(days=90)

_ENGAGEMENTS = "(sum(likes) + sum(comments) + sum(shares))"
_RATE = f"if(sum(views) = 0, 0, round({_ENGAGEMENTS} / sum(views) * 100, 2))"


def _tag_filter(tags: Sequence[str] | None) -> str:
    return " AND hasAny(hashtags, {tags:Array(String)})" if tags else ""


async def tagged_creators(store: Store, org: str, platform: str, tags: Sequence[str]) -> set[str]:
    """The organisation's creators who posted one of `tags` on `platform`."""
    rows = await store.query_rows(
        "SELECT DISTINCT influencer_id FROM engagement_events "
        "WHERE org = {org:String} AND platform = {platform:String}"
        " AND hasAny(hashtags, {tags:Array(String)}) LIMIT 100000",
        {"org": org, "platform": platform, "tags": list(tags)},
    )
    return {influencer_id for (influencer_id,) in rows}


MIN_RISING_VIEWS = 200
"""A rising creator needs this many views in the last 24 hours (a jump from 1 to 5 engagements
is luck, not momentum)."""


@dataclass(frozen=True, slots=True)
class RisingCreator:
    """A creator's campaign numbers in the last 24 hours and the 24 hours before."""

    influencer_id: str
    views: int
    engagements: int
    previous_views: int
    previous_engagements: int


async def rising_creators(
    store: Store, org: str, campaign_id: str, now: datetime, limit: int
) -> list[RisingCreator]:
    """The organisation's creators in a campaign whose engagements in the last 24 hours grew
    most over the 24 hours before (the increase, then id), with `MIN_RISING_VIEWS` views or more
    in the last 24 hours. Another organisation's events are never read."""
    recent = "event_time >= {h24:DateTime64(3, 'UTC')}"
    engagements = "likes + comments + shares"
    rows = await store.query_rows(
        f"SELECT influencer_id, sumIf(views, {recent}) AS v, sumIf({engagements}, {recent}) AS e, "
        f"sumIf(views, NOT ({recent})) AS pv, sumIf({engagements}, NOT ({recent})) AS pe "
        "FROM engagement_events "
        "WHERE org = {org:String} AND campaign_id = {campaign:String} "
        "AND event_time >= {h48:DateTime64(3, 'UTC')} AND event_time < {now:DateTime64(3, 'UTC')} "
        "GROUP BY influencer_id HAVING v >= {min_views:UInt64} AND e > pe "
        "ORDER BY e - pe DESC, influencer_id ASC LIMIT {limit:UInt32}",
        {
            "org": org,
            "campaign": campaign_id,
            "h24": now - TREND_WINDOW,
            "h48": now - 2 * TREND_WINDOW,
            "now": now,
            "min_views": MIN_RISING_VIEWS,
            "limit": limit,
        },
    )
    return [
        RisingCreator(influencer_id, int(views), int(engagements), int(pv), int(pe))
        for influencer_id, views, engagements, pv, pe in rows
    ]


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True, slots=True)
class AudienceProfile:
    platform: str
    creators: int
    views: int
    engagement_rate: float
    median_followers: int | None


async def audience_profile(
    store: Store, org: str, tags: Sequence[str], now: datetime
) -> list[AudienceProfile]:
    """Per platform, the organisation's creators whose posts carry any of `tags` (last 90
    days)."""
    rows = await store.query_rows(
        f"SELECT platform, uniqExact(influencer_id), sum(views), {_RATE}, "
        "toUInt64(medianExact(followers)) FROM engagement_events"
        " WHERE org = {org:String} AND event_time >= {since:DateTime64(3, 'UTC')}"
        f"{_tag_filter(tags)} GROUP BY platform ORDER BY platform LIMIT 10",
        {"org": org, "since": now - CREATOR_WINDOW, "tags": list(tags)},
    )
    return [
        AudienceProfile(platform, int(creators), int(views), float(rate), _opt_int(followers))
        for platform, creators, views, rate, followers in rows
    ]


@dataclass(frozen=True, slots=True)
class ThemeStats:
    tag: str
    events: int
    engagement_rate: float
    share_rate: float
    comment_rate: float
    save_rate: float


async def theme_stats(
    store: Store, org: str, platform: str, now: datetime, limit: int, min_events: int = 5
) -> list[ThemeStats]:
    """What content themes (hashtags) earn on a platform in the organisation's events: rates
    per 100 views (last 90 days)."""

    def per_view(column: str) -> str:
        return f"if(sum(views) = 0, 0, round(sum({column}) / sum(views) * 100, 2))"

    rows = await store.query_rows(
        f"SELECT tag, count(), {_RATE}, {per_view('shares')}, {per_view('comments')}, "
        f"{per_view('saves')} FROM engagement_events ARRAY JOIN hashtags AS tag "
        "WHERE org = {org:String} AND platform = {platform:String}"
        " AND event_time >= {since:DateTime64(3, 'UTC')} "
        "GROUP BY tag HAVING count() >= {min_events:UInt32} "
        "ORDER BY count() DESC, tag ASC LIMIT {limit:UInt32}",
        {
            "org": org,
            "platform": platform,
            "since": now - CREATOR_WINDOW,
            "min_events": min_events,
            "limit": limit,
        },
    )
    return [
        ThemeStats(tag, int(events), float(rate), float(shares), float(comments), float(saves))
        for tag, events, rate, shares, comments, saves in rows
    ]


async def data_snapshot(store: Store) -> str:
    """Changes whenever engagement data does: part of the cache key."""
    rows = await store.query_rows("SELECT count(), max(ingested_at) FROM engagement_events")
    count, newest = rows[0]
    return f"{int(count)}@{newest.isoformat() if count else '-'}"

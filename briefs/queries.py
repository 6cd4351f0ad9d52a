"""Every store query of the brief generator, parameterised and bounded by time or LIMIT.

`top_creators` ranks creators with the top-performer engine (`scoring.queries`).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from core.clickhouse import Store
from scoring.queries import Candidate, scored_creators

MIN_CREATOR_VIEWS = 500
"""A creator needs this many views in the window to be ranked (small samples rank by luck)."""

CREATOR_WINDOW = timedelta(days=90)
TREND_WINDOW = timedelta(hours=24)

_ENGAGEMENTS = "(sum(likes) + sum(comments) + sum(shares))"
_RATE = f"if(sum(views) = 0, 0, round({_ENGAGEMENTS} / sum(views) * 100, 2))"


_RECENT = "minute >= {h24:DateTime64(3, 'UTC')}"
_TAG_RATE = (
    "if(sum(views) = 0, 0, round((sum(likes) + sum(comments) + sum(shares)) / sum(views) * 100, 2))"
)
_RECENT_RATE = (
    f"if(sumIf(views, {_RECENT}) = 0, 0, round((sumIf(likes, {_RECENT}) + sumIf(comments, "
    f"{_RECENT}) + sumIf(shares, {_RECENT})) / sumIf(views, {_RECENT}) * 100, 2))"
)


def _tag_filter(tags: Sequence[str] | None) -> str:
    return " AND hasAny(hashtags, {tags:Array(String)})" if tags else ""


def _tag_in(tags: Sequence[str] | None) -> str:
    return " AND tag IN {tags:Array(String)}" if tags else ""


@dataclass(frozen=True, slots=True)
class TagCount:
    tag: str
    recent: int
    previous: int
    engagement_rate: float


async def trending_tags(
    store: Store,
    org: str,
    platform: str | None,
    tags: Sequence[str] | None,
    now: datetime,
    limit: int,
) -> list[TagCount]:
    """Hashtags by events in the last 24 h, with the previous 24 h for growth, from the
    `hashtag_minute` view the store keeps as events arrive (minute resolution); on one platform,
    or on every platform when `platform` is None. The organisation's events only."""
    rows = await store.query_rows(
        f"SELECT tag, sumIf(events, {_RECENT}) AS recent, "
        f"sumIf(events, NOT ({_RECENT})) AS previous, {_RECENT_RATE} "
        "FROM hashtag_minute "
        "WHERE org = {org:String} AND ({platform:String} = '' OR platform = {platform:String}) "
        "AND minute >= {h48:DateTime64(3, 'UTC')} AND minute <= {now:DateTime64(3, 'UTC')}"
        f"{_tag_in(tags)} "
        "GROUP BY tag HAVING recent > 0 ORDER BY recent DESC, tag ASC LIMIT {limit:UInt32}",
        {
            "org": org,
            "platform": platform or "",
            "h24": now - TREND_WINDOW,
            "h48": now - 2 * TREND_WINDOW,
            "now": now,
            "tags": list(tags or []),
            "limit": limit,
        },
    )
    return [TagCount(r[0], int(r[1]), int(r[2]), float(r[3])) for r in rows]


async def all_time_tags(
    store: Store, org: str, platform: str, tags: Sequence[str] | None, limit: int
) -> list[TagCount]:
    rows = await store.query_rows(
        f"SELECT tag, sum(events), {_TAG_RATE} FROM hashtag_minute "
        f"WHERE org = {{org:String}} AND platform = {{platform:String}}{_tag_in(tags)} "
        "GROUP BY tag ORDER BY sum(events) DESC, tag ASC LIMIT {limit:UInt32}",
        {"org": org, "platform": platform, "tags": list(tags or []), "limit": limit},
    )
    return [TagCount(r[0], int(r[1]), 0, float(r[2])) for r in rows]


async def top_creators(
    store: Store, org: str, platform: str, tags: Sequence[str] | None, limit: int
) -> list[Candidate]:
    """Creators on a platform from the top-performer engine (the organisation's scope, as
    `GET /top-performers` ranks it), by engagementScore, then id; at least `MIN_CREATOR_VIEWS`
    views; with `tags`, only creators who posted one of them on that platform."""
    creators = await scored_creators(
        store, org=org, campaign_id=None, platform=platform, category=None
    )
    if tags:
        rows = await store.query_rows(
            "SELECT DISTINCT influencer_id FROM engagement_events "
            "WHERE org = {org:String} AND platform = {platform:String}"
            " AND hasAny(hashtags, {tags:Array(String)}) LIMIT 100000",
            {"org": org, "platform": platform, "tags": list(tags)},
        )
        tagged = {r[0] for r in rows}
        creators = [c for c in creators if c.influencer_id in tagged]
    eligible = [c for c in creators if c.views >= MIN_CREATOR_VIEWS]
    eligible.sort(key=lambda c: (-c.engagement_score, c.influencer_id))
    return eligible[:limit]


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
    return [RisingCreator(r[0], int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows]


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
    return [AudienceProfile(r[0], int(r[1]), int(r[2]), float(r[3]), _opt_int(r[4])) for r in rows]


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
    return [ThemeStats(r[0], int(r[1]), *(float(v) for v in r[2:6])) for r in rows]


async def data_snapshot(store: Store) -> str:
    """Changes whenever engagement data does: part of the cache key."""
    rows = await store.query_rows("SELECT count(), max(ingested_at) FROM engagement_events")
    count, newest = rows[0]
    return f"{int(count)}@{newest.isoformat() if count else '-'}"


# -- briefs, the cache, embeddings --------------------------------------------------------


async def insert_brief(
    store: Store, brief_id: str, org: str, request: str, brief: str, at: datetime
) -> None:
    await store.insert(
        "briefs",
        [[brief_id], [org], [request], [brief], [at]],
        ["id", "org", "request", "brief", "created_at"],
    )


async def find_brief(store: Store, brief_id: str, org: str) -> str | None:
    rows = await store.query_rows(
        "SELECT brief FROM briefs WHERE org = {org:String} AND id = {id:String} "
        "ORDER BY created_at DESC LIMIT 1",
        {"org": org, "id": brief_id},
    )
    return str(rows[0][0]) if rows else None


async def cached_brief(store: Store, key: str, org: str, now: datetime) -> str | None:
    rows = await store.query_rows(
        "SELECT brief FROM briefs WHERE org = {org:String} AND id IN ("
        " SELECT argMax(brief_id, created_at) FROM brief_cache WHERE key = {key:String}"
        " HAVING max(expires_at) > {now:DateTime64(3, 'UTC')}) LIMIT 1",
        {"org": org, "key": key, "now": now},
    )
    return str(rows[0][0]) if rows else None


async def insert_cache_entry(
    store: Store, key: str, brief_id: str, at: datetime, expires: datetime
) -> None:
    await store.insert(
        "brief_cache",
        [[key], [brief_id], [at], [expires]],
        ["key", "brief_id", "created_at", "expires_at"],
    )


@dataclass(frozen=True, slots=True)
class Document:
    kind: str
    id: str
    text: str
    distance: float | None = None


async def insert_embeddings(
    store: Store,
    org: str,
    model: str,
    docs: Sequence[tuple[str, str, int, str, Sequence[float]]],
    at: datetime,
) -> None:
    """docs: (kind, id, version, text, embedding)."""
    if not docs:
        return
    await store.insert(
        "brief_embeddings",
        [
            [org] * len(docs),
            [d[0] for d in docs],
            [d[1] for d in docs],
            [d[2] for d in docs],
            [model] * len(docs),
            [d[3] for d in docs],
            [list(d[4]) for d in docs],
            [at] * len(docs),
        ],
        ["org", "kind", "id", "version", "model", "text", "embedding", "created_at"],
    )


async def nearest_documents(
    store: Store, org: str, model: str, vector: Sequence[float], limit: int
) -> list[Document]:
    rows = await store.query_rows(
        "SELECT kind, id, argMax(text, version), "
        "cosineDistance(argMax(embedding, version), {q:Array(Float32)}) AS d "
        "FROM brief_embeddings WHERE org = {org:String} AND model = {model:String} "
        "GROUP BY kind, id ORDER BY d ASC, id ASC LIMIT {limit:UInt32}",
        {"org": org, "model": model, "q": list(vector), "limit": limit},
    )
    return [Document(r[0], r[1], r[2], float(r[3])) for r in rows]


async def recent_documents(store: Store, org: str, limit: int) -> list[Document]:
    """The organisation's newest briefs and campaigns as text (for lexical search)."""
    rows = await store.query_rows(
        "SELECT 'brief', id, request, created_at FROM briefs WHERE org = {org:String} "
        "UNION ALL SELECT 'campaign', id, concat(name, ' ', brand, ' ', body), updated_at "
        "FROM campaigns FINAL WHERE org = {org:String} "
        "ORDER BY 4 DESC LIMIT {limit:UInt32}",
        {"org": org, "limit": limit},
    )
    return [Document(r[0], r[1], r[2]) for r in rows]


async def unindexed_campaigns(
    store: Store, org: str, model: str, limit: int
) -> list[tuple[str, int, str]]:
    """Campaigns of the organisation whose newest version has no embedding by `model` yet."""
    rows = await store.query_rows(
        "SELECT id, version, concat(name, ' ', brand, ' ', body) FROM campaigns FINAL "
        "WHERE org = {org:String} AND (id, version) NOT IN ("
        " SELECT id, version FROM brief_embeddings "
        " WHERE org = {org:String} AND model = {model:String} AND kind = 'campaign') "
        "ORDER BY updated_at DESC LIMIT {limit:UInt32}",
        {"org": org, "model": model, "limit": limit},
    )
    return [(r[0], int(r[1]), r[2]) for r in rows]

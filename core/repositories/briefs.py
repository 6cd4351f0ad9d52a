"""The brief generator's tables: `briefs`, `brief_cache` and `brief_embeddings` (with the
campaign texts its retrieval indexes beside them), and `hashtag_minute`, the per-minute hashtag
view the store keeps from events for the trends the briefs and `/trends/hashtags` read."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from core.clickhouse import Store
from core.repositories.engagement import TREND_WINDOW

_RECENT = "minute >= {h24:DateTime64(3, 'UTC')}"
_TAG_RATE = (
    "if(sum(views) = 0, 0, round((sum(likes) + sum(comments) + sum(shares)) / sum(views) * 100, 2))"
)
_RECENT_RATE = (
    f"if(sumIf(views, {_RECENT}) = 0, 0, round((sumIf(likes, {_RECENT}) + sumIf(comments, "
    f"{_RECENT}) + sumIf(shares, {_RECENT})) / sumIf(views, {_RECENT}) * 100, 2))"
)


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
    return [
        TagCount(tag, int(recent), int(previous), float(rate))
        for tag, recent, previous, rate in rows
    ]


async def all_time_tags(
    store: Store, org: str, platform: str, tags: Sequence[str] | None, limit: int
) -> list[TagCount]:
    rows = await store.query_rows(
        f"SELECT tag, sum(events), {_TAG_RATE} FROM hashtag_minute "
        f"WHERE org = {{org:String}} AND platform = {{platform:String}}{_tag_in(tags)} "
        "GROUP BY tag ORDER BY sum(events) DESC, tag ASC LIMIT {limit:UInt32}",
        {"org": org, "platform": platform, "tags": list(tags or []), "limit": limit},
    )
    return [TagCount(tag, int(events), 0, float(rate)) for tag, events, rate in rows]


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
    return [Document(kind, doc_id, text, float(distance)) for kind, doc_id, text, distance in rows]


async def recent_documents(store: Store, org: str, limit: int) -> list[Document]:
    """The organisation's newest briefs and campaigns as text (for lexical search)."""
    rows = await store.query_rows(
        "SELECT 'brief', id, request, created_at FROM briefs WHERE org = {org:String} "
        "UNION ALL SELECT 'campaign', id, concat(name, ' ', brand, ' ', body), updated_at "
        "FROM campaigns FINAL WHERE org = {org:String} "
        "ORDER BY 4 DESC LIMIT {limit:UInt32}",
        {"org": org, "limit": limit},
    )
    return [Document(kind, doc_id, text) for kind, doc_id, text, _at in rows]


class UnindexedCampaign(NamedTuple):
    id: str
    version: int
    text: str


async def unindexed_campaigns(
    store: Store, org: str, model: str, limit: int
) -> list[UnindexedCampaign]:
    """Campaigns of the organisation whose newest version has no embedding by `model` yet."""
    rows = await store.query_rows(
        "SELECT id, version, concat(name, ' ', brand, ' ', body) FROM campaigns FINAL "
        "WHERE org = {org:String} AND (id, version) NOT IN ("
        " SELECT id, version FROM brief_embeddings "
        " WHERE org = {org:String} AND model = {model:String} AND kind = 'campaign') "
        "ORDER BY updated_at DESC LIMIT {limit:UInt32}",
        {"org": org, "model": model, "limit": limit},
    )
    return [
        UnindexedCampaign(campaign_id, int(version), text) for campaign_id, version, text in rows
    ]

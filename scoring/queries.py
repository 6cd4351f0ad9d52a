"""The top-performer engine's store side: every creator in a scope with its sums and score, and
the ranking. Shared by the API (`GET /top-performers`) and the brief generator (`topCreators`)."""

import asyncio
import bisect
import heapq
import itertools
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from core.clickhouse import Store
from schemas.api import ScoreComponents, TopPerformer, TopPerformers
from scoring.engagement import POST_CLIP, CreatorStats, Score, score_creators

# The organisation's own events only: with a campaignId, those of that campaign; without, all
# of them (its campaigns and organic data, campaign_id = ''). Both lead the tables' sort keys.
SCOPES = {
    "campaign": "org = {org:String} AND campaign_id = {campaign:String}",
    "organisation": "org = {org:String}",
}

# Read from the maintained per-post state (`post_totals`, kept by the store as events and CSV
# rows are inserted), never from raw events: a post's events are already folded together there.
# A campaign's post is a row of `post_totals` (campaign id leads its key), read with FINAL: parts
# are merged as they stream in key order, so the store holds no table of every post (on 1.8M
# posts a pass over every campaign peaked at ~450 MiB, against ~790 MiB grouping them). The
# organisation's scope groups a post's rows of all campaigns.
# Each platform's clip bounds (5th and 95th percentile of its posts' rates) come from a window
# over the per-platform rows, so the posts are read once, not twice with a join.
# CTEs are inlined by ClickHouse, so `per_platform` and `creators_in_scope` are referenced once
# only; the follower and attribute look-ups read their (small, per-creator) answers for every
# creator instead.
_POSTS_OF_CAMPAIGNS = """
    SELECT {by}influencer_id, platform, views AS post_views, likes AS post_likes,
           comments AS post_comments, shares AS post_shares, saves AS post_saves
    FROM post_totals FINAL
    WHERE {scope}{filters}"""
_POSTS_OF_ORGANISATION = """
    SELECT {by}influencer_id, platform, sum(views) AS post_views, sum(likes) AS post_likes,
           sum(comments) AS post_comments, sum(shares) AS post_shares,
           sum(saves) AS post_saves
    FROM post_totals
    WHERE {scope}{filters}
    GROUP BY {by}influencer_id, platform, post"""
_FILTERS = """
      AND ({platform:String} = '' OR platform = {platform:String})
      AND ({category:String} = '' OR influencer_id IN (
          SELECT influencer_id FROM creators FINAL
          WHERE org = {org:String} AND lower(category) = lower({category:String})))"""
_TOP_TEMPLATE = """
WITH
posts AS ({posts}
),
per_platform AS (
    SELECT {by}influencer_id, platform, sum(post_views) AS pv, sum(post_likes) AS pl,
           sum(post_comments) AS pc, sum(post_shares) AS ps, sum(post_saves) AS psv,
           count() AS pn,
           groupArrayIf(log((post_likes + post_comments + post_shares + 0.5) / (post_views + 1)),
                        post_views > 0) AS rates
    FROM posts
    GROUP BY {by}influencer_id, platform
),
clipped AS (
    SELECT {by}influencer_id, platform, pv, pl, pc, ps, psv, pn,
           quantileExactArray(0.05)(rates) OVER w AS lo,
           quantileExactArray(0.95)(rates) OVER w AS hi,
           arrayMap(v -> least(greatest(v, lo), hi), rates) AS xs,
           -- NULL for a platform none of whose posts has views (no bounds).
           if(sum(length(rates)) OVER w = 0, NULL, hi - lo) AS width
    FROM per_platform
    WINDOW w AS (PARTITION BY {by}platform)
),
creators_in_scope AS (
    SELECT {by}influencer_id, argMax(platform, (pv, platform)) AS primary,
           arraySort(groupArray(platform)) AS platforms,
           sum(pv) AS views, sum(pl) AS likes, sum(pc) AS comments,
           sum(ps) AS shares, sum(psv) AS saves, sum(pn) AS posts,
           -- Sorted so that sums below add in one order: same input, same score.
           arraySort(arrayFlatten(groupArray(xs))) AS post_values, max(width) AS post_range,
           (arrayReduce('quantileExactLow(0.5)', post_values)
            + arrayReduce('quantileExactHigh(0.5)', post_values)) / 2 AS centre,
           arrayMap(v -> least(greatest(v, centre - {{clip:Float64}}), centre + {{clip:Float64}}),
                    post_values) AS clipped
    FROM clipped GROUP BY {by}influencer_id
)
SELECT s.influencer_id, s.primary, s.platforms, s.views, s.likes, s.comments, s.shares,
       s.saves, s.posts, length(s.post_values), arraySum(s.clipped),
       arraySum(arrayMap(v -> v * v, s.clipped)), f.latest_followers, c.handle, c.category,
       s.post_range{by_column}
FROM creators_in_scope AS s
LEFT JOIN (
    SELECT influencer_id, argMaxMerge(latest) AS latest_followers
    FROM creator_followers
    WHERE org = {{org:String}}
    GROUP BY influencer_id
) AS f ON f.influencer_id = s.influencer_id
LEFT JOIN (
    SELECT influencer_id, handle, category FROM creators FINAL WHERE org = {{org:String}}
) AS c ON c.influencer_id = s.influencer_id{order}
SETTINGS join_use_nulls = 1
"""


def _scope_sql(
    scope: str, *, campaigns: bool, by: str = "", by_column: str = "", order: str = ""
) -> str:
    posts = (_POSTS_OF_CAMPAIGNS if campaigns else _POSTS_OF_ORGANISATION).format(
        by=by, scope=scope, filters=_FILTERS
    )
    return _TOP_TEMPLATE.format(posts=posts, by=by, by_column=by_column, order=order)


_TOP_SQL = {kind: _scope_sql(scope, campaigns=kind == "campaign") for kind, scope in SCOPES.items()}


def _campaign_pass(scope: str) -> str:
    """The campaign scope's query over the campaigns `scope` selects, with the campaign as one
    more grouping key (each campaign's posts, clip bounds and creators are its own) and its id
    as the last column."""
    return _scope_sql(
        scope,
        campaigns=True,
        by="campaign_id, ",
        by_column=", s.campaign_id",
        order="\nORDER BY s.campaign_id LIMIT {limit:UInt64}",
    )


# Every campaign scope of one organisation in one pass, and the same pass over some campaigns
# only: those whose data changed since the previous pass.
_CAMPAIGNS_SQL = _campaign_pass("org = {org:String} AND campaign_id != ''")
_SOME_CAMPAIGNS_SQL = _campaign_pass(
    "org = {org:String} AND campaign_id IN {campaigns:Array(String)}"
)

# What the top-performers answer is computed from: engagement rows, the per-post totals and
# follower gauges their materialized views keep, campaign owners (scope) and creator
# attributes. Inserts add parts with new block numbers and deletes change row counts; merges
# change neither, except the row counts of the two aggregated tables (so theirs are left out).
# The views' parts are committed after the events' part of the same insert: a scoring that
# read in between is told apart by their block numbers. (Nothing of ours updates rows in
# place: an ALTER UPDATE would go unnoticed until the next insert.) Metadata only: a few
# milliseconds.
_TOP_VERSION_SQL = """
SELECT table, max(max_block_number),
       if(table IN ('post_totals', 'creator_followers'), 0, sum(rows))
FROM system.parts
WHERE database = currentDatabase() AND active
  AND table IN ('engagement_events', 'post_totals', 'creator_followers', 'campaigns', 'creators')
GROUP BY table ORDER BY table
"""


_SEED_POSTS = """
INSERT INTO post_totals
SELECT {org:String}, concat('cmp_', toString(rand(1) % {campaigns:UInt64})),
       concat('inf_', toString(rand(2) % {creators:UInt64})),
       ['instagram', 'tiktok', 'youtube', 'x', 'facebook'][rand(3) % 5 + 1], rand64(4), 1,
       rand(5) % 5000 + 1, rand(6) % 300, rand(7) % 30, rand(8) % 20, 0
FROM numbers({rows:UInt64})
"""
_READ_POSTS = """
SELECT campaign_id, influencer_id, platform, post, views, likes, comments, shares, saves
FROM post_totals WHERE org = {org:String} FORMAT Null
"""


def seed_posts_sync(
    store: Store, org: str, *, posts: int, campaigns: int, creators: int, parts: int
) -> None:
    """Random posts straight into the per-post state, in `parts` inserts (a benchmark's store:
    campaigns `cmp_<n>`, creators `inf_<n>`)."""
    for _ in range(parts):
        store.command_sync(
            _SEED_POSTS,
            {"org": org, "campaigns": campaigns, "creators": creators, "rows": posts // parts},
        )


def read_posts_sync(store: Store, org: str) -> None:
    """Every post of `org` read and dropped: the floor any scoring pays (a benchmark's baseline)."""
    store.command_sync(_READ_POSTS, {"org": org})


async def top_performers_version(store: Store) -> tuple[tuple[Any, ...], ...]:
    """A value that changes whenever the data behind `scored_creators` may have changed."""
    return tuple(await store.query_rows(_TOP_VERSION_SQL))


TopSort = Literal["engagementRate", "engagementScore", "views", "engagements"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A creator in scope before ranking (cheap to build; only the ranked slice becomes a
    response model)."""

    influencer_id: str
    platform: str
    platforms: tuple[str, ...]
    followers: int | None
    handle: str | None
    category: str | None
    posts: int
    views: int
    likes: int
    comments: int
    shares: int
    saves: int
    score: Score | None

    @property
    def engagements(self) -> int:
        return self.likes + self.comments + self.shares

    @property
    def engagement_rate(self) -> float:
        return round(self.engagements / self.views * 100, 4) if self.views else 0.0

    @property
    def engagement_score(self) -> float:
        return self.score.score if self.score else 50.0

    def to_model(self) -> TopPerformer:
        s = self.score
        return TopPerformer(
            influencer_id=self.influencer_id,
            handle=self.handle,
            category=self.category,
            platform=self.platform,
            platforms=self.platforms,
            followers=self.followers,
            posts=self.posts,
            views=self.views,
            likes=self.likes,
            comments=self.comments,
            shares=self.shares,
            saves=self.saves,
            engagements=self.engagements,
            engagement_rate=self.engagement_rate,
            engagement_score=self.engagement_score,
            score_components=ScoreComponents(
                cohort=s.cohort if s else "none",
                cohort_size=s.cohort_size if s else 0,
                typical_post_rate=s.typical_post_rate if s else 0.0,
                cohort_post_rate=s.cohort_post_rate if s else 0.0,
                robust_z=s.robust_z if s else 0.0,
                shrinkage=s.shrinkage if s else 0.0,
            ),
        )


_SORT_KEYS: dict[str, Callable[[Candidate], float]] = {
    "engagementRate": lambda c: c.engagement_rate,
    "engagementScore": lambda c: c.engagement_score,
    "views": lambda c: c.views,
    "engagements": lambda c: c.engagements,
}


@dataclass(frozen=True, slots=True)
class ScopeRanking:
    """Every creator of one scope, scored once; `generation` tells scorings apart (a ranking
    made from one scoring is valid until the scope is scored again). `refresh`: this scoring
    replaced one still served (a stale answer is allowed while it is ranked), rather than
    loading a scope nothing held (after a miss, an eviction or a load that must show)."""

    generation: int
    creators: list[Candidate]
    refresh: bool = False

    @classmethod
    def of(cls, creators: list[Candidate], *, refresh: bool = False) -> "ScopeRanking":
        return cls(next(_GENERATIONS), creators, refresh)


_GENERATIONS = itertools.count()


async def scored_creators(
    store: Store, *, org: str, campaign_id: str | None, platform: str | None, category: str | None
) -> list[Candidate]:
    """Every creator in scope with its sums and score (unsorted). Creators with no post that
    has views get no score (50, cohort `none`). The scoring runs in a worker thread: for tens of
    thousands of creators it takes a CPU-second that must not block the event loop."""
    rows = await store.query_rows(
        _TOP_SQL["campaign" if campaign_id else "organisation"],
        {
            "org": org,
            "campaign": campaign_id or "",
            "platform": platform or "",
            "category": category or "",
            "clip": POST_CLIP,
        },
    )
    return await asyncio.to_thread(_candidates, rows)


MAX_CAMPAIGN_PASS_ROWS = 300_000
"""A pass over every campaign holds one row per (campaign, creator) pair, ~200 bytes each; an
organisation with more pairs than this has its campaigns scored one by one, on first use."""


async def scored_campaigns(
    store: Store,
    *,
    org: str,
    previous: "CampaignScopes | None" = None,
    changed: AbstractSet[str] | None = None,
    writes: int | None = None,
) -> "CampaignScopes":
    """Every campaign scope of `org` (no platform or category filter), from one pass over its
    maintained per-post state: the first read of any of its campaigns then costs no query.
    Each campaign's creators are scored when first asked for (`CampaignScopes.ranking`); until
    then, `previous` (the organisation's pass before) answers for campaigns it had scored. The
    pass is held as an Arrow table (compact; rows are made for a campaign when it is scored);
    past `MAX_CAMPAIGN_PASS_ROWS` it holds no campaign.

    With `changed` (and `previous`), only those campaigns are read again: every other keeps
    `previous`'s rows and scoring. `writes` is the count of engagement writes the pass read
    (`core.changes.ENGAGEMENT_WRITES`, read before the query), so the next pass knows what
    changed since."""
    started = time.monotonic()
    parameters = {
        "org": org,
        "platform": "",
        "category": "",
        "clip": POST_CLIP,
        "limit": MAX_CAMPAIGN_PASS_ROWS + 1,
    }
    if changed is not None and previous is not None:
        table = None
        if changed:
            table = await store.query_arrow(
                _SOME_CAMPAIGNS_SQL, {**parameters, "campaigns": sorted(changed)}
            )
        if table is None or table.num_rows <= MAX_CAMPAIGN_PASS_ROWS:
            fresh = await asyncio.to_thread(CampaignRows, table) if table is not None else {}
            return previous.updated(fresh, changed, writes, time.monotonic() - started)
    table = await store.query_arrow(_CAMPAIGNS_SQL, parameters)
    rows: Mapping[str, list[tuple[Any, ...]]] = {}
    if table.num_rows <= MAX_CAMPAIGN_PASS_ROWS:
        rows = await asyncio.to_thread(CampaignRows, table)
    return CampaignScopes(
        rows, previous, writes=writes, full_at=started, full_seconds=time.monotonic() - started
    )


class CampaignRows(Mapping[str, list[tuple[Any, ...]]]):
    """A campaign pass's rows (sorted by campaign, its id the last column) by campaign, made into
    tuples, as `Store.query_rows` gives them, only when asked for."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table
        self._ranges: dict[str, tuple[int, int]] = {}
        if table.num_rows:
            campaigns = table.column(table.num_columns - 1).combine_chunks()
            if pa.types.is_dictionary(campaigns.type):
                campaigns = campaigns.cast(pa.string())
            encoded = campaigns.dictionary_encode()
            codes = encoded.indices.to_numpy()
            starts = np.concatenate(([0], np.flatnonzero(np.diff(codes)) + 1))
            ends = np.append(starts[1:], len(codes))
            names = encoded.dictionary.to_pylist()
            self._ranges = {
                names[codes[start]]: (int(start), int(end - start))
                for start, end in zip(starts, ends, strict=True)
            }

    def __getitem__(self, campaign_id: str) -> list[tuple[Any, ...]]:
        offset, length = self._ranges[campaign_id]
        part = self._table.slice(offset, length)
        return list(zip(*(column.to_pylist() for column in part.columns), strict=True))

    def __iter__(self) -> Iterator[str]:
        return iter(self._ranges)

    def __len__(self) -> int:
        return len(self._ranges)


class ChangedRows(Mapping[str, list[tuple[Any, ...]]]):
    """A full pass's rows with some campaigns' rows replaced by a later, partial pass (None: the
    campaign has no rows any more)."""

    def __init__(
        self,
        full: Mapping[str, list[tuple[Any, ...]]],
        changed: Mapping[str, list[tuple[Any, ...]] | None],
    ) -> None:
        self.full = full
        self.changed = changed

    def __getitem__(self, campaign_id: str) -> list[tuple[Any, ...]]:
        if campaign_id in self.changed:
            rows = self.changed[campaign_id]
            if rows is None:
                raise KeyError(campaign_id)
            return rows
        return self.full[campaign_id]

    def __iter__(self) -> Iterator[str]:
        yield from (c for c in self.full if c not in self.changed)
        yield from (c for c, rows in self.changed.items() if rows is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class CampaignScopes:
    """The rows of every campaign scope of one organisation from one scoring pass; each
    campaign's `ScopeRanking` is made once, on its first read (one scoring task shared by
    concurrent readers), and meanwhile the previous pass's answers, as a stale pass would.
    A campaign without rows had no data when the pass ran.

    `full_at`, `full_seconds`: when the full pass these rows come from began
    (`time.monotonic`) and how long it took; a partial pass (`updated`) keeps them and says
    how long it took in `partial_seconds` (None for a full pass). `writes`: the engagement
    writes the rows include."""

    def __init__(
        self,
        rows: Mapping[str, list[tuple[Any, ...]]],
        previous: "CampaignScopes | None" = None,
        *,
        writes: int | None = None,
        full_at: float | None = None,
        full_seconds: float = 0.0,
        partial_seconds: float | None = None,
        rankings: "dict[str, asyncio.Task[ScopeRanking]] | None" = None,
    ) -> None:
        self._rows = rows
        self._rankings: dict[str, asyncio.Task[ScopeRanking]] = rankings or {}
        self._previous = previous
        self.writes = writes
        self.full_at = time.monotonic() if full_at is None else full_at
        self.full_seconds = full_seconds
        self.partial_seconds = partial_seconds
        if previous is not None:
            previous._previous = None  # one pass back, never a chain

    def __contains__(self, campaign_id: object) -> bool:
        return campaign_id in self._rows

    def updated(
        self,
        fresh: Mapping[str, list[tuple[Any, ...]]],
        changed: AbstractSet[str],
        writes: int | None,
        seconds: float,
    ) -> "CampaignScopes":
        """These scopes with the `changed` campaigns' rows from `fresh` (a partial pass); every
        other campaign keeps its rows and its scoring."""
        full = self._rows
        replaced: dict[str, list[tuple[Any, ...]] | None] = {}
        if isinstance(self._rows, ChangedRows):
            full, replaced = self._rows.full, dict(self._rows.changed)
        for campaign_id in changed:
            replaced[campaign_id] = fresh.get(campaign_id)
        kept = {c: task for c, task in self._rankings.items() if c not in changed}
        return CampaignScopes(
            ChangedRows(full, replaced),
            self,
            writes=writes,
            full_at=self.full_at,
            full_seconds=self.full_seconds,
            partial_seconds=seconds,
            rankings=kept,
        )

    async def ranking(self, campaign_id: str) -> ScopeRanking:
        task = self._rankings.get(campaign_id)
        if task is None or _failed(task):
            rows = self._rows
            refresh = self._previous is not None

            def score() -> ScopeRanking:
                return ScopeRanking.of(_candidates(rows.get(campaign_id, [])), refresh=refresh)

            task = asyncio.ensure_future(asyncio.to_thread(score))
            self._rankings[campaign_id] = task
        if not task.done() and self._previous is not None:
            prior = self._previous._rankings.get(campaign_id)
            if prior is not None and prior.done() and not _failed(prior):
                return prior.result()
        return await asyncio.shield(task)


def _candidates(rows: list[tuple[Any, ...]]) -> list[Candidate]:
    # The columns of `_TOP_TEMPLATE` by name (a campaign pass's rows end with the campaign id);
    # unpacked in the loops, as fast as indexing.
    stats = []
    for (
        influencer_id,
        platform,
        _platforms,
        _views,
        _likes,
        _comments,
        _shares,
        _saves,
        _posts,
        rated_posts,
        sx,
        sxx,
        followers,
        _handle,
        _category,
        post_range,
        *_campaign,
    ) in rows:
        rated = int(rated_posts)
        stats.append(
            CreatorStats(
                influencer_id=influencer_id,
                platform=platform,
                followers=None if followers is None else int(followers),
                posts=rated,
                level=sx / rated if rated else 0.0,
                variance=max(0.0, (sxx - sx * sx / rated) / (rated - 1)) if rated >= 2 else 0.0,
                post_range=float(post_range or 0.0),
            )
        )
    scores = score_creators(stats)
    # Every campaign scope holds its creators, so one creator is a candidate of many scopes at
    # once (200 campaigns x 1,000 creators: 200,000 candidates): their strings are shared, not
    # one copy per scope and scoring (a third of a candidate's memory).
    shared: dict[tuple[str, ...], tuple[str, ...]] = {}

    def platforms(names: list[str]) -> tuple[str, ...]:
        key = tuple(map(sys.intern, names))
        return shared.setdefault(key, key)

    return [
        Candidate(
            influencer_id=sys.intern(influencer_id),
            platform=sys.intern(platform),
            platforms=platforms(names),
            views=int(views),
            likes=int(likes),
            comments=int(comments),
            shares=int(shares),
            saves=int(saves),
            posts=int(posts),
            followers=None if followers is None else int(followers),
            handle=sys.intern(handle) if handle else None,
            category=sys.intern(category) if category else None,
            score=scores.get(influencer_id),
        )
        for (
            influencer_id,
            platform,
            names,
            views,
            likes,
            comments,
            shares,
            saves,
            posts,
            _rated,
            _sx,
            _sxx,
            followers,
            handle,
            category,
            *_rest,
        ) in rows
    ]


def rank(creators: list[Candidate], *, sort: TopSort, limit: int, min_views: int) -> TopPerformers:
    """Creators with at least `min_views`, sorted descending by `sort`, ties by influencerId
    ascending; the first `limit`."""
    key = _SORT_KEYS[sort]
    eligible = [c for c in creators if c.views >= min_views]
    eligible.sort(key=lambda c: (-key(c), c.influencer_id))
    return TopPerformers(
        items=[c.to_model() for c in eligible[:limit]], total=len(eligible), sort=sort, limit=limit
    )


@dataclass(slots=True)
class Ranking:
    """One scope's ranking by one sort key, as the API keeps it: the scoring `generation` it
    ranks, the ranking task and, until that is done, the scope's previous ranking."""

    generation: int
    task: "asyncio.Task[RankedScope]"
    previous: "RankedScope | None"

    def failed(self) -> bool:
        return _failed(self.task)

    def ready(self) -> "RankedScope | None":
        """The ranking when done, else the previous one (None for a scope's first)."""
        if self.task.done() and not self.failed():
            self.previous = None
            return self.task.result()
        return self.previous


def _failed(task: "asyncio.Task[Any]") -> bool:
    return task.done() and (task.cancelled() or task.exception() is not None)


@dataclass(frozen=True, slots=True, eq=False)
class RankedScope:
    """One scoring ranked once by one sort key: the answer of `rank` for every `limit` and
    `minViews` comes from it by filtering and slicing, so free parameters cost no ranking.

    `top` answers in at most about `limit` + half the scope's creators steps (no sort), and
    serialises each creator once (answers are JSON bytes, equal to `rank`'s)."""

    sort: TopSort
    creators: list[Candidate]
    """In rank order: descending by `sort`, ties by influencerId."""
    views: list[int]
    """The creators' views, ascending."""
    by_views: list[int]
    """Rank positions in the order of `views`."""
    items: list[bytes | None]
    """Each creator's JSON, made when first answered."""

    @classmethod
    def of(cls, creators: list[Candidate], sort: TopSort) -> "RankedScope":
        """Rank `creators` by `sort` (a CPU-bound sort: run it off the event loop)."""
        key = _SORT_KEYS[sort]
        keyed = [(-key(c), c.influencer_id, c) for c in creators]
        keyed.sort(key=lambda k: (k[0], k[1]))
        ranked = [c for _, _, c in keyed]
        by_views = sorted(range(len(ranked)), key=lambda i: ranked[i].views)
        return cls(
            sort,
            ranked,
            [ranked[i].views for i in by_views],
            by_views,
            [None] * len(ranked),
        )

    def top(self, *, limit: int, min_views: int) -> bytes:
        """`rank(creators, sort=..., limit=limit, min_views=min_views)` as JSON bytes."""
        first_eligible = bisect.bisect_left(self.views, min_views)
        total = len(self.creators) - first_eligible
        if first_eligible <= total:
            # Few creators excluded: walk the ranking, skipping at most those.
            chosen = list(
                itertools.islice(
                    (i for i, c in enumerate(self.creators) if c.views >= min_views), limit
                )
            )
        else:
            # Few eligible: the best-ranked of them.
            chosen = heapq.nsmallest(limit, self.by_views[first_eligible:])
        envelope = TopPerformers(items=[], total=total, sort=self.sort, limit=limit)
        tail = envelope.model_dump_json(by_alias=True).encode().removeprefix(b'{"items":[]')
        return b'{"items":[' + b",".join(self._item(i) for i in chosen) + b"]" + tail

    def _item(self, position: int) -> bytes:
        item = self.items[position]
        if item is None:
            creator = self.creators[position]
            item = self.items[position] = creator.to_model().model_dump_json(by_alias=True).encode()
        return item

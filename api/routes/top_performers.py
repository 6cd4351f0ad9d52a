"""`GET /top-performers`: creators of the caller's scope ranked by rate, score, views or
engagements. Each scope (organisation, campaign, platform, category) is scored into a short-lived
cache; each query ranks a scoring once."""

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import QueryParams

from api.deps import CallerDep, Services
from schemas.api import Problem, TopPerformers
from schemas.events import Platform
from scoring.queries import (
    CampaignScopes,
    RankedScope,
    Ranking,
    ScopeRanking,
    TopSort,
    scored_campaigns,
    scored_creators,
    top_performers_version,
)

router = APIRouter(tags=["top performers"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": Problem, "description": "A parameter is out of range or unknown."},
}
MAX_LIMIT = 100


class TopPerformersQuery(BaseModel):
    """The query of `GET /top-performers`, validated as one model (one dependency, not six)."""

    model_config = ConfigDict(populate_by_name=False, extra="ignore")

    campaign_id: str | None = Field(
        None,
        alias="campaignId",
        min_length=1,
        max_length=200,
        description="One campaign; without it: the organisation's campaigns, organic data "
        "and campaigns nobody created.",
    )
    platform: Platform | None = Field(None, description="Only this platform's data.")
    category: str | None = Field(
        None, min_length=1, max_length=100, description="Creator category (case-insensitive)."
    )
    limit: int = Field(10, ge=1, le=MAX_LIMIT, description="At most 100.")
    sort: TopSort = Field("engagementRate", description="Descending; ties by influencerId.")
    min_views: int = Field(
        0, alias="minViews", ge=0, description="Only creators with this many views."
    )


_PARSED: dict[tuple[tuple[str, str], ...], "TopPerformersQuery"] = {}
_PARSED_MAX = 4096
_FREE = {"limit": "limit", "minViews": "min_views"}
"""Numbers a caller may vary freely; they are not part of the remembered parse."""


async def top_performers_query(request: Request) -> TopPerformersQuery:
    """The query string as a `TopPerformersQuery`. The parse of its other parameters (the scope
    and sort) is remembered: dashboards ask the same few queries over and over, and validating
    one costs about a fifth of the request (FastAPI's query-model path; measured in
    docs/etl-benchmarks.md). `limit` and `minViews` are checked on their own, so varying them
    neither misses nor floods that memory. Invalid queries are 422s exactly as FastAPI would
    report them (`query.<name>`)."""
    params = request.query_params
    key = tuple(item for item in params.multi_items() if item[0] not in _FREE)
    base = _PARSED.get(key)
    if base is None:
        try:
            base = TopPerformersQuery.model_validate(dict(key))
        except ValidationError:
            return _validated(params)  # raises, naming every invalid parameter
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[key] = base
    free = {field: _bounded(field, params[name]) for name, field in _FREE.items() if name in params}
    if None in free.values():
        return _validated(params)
    return base.model_copy(update=free) if free else base


def _bounded(field: str, value: str) -> int | None:
    """`value` as the field's number when it is plain digits within the field's bounds."""
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        return None
    number = int(value)
    low, high = (1, MAX_LIMIT) if field == "limit" else (0, None)
    return number if number >= low and (high is None or number <= high) else None


def _validated(params: QueryParams) -> TopPerformersQuery:
    try:
        return TopPerformersQuery.model_validate(dict(params))
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None


def _query_parameters() -> list[dict[str, Any]]:
    """OpenAPI parameters of `TopPerformersQuery`, as FastAPI would document the model (the
    route reads the query string itself, see above)."""
    schema = TopPerformersQuery.model_json_schema(
        by_alias=True, ref_template="#/components/schemas/{model}"
    )
    return [
        {
            "name": name,
            "in": "query",
            "required": False,
            "schema": {**prop, "title": prop.get("title", name.title())},
            **({"description": prop["description"]} if "description" in prop else {}),
        }
        for name, prop in schema["properties"].items()
    ]


@router.get(
    "/top-performers",
    response_model=TopPerformers,
    summary="Creators ranked by engagement, with the score's components.",
    responses=_RESPONSES,
    openapi_extra={"parameters": _query_parameters()},
)
async def top_performers(
    caller: CallerDep,
    query: Annotated[TopPerformersQuery, Depends(top_performers_query)],
) -> Response:
    """Counts are sums over the creator's rows in scope (batch and stream alike);
    `engagementRate` is their ratio; `engagementScore` compares the creator with its cohort
    within the same scope (docs/scoring.md)."""
    services, org = caller.services, caller.principal.org
    campaign_id, category = query.campaign_id, query.category
    platform_name = query.platform.value if query.platform else None
    scored = await scope_ranking(services, org, campaign_id, platform_name, category)
    scope = _ranked_scope(org, campaign_id, platform_name, category)
    body = await _ranked(services.top_ranked, scope, scored, query)
    return Response(body, media_type="application/json")


async def scope_ranking(
    services: Services,
    org: str,
    campaign_id: str | None,
    platform: str | None,
    category: str | None,
) -> ScopeRanking:
    """Every creator of one scope (the organisation's own events only), scored. A campaign id
    another organisation also uses ranks the caller's events for it: nothing reveals the other's.

    A scope is scored from the maintained per-post state only when the data changed since it
    was last scored, at most once per TTL (longer for an expensive scoring, see `load_share`);
    the previous scoring is served meanwhile. A campaign without filters that has data is one
    of its organisation's campaign scopes, scored together (`campaign_scopes`)."""
    if campaign_id is not None and platform is None and category is None:
        scopes = await campaign_scopes(services, org)
        if campaign_id in scopes:
            return await scopes.ranking(campaign_id)
        # Not in the organisation's last pass: its first data may have come since, so it is
        # scored on its own (a campaign's first answer after its first events shows them).

    key = ("top", org, campaign_id, platform, category and category.lower())

    async def load() -> ScopeRanking:
        refresh = services.top_cache.peek(key) is not None
        creators = await scored_creators(
            services.store, org=org, campaign_id=campaign_id, platform=platform, category=category
        )
        return ScopeRanking.of(creators, refresh=refresh)

    ranking = await services.top_cache.get(key, load, _version(services))
    assert isinstance(ranking, ScopeRanking)  # `load` always answers one
    return ranking


async def warm_organisation(services: Services, org: str) -> None:
    """Score `org`'s whole-organisation scope and rank it by the default sort, as its first
    `GET /top-performers?limit=...` would (at start, so that request waits for neither)."""
    scored = await scope_ranking(services, org, None, None, None)
    await _ranked(services.top_ranked, _ranked_scope(org, None, None, None), scored, _DEFAULT_QUERY)


_DEFAULT_QUERY = TopPerformersQuery.model_validate({})


FULL_PASS_SECONDS = 30.0
"""How long a campaign pass may be renewed by partial passes (over the campaigns that new
events touched) before all campaigns are read again: what a partial pass leaves out (a
creator's follower count reported in one campaign is its count in every campaign) is at most
this old."""
SCORING_SHARE = 0.25
"""At most this share of a thread goes to re-scoring one top-performers scope while its data
keeps changing (an organisation-wide scoring of a million posts takes ~1.5 s: redone every 6 s
at most, while a campaign's, in milliseconds, follows the TTL)."""
MAX_PARTIAL_CAMPAIGNS = 1_000
"""More campaigns touched than this since the last pass: all of them are read again."""


async def campaign_scopes(services: Services, org: str) -> CampaignScopes:
    """Every campaign scope of `org` (without platform or category filters), scored in one pass
    and cached as one entry: a dashboard reading campaign after campaign waits for no scoring
    after the first, and all of them are re-scored together, once per turn of the budget.

    In the embedded platform, which knows the campaigns each write of events touched, a pass
    after the first reads only those campaigns again (a new event is ranked without a pass
    over ten thousand campaigns), and all of them every `FULL_PASS_SECONDS`."""

    key = ("top-campaigns", org)
    writes = services.engagement_writes

    async def load() -> CampaignScopes:
        previous = services.top_cache.peek(key)
        if not isinstance(previous, CampaignScopes):
            previous = None
        version = writes.version if writes is not None else None
        changed = None
        if (
            writes is not None
            and previous is not None
            and previous.writes is not None
            and time.monotonic() - previous.full_at
            < max(FULL_PASS_SECONDS, previous.full_seconds / SCORING_SHARE)
        ):
            changed = writes.touched_since(previous.writes, org)
            if changed is not None and len(changed) > MAX_PARTIAL_CAMPAIGNS:
                changed = None
        return await scored_campaigns(
            services.store, org=org, previous=previous, changed=changed, writes=version
        )

    def cost(scopes: CampaignScopes | ScopeRanking | None) -> float:
        # Where partial passes follow a full pass, the full pass paces itself (one every
        # FULL_PASS_SECONDS, or every `full_seconds / SCORING_SHARE` when slower) and only
        # partial passes count against the budget, so a slow full pass does not hold them
        # back. A standalone API's every pass is a full one, paced like any other load.
        assert isinstance(scopes, CampaignScopes)
        if scopes.partial_seconds is not None:
            return scopes.partial_seconds
        return 0.0 if writes is not None else scopes.full_seconds

    scopes = await services.top_cache.get(key, load, _version(services), cost)
    assert isinstance(scopes, CampaignScopes)  # `load` always answers one
    return scopes


def _version(services: Services) -> Callable[[], Awaitable[Hashable]]:
    """The embedded platform knows its own writes; a standalone API asks the store's parts
    metadata."""

    async def parts_version() -> Hashable:
        return await top_performers_version(services.store)

    return services.top_version or parts_version


_RANKED_MAX = 4096


def _ranked_scope(
    org: str, campaign_id: str | None, platform: str | None, category: str | None
) -> Hashable:
    """The key a scope's rankings are kept under in `services.top_ranked` (a request's and the
    start's warm-up alike)."""
    return (org, campaign_id, platform, category and category.lower())


async def _ranked(
    cache: dict[Hashable, Ranking],
    scope: Hashable,
    scored: ScopeRanking,
    query: TopPerformersQuery,
) -> bytes:
    """The answer for `query` from one scoring of its scope. Each scoring is ranked once per
    sort key (concurrent requests share the ranking); `limit` and `minViews` only filter and
    slice it, so no value of theirs costs another ranking. While a re-scored scope is being
    ranked, its previous ranking answers (as a stale scoring does while the scope is re-scored);
    a scoring that is no refresh (a scope's first, or one after its cache entry was dropped) is
    waited for."""
    key = (scope, query.sort)
    entry = cache.get(key)
    if entry is None or entry.generation < scored.generation or entry.failed():
        if len(cache) >= _RANKED_MAX:
            cache.clear()
        task = asyncio.create_task(asyncio.to_thread(RankedScope.of, scored.creators, query.sort))
        previous = entry.ready() if entry is not None and scored.refresh else None
        entry = cache[key] = Ranking(scored.generation, task, previous)
    # A request holding an older scoring than the entry's is answered from the newer one.
    ranked = entry.ready()
    if ranked is None:
        ranked = await asyncio.shield(entry.task)
    return ranked.top(limit=query.limit, min_views=query.min_views)

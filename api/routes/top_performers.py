"""`GET /top-performers`: creators of the caller's scope ranked by rate, score, views or
engagements. Each scope (organisation, campaign, platform, category) is scored into a short-lived
cache; each query ranks a scoring once."""

import asyncio
from collections.abc import Hashable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.deps import CallerDep, Services
from schemas.api import Problem, TopPerformers
from schemas.events import Platform
from scoring.queries import (
    ScopeRanking,
    TopSort,
    rank,
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


_PARSED: dict[bytes, "TopPerformersQuery"] = {}
_PARSED_MAX = 4096


async def top_performers_query(request: Request) -> TopPerformersQuery:
    """The query string as a `TopPerformersQuery`, remembered by its raw bytes: dashboards ask
    the same few queries over and over, and validating one costs about a fifth of the request
    (FastAPI's query-model path; measured in docs/etl-benchmarks.md). Invalid ones are 422s
    exactly as FastAPI would report them (`query.<name>`)."""
    raw: bytes = request.scope["query_string"]
    query = _PARSED.get(raw)
    if query is None:
        try:
            query = TopPerformersQuery.model_validate(dict(request.query_params))
        except ValidationError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_url=False)]
            ) from None
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[raw] = query
    return query


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
    scope = (org, campaign_id, platform_name, category and category.lower())
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
    the previous scoring is served meanwhile. The embedded platform knows its own writes; a
    standalone API asks the store's parts metadata."""

    async def load() -> ScopeRanking:
        creators = await scored_creators(
            services.store, org=org, campaign_id=campaign_id, platform=platform, category=category
        )
        return ScopeRanking.of(creators)

    async def parts_version() -> Hashable:
        return await top_performers_version(services.store)

    key = ("top", org, campaign_id, platform, category and category.lower())
    ranking = await services.top_cache.get(key, load, services.top_version or parts_version)
    assert ranking is not None  # `load` always answers
    return ranking


_RANKED_MAX = 4096


async def _ranked(
    cache: dict[Hashable, tuple[int, bytes]],
    scope: Hashable,
    scored: ScopeRanking,
    query: TopPerformersQuery,
) -> bytes:
    """The answer for `query` from one scoring of its scope, ranked once per scoring."""
    key = (scope, query.sort, query.limit, query.min_views)
    hit = cache.get(key)
    if hit is not None and hit[0] == scored.generation:
        return hit[1]
    ranked = await asyncio.to_thread(
        rank, scored.creators, sort=query.sort, limit=query.limit, min_views=query.min_views
    )
    body = ranked.model_dump_json(by_alias=True).encode()
    if len(cache) >= _RANKED_MAX:
        cache.clear()
    cache[key] = (scored.generation, body)
    return body

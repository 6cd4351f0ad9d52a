"""`GET /top-performers`: creators of the caller's scope ranked by rate, score, views or
engagements, served from a short-lived cache keyed by the normalised query and organisation."""

import asyncio
from collections.abc import Hashable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.deps import CallerDep
from api.errors import NotFound
from api.queries import campaign_owner
from schemas.api import Problem, TopPerformers
from schemas.events import Platform
from scoring.queries import TopSort, rank, scored_creators, top_performers_version

router = APIRouter(tags=["top performers"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "The campaign belongs to another organisation."},
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
    services, principal = caller.services, caller.principal
    org = principal.org
    campaign_id, category, sort = query.campaign_id, query.category, query.sort
    limit, min_views = query.limit, query.min_views
    platform_name = query.platform.value if query.platform else None
    key = (
        "top",
        org,
        campaign_id,
        platform_name,
        category and category.lower(),
        sort,
        limit,
        min_views,
    )

    async def load() -> bytes | None:
        if campaign_id is not None:
            owner = await campaign_owner(services, campaign_id)
            if owner is not None and owner != org:
                return None
        creators = await scored_creators(
            services.store,
            org=org,
            campaign_id=campaign_id,
            platform=platform_name,
            category=category,
        )
        ranked = await asyncio.to_thread(
            rank, creators, sort=sort, limit=limit, min_views=min_views
        )
        return ranked.model_dump_json(by_alias=True).encode()

    async def parts_version() -> Hashable:
        return await top_performers_version(services.store)

    # Reloads (a scan of the scope and scoring every creator in it) happen only when the data
    # changed since the cached answer was computed; the stale answer is served meanwhile. The
    # embedded platform knows its own writes; a standalone API asks the store's parts metadata.
    body = await services.top_cache.get(key, load, services.top_version or parts_version)
    if body is None:
        raise NotFound(f"No campaign {campaign_id!r} in your organisation.")
    return Response(body, media_type="application/json")

"""`GET /top-performers`: creators of the caller's scope ranked by rate, score, views or
engagements, served from a short-lived cache keyed by the normalised query and organisation."""

import asyncio
from collections.abc import Hashable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from api.deps import PrincipalDep, ServicesDep
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


@router.get(
    "/top-performers",
    response_model=TopPerformers,
    summary="Creators ranked by engagement, with the score's components.",
    responses=_RESPONSES,
)
async def top_performers(
    services: ServicesDep,
    principal: PrincipalDep,
    campaign_id: Annotated[
        str | None,
        Query(
            alias="campaignId",
            min_length=1,
            max_length=200,
            description="One campaign; without it: the organisation's campaigns, organic data "
            "and campaigns nobody created.",
        ),
    ] = None,
    platform: Annotated[Platform | None, Query(description="Only this platform's data.")] = None,
    category: Annotated[
        str | None,
        Query(min_length=1, max_length=100, description="Creator category (case-insensitive)."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most 100.")] = 10,
    sort: Annotated[TopSort, Query(description="Descending; ties by influencerId.")] = (
        "engagementRate"
    ),
    min_views: Annotated[
        int, Query(alias="minViews", ge=0, description="Only creators with this many views.")
    ] = 0,
) -> Response:
    """Counts are sums over the creator's rows in scope (batch and stream alike);
    `engagementRate` is their ratio; `engagementScore` compares the creator with its cohort
    within the same scope (docs/scoring.md)."""
    org = principal.org
    platform_name = platform.value if platform else None
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

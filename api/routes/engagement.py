"""`GET /engagement/campaigns`: the busiest campaigns with their three windows, for the live
dashboard; served from the short-lived metrics cache."""

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from api.deps import PrincipalDep, ServicesDep
from core.repositories.engagement import busiest_campaigns
from schemas.api import Problem
from schemas.dashboard import CampaignEngagementList

router = APIRouter(tags=["dashboard"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": Problem, "description": "`limit` is out of range."}
}


@router.get(
    "/engagement/campaigns",
    response_model=CampaignEngagementList,
    summary="The busiest campaigns: last hour, last 24 hours and all time, by event time.",
    responses=_RESPONSES,
)
async def campaign_engagement(
    services: ServicesDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=100, description="At most 100.")] = 10,
) -> Response:
    """Campaigns of your organisation and campaign ids nobody created; an answer is at most
    about a second old (`FK_METRICS_CACHE_*`)."""

    async def load() -> bytes | None:
        found = await busiest_campaigns(services.store, principal.org, datetime.now(UTC), limit)
        return found.model_dump_json(by_alias=True).encode()

    body = await services.metrics_cache.get(("busiest", principal.org, limit), load)
    return Response(body, media_type="application/json")

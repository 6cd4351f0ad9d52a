"""`GET /activity/campaigns`: the organisation's most recently changed campaigns."""

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import PrincipalDep, ServicesDep
from core.repositories.campaigns import recent_campaigns
from schemas.api import Problem
from schemas.dashboard import CampaignActivityList

router = APIRouter(tags=["dashboard"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": Problem, "description": "`limit` is out of range."}
}


@router.get(
    "/activity/campaigns",
    response_model=CampaignActivityList,
    summary="Your campaigns at their newest version, most recently changed first.",
    responses=_RESPONSES,
)
async def campaign_activity(
    services: ServicesDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=100, description="At most 100.")] = 10,
) -> CampaignActivityList:
    return await recent_campaigns(services.store, principal.org, limit)

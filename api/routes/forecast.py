"""`GET /campaigns/{id}/forecast`: where the caller's campaign is heading (`api.forecasts`)."""

from fastapi import APIRouter

from api.deps import CallerDep
from api.errors import Conflict, NotFound
from api.forecasts import cached_forecast
from api.routes.campaigns import CampaignPath
from core.ledger import CampaignNotFound
from schemas.api import Problem
from schemas.insights import CampaignForecast

router = APIRouter(tags=["insights"])


@router.get(
    "/campaigns/{campaign_id}/forecast",
    response_model=CampaignForecast,
    summary="Projected views, engagements and engagement rate at the campaign's end date.",
    responses={
        404: {"model": Problem, "description": "No such campaign in your organisation."},
        409: {"model": Problem, "description": "No complete hour with events yet."},
    },
)
async def get_forecast(campaign_id: CampaignPath, caller: CallerDep) -> CampaignForecast:
    """From the campaign's own hourly series (its complete hours, up to 4 weeks of them), to its
    `endDate` or, without one, 7 days ahead. Answers are cached per campaign, version and hour,
    and reloaded when new events were stored."""
    try:
        forecast = await cached_forecast(caller.services, caller.principal.org, campaign_id)
    except CampaignNotFound:
        raise NotFound(f"No campaign {campaign_id!r}.") from None
    if forecast is None:
        raise Conflict(
            f"Campaign {campaign_id!r} has no complete hour with events yet; a forecast needs one."
        )
    return forecast

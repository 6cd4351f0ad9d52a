"""`GET /campaigns/{id}/forecast`: a campaign's hourly series from the store, forecast to its end
date (or 7 days ahead) by `insights.forecast`, as the API answers it."""

import asyncio
import math
import time
from datetime import UTC, datetime

import numpy as np

from api.deps import Services
from briefs.tools import Forecaster
from core.clickhouse import Store
from core.ledger import CampaignNotFound
from core.repositories.engagement import HOUR_SECONDS, campaign_hours
from insights.forecast import COVERAGE, MetricForecast, forecast_campaign, horizon_hours
from insights.forecast import CampaignForecast as Forecast
from schemas.campaigns import Campaign
from schemas.insights import CampaignForecast, ForecastHistory, ForecastHorizon, Projection

MAX_HISTORY_HOURS = 28 * 24
"""Hours of history modelled (the profile uses 7 days, the backtest gains little past 4 weeks;
older events only count in the totals). A 4-week forecast takes ~0.2 s of one core."""

_DESCRIPTIONS = {
    "dampedTrendDaily": "Damped trend with a daily cycle on log(1 + hourly count); intervals "
    "from a backtest over the campaign's own history.",
    "runRate": "Fewer than 48 hours of history: flat at the mean of the last (up to) 24 hours, "
    "the interval from those hours' spread, widening with the horizon.",
}


def _hour_start(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * HOUR_SECONDS, UTC)


def _projection(forecast: MetricForecast, offset: float = 0.0, scale: float = 1.0) -> Projection:
    return Projection(
        expected=round((forecast.total + offset) * scale, 4),
        lower=round((forecast.total_lower + offset) * scale, 4),
        upper=round((forecast.total_upper + offset) * scale, 4),
    )


async def campaign_forecast(store: Store, campaign: Campaign, now: datetime) -> CampaignForecast:
    """The campaign's forecast from its complete hours up to `now`'s hour (the current hour is
    forecast, not read half-done), at most `MAX_HISTORY_HOURS` of them from its first event's
    hour. Raises `NoHistory` before the campaign has a complete hour with events."""
    current = int(now.timestamp()) // HOUR_SECONDS
    hours, (earlier_views, earlier_engagements) = await campaign_hours(
        store, campaign.org, campaign.id, current - MAX_HISTORY_HOURS, current
    )
    if not hours:
        raise NoHistory(campaign.id)
    first = min(hours)
    views = np.zeros(current - first)
    engagements = np.zeros(current - first)
    for hour, (v, e) in hours.items():
        views[hour - first], engagements[hour - first] = v, e
    end_hour = (
        math.ceil(campaign.end_date.timestamp() / HOUR_SECONDS) if campaign.end_date else None
    )
    horizon = horizon_hours(current - 1, end_hour)
    forecast: Forecast = await asyncio.to_thread(
        forecast_campaign, views, engagements, first, horizon
    )
    # The rate over all hours, older ones included, moved with its bounds.
    all_views = forecast.views.total + earlier_views
    rate = (forecast.engagements.total + earlier_engagements) / max(all_views, 1.0)
    rate_scale = (
        100 * rate / forecast.engagement_rate.total if forecast.engagement_rate.total else 0
    )
    return CampaignForecast(
        campaign_id=campaign.id,
        model=forecast.model,
        model_description=_DESCRIPTIONS[forecast.model],
        interval=COVERAGE,
        history=ForecastHistory(
            hours=forecast.history_hours,
            start=_hour_start(forecast.history_from),
            end=_hour_start(forecast.history_to),
            earlier_views=earlier_views,
            earlier_engagements=earlier_engagements,
        ),
        horizon=ForecastHorizon(
            hours=horizon,
            end=_hour_start(current + horizon),
            basis="endDate" if end_hour is not None else "default",
        ),
        views=_projection(forecast.views, earlier_views),
        engagements=_projection(forecast.engagements, earlier_engagements),
        engagement_rate=_projection(forecast.engagement_rate, scale=rate_scale),
        as_of=now,
    )


class NoHistory(Exception):
    """The campaign has no complete hour with events yet."""


async def cached_forecast(
    services: Services, org: str, campaign_id: str
) -> CampaignForecast | None:
    """The organisation's campaign's forecast as `GET /campaigns/{id}/forecast` answers it,
    cached per (organisation, campaign, version, hour) and reloaded after new events; `None`
    before the campaign has a complete hour with events. Raises `CampaignNotFound` for an id
    the organisation never created (another organisation's included)."""
    campaign = await services.ledger.get(org, campaign_id)
    hour = int(time.time()) // HOUR_SECONDS

    async def load() -> CampaignForecast | None:
        try:
            return await campaign_forecast(services.store, campaign, datetime.now(UTC))
        except NoHistory:
            return None

    return await services.forecast_cache.get(
        ("forecast", org, campaign_id, campaign.version, hour), load, services.events_version
    )


def brief_forecaster(services: Services) -> Forecaster:
    """`cached_forecast` as the brief generator's `campaignForecast` tool calls it: the same
    answers (and cache) as the API's, an unknown campaign a `LookupError`."""

    async def forecast(org: str, campaign_id: str) -> CampaignForecast | None:
        try:
            return await cached_forecast(services, org, campaign_id)
        except CampaignNotFound:
            raise LookupError(campaign_id) from None

    return forecast

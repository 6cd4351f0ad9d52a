"""Predictive insights on the wire: a campaign's forecast (`GET /campaigns/{id}/forecast`)."""

from typing import Literal

from pydantic import ConfigDict, Field

from schemas.base import UtcDatetime, WireModel

ForecastModel = Literal["dampedTrendDaily", "runRate"]
HorizonBasis = Literal["endDate", "default"]


class Projection(WireModel):
    """One metric at the horizon's end, with its 80 % interval."""

    expected: float = Field(description="The point forecast.")
    lower: float = Field(description="Lower bound of the 80 % interval (10th percentile).")
    upper: float = Field(description="Upper bound of the 80 % interval (90th percentile).")


class ForecastHistory(WireModel):
    """The hourly series the forecast was made from: whole hours, [start, end)."""

    hours: int = Field(description="Hours of history used (hours without events count as 0).")
    start: UtcDatetime = Field(description="The first hour used: the campaign's first event's.")
    end: UtcDatetime = Field(description="End of the last hour used (the current hour's start).")
    earlier_views: int = Field(
        description="Views before `start` (history older than 28 days is not modelled, only "
        "counted in the totals)."
    )
    earlier_engagements: int = Field(description="Engagements before `start`.")


class ForecastHorizon(WireModel):
    hours: int = Field(description="Hours forecast after the history (1 to 2160).")
    end: UtcDatetime = Field(description="The moment the projections are for.")
    basis: HorizonBasis = Field(
        description="`endDate`: the campaign's end date (at least one hour ahead); `default`: "
        "7 days ahead, the campaign having no end date."
    )


class CampaignForecast(WireModel):
    """Where a campaign is heading: its totals at the horizon (history included) and its
    engagement rate over all its hours, each with an 80 % interval, and what they rest on."""

    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "campaignId": "spring-launch",
                    "model": "dampedTrendDaily",
                    "modelDescription": "Damped trend with a daily cycle on log(1 + hourly "
                    "count); intervals from a backtest over the campaign's own history.",
                    "interval": 0.8,
                    "history": {
                        "hours": 96,
                        "start": "2026-12-01T09:00:00Z",
                        "end": "2026-12-05T09:00:00Z",
                        "earlierViews": 0,
                        "earlierEngagements": 0,
                    },
                    "horizon": {
                        "hours": 168,
                        "end": "2026-12-12T09:00:00Z",
                        "basis": "default",
                    },
                    "views": {"expected": 1250000.0, "lower": 1110000.0, "upper": 1420000.0},
                    "engagements": {"expected": 98000.0, "lower": 85500.0, "upper": 112000.0},
                    "engagementRate": {"expected": 7.84, "lower": 7.1, "upper": 8.6},
                    "asOf": "2026-12-05T09:12:31Z",
                }
            ]
        },
    )

    campaign_id: str
    model: ForecastModel = Field(
        description="`dampedTrendDaily` with 48 hours of history or more; `runRate` (flat at "
        "the last 24 hours' mean) with less."
    )
    model_description: str = Field(description="The model in one sentence.")
    interval: float = Field(description="Coverage of the intervals (0.8).")
    history: ForecastHistory
    horizon: ForecastHorizon
    views: Projection = Field(description="Total views at the horizon's end, history included.")
    engagements: Projection = Field(
        description="Total engagements (likes + comments + shares) at the horizon's end."
    )
    engagement_rate: Projection = Field(
        description="engagements / views * 100 over all the campaign's hours to the horizon."
    )
    as_of: UtcDatetime = Field(description="When the forecast was made.")

"""Predictive insights on the wire: the per-minute engagement rollups (topic
`engagement-rollups`), the `CampaignInsight` event on `campaign-events`, and a campaign's forecast
(`GET /campaigns/{id}/forecast`)."""

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field, TypeAdapter
from pydantic.config import JsonDict

from schemas.base import UtcDatetime, WireModel
from schemas.campaigns import CampaignEventType

ScopeKind = Literal["campaign", "creator"]
InsightKind = Literal["spike", "stall", "rateDrop"]
InsightMetric = Literal["views", "engagements", "engagementRate"]
InsightStatus = Literal["raised", "cleared"]


class EngagementRollup(WireModel):
    """One closed minute of one organisation's campaign or creator, by event time. Several
    rollups of one minute add up (events stored after the minute was published). On topic
    `engagement-rollups` a message is a JSON array of rollups, all on the partition of their
    scope's key `org/kind/id` (`ROLLUPS`)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    org: str
    kind: ScopeKind
    id: str
    minute: int = Field(description="Minutes since the Unix epoch (UTC).")
    views: int = Field(ge=0)
    engagements: int = Field(ge=0, description="likes + comments + shares.")


ROLLUPS = TypeAdapter(list[EngagementRollup])


class InsightScope(WireModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"kind": "campaign", "id": "spring-launch"}]}
    )

    kind: ScopeKind
    id: str


class MinuteWindow(WireModel):
    """Minutes [start, end) as moments."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"start": "2026-12-05T09:11:00Z", "end": "2026-12-05T09:12:00Z"}]
        }
    )

    start: UtcDatetime
    end: UtcDatetime


_INSIGHT_EXAMPLE: JsonDict = {
    "eventId": "ins_5f0c2a9e4b7d1c3a:raised",
    "type": "CampaignInsight",
    "insightId": "ins_5f0c2a9e4b7d1c3a",
    "status": "raised",
    "org": "demo",
    "campaignId": "spring-launch",
    "kind": "spike",
    "scope": {"kind": "campaign", "id": "spring-launch"},
    "metric": "views",
    "observed": 3120.0,
    "expected": 1010.5,
    "score": 9.8,
    "window": {"start": "2026-12-05T09:11:00Z", "end": "2026-12-05T09:12:00Z"},
    "baselineWindow": {
        "start": "2026-12-05T06:56:00Z",
        "end": "2026-12-05T08:56:00Z",
    },
    "firstSeen": "2026-12-05T09:11:00Z",
    "occurredAt": "2026-12-05T09:11:00Z",
}


class CampaignInsight(WireModel):
    """A live insight on `campaign-events` (key = the campaign id, or the creator id for a
    creator's spike). An episode is raised once and cleared once, both with its `insightId`;
    `eventId` (`<insightId>:<status>`) is the webhook-id. It changes no campaign's version."""

    model_config = ConfigDict(
        frozen=True,
        populate_by_name=True,
        json_schema_extra={"examples": [_INSIGHT_EXAMPLE]},
    )

    event_id: str = Field(description="`<insightId>:<status>`: the webhook-id of its deliveries.")
    type: Literal[CampaignEventType.insight] = CampaignEventType.insight
    insight_id: str = Field(description="One per episode: its `raised` and `cleared` share it.")
    status: InsightStatus
    org: str
    campaign_id: str = Field(description="The campaign, or empty for a creator's spike.")
    kind: InsightKind = Field(
        description="`spike`: far above the baseline; `stall`: a live campaign's engagements "
        "far below it; `rateDrop`: engagement rate far below the campaign's norm."
    )
    scope: InsightScope
    metric: InsightMetric
    observed: float = Field(description="Over `window`: a count, or a rate (rateDrop).")
    expected: float = Field(description="What the baseline expected over `window`.")
    score: float = Field(description="Robust z of the observation against the baseline.")
    window: MinuteWindow = Field(description="The minutes compared.")
    baseline_window: MinuteWindow = Field(description="The minutes the baseline comes from.")
    first_seen: datetime = Field(description="The minute the episode was first flagged.")
    occurred_at: datetime = Field(description="The minute this event was decided on.")


INSIGHT_EVENT = TypeAdapter(CampaignInsight)


class InsightPage(WireModel):
    """A page of an organisation's insight events (`GET /insights`), newest first: each
    episode's `raised` and, once it ended, its `cleared`, as sent on `campaign-events`."""

    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "items": [_INSIGHT_EXAMPLE],
                    "nextCursor": "MTc5NjQ2MTg2MDAwMDppbnNfNWYwYzJhOWU0YjdkMWMzYTpyYWlzZWQ=",
                    "campaignNames": {"spring-launch": "Spring launch"},
                }
            ]
        },
    )

    items: list[CampaignInsight]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for older insights; null on the last page."
    )
    campaign_names: dict[str, str] = Field(
        description="The names of the page's campaigns, by id (campaigns your organisation "
        "created; an id never created has none)."
    )


ForecastModel = Literal["dampedTrendDaily", "runRate"]
HorizonBasis = Literal["endDate", "default"]

_HISTORY_EXAMPLE: JsonDict = {
    "hours": 96,
    "start": "2026-12-01T09:00:00Z",
    "end": "2026-12-05T09:00:00Z",
    "earlierViews": 0,
    "earlierEngagements": 0,
}
_HORIZON_EXAMPLE: JsonDict = {"hours": 168, "end": "2026-12-12T09:00:00Z", "basis": "default"}
_VIEWS_PROJECTION: JsonDict = {"expected": 1250000.0, "lower": 1110000.0, "upper": 1420000.0}


class Projection(WireModel):
    """One metric at the horizon's end, with its 80 % interval."""

    model_config = ConfigDict(json_schema_extra={"examples": [_VIEWS_PROJECTION]})

    expected: float = Field(description="The point forecast.")
    lower: float = Field(description="Lower bound of the 80 % interval (10th percentile).")
    upper: float = Field(description="Upper bound of the 80 % interval (90th percentile).")


class ForecastHistory(WireModel):
    """The hourly series the forecast was made from: whole hours, [start, end)."""

    model_config = ConfigDict(json_schema_extra={"examples": [_HISTORY_EXAMPLE]})

    hours: int = Field(description="Hours of history used (hours without events count as 0).")
    start: UtcDatetime = Field(description="The first hour used: the campaign's first event's.")
    end: UtcDatetime = Field(description="End of the last hour used (the current hour's start).")
    earlier_views: int = Field(
        description="Views before `start` (history older than 28 days is not modelled, only "
        "counted in the totals)."
    )
    earlier_engagements: int = Field(description="Engagements before `start`.")


class ForecastHorizon(WireModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_HORIZON_EXAMPLE]})

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
                    "history": _HISTORY_EXAMPLE,
                    "horizon": _HORIZON_EXAMPLE,
                    "views": _VIEWS_PROJECTION,
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

"""Response bodies of the small read endpoints behind the live dashboard (`/dashboard`): busiest
campaigns, trending hashtags, recent campaign changes and webhook health."""

from pydantic import ConfigDict, Field
from pydantic.config import JsonDict

from schemas.api import TOTAL_EXAMPLE, WINDOW_1H_EXAMPLE, WINDOW_24H_EXAMPLE, MetricsWindow
from schemas.base import UtcDatetime, WireModel
from schemas.campaigns import CampaignStatus

_ENGAGEMENT_EXAMPLE: JsonDict = {
    "campaignId": "spring-launch",
    "name": "Spring launch",
    "status": "live",
    "window1h": WINDOW_1H_EXAMPLE,
    "window24h": WINDOW_24H_EXAMPLE,
    "total": TOTAL_EXAMPLE,
}
_HASHTAG_EXAMPLE: JsonDict = {
    "tag": "#monsoon",
    "events24h": 2186,
    "previous24h": 927,
    "engagementRate": 6.67,
}
_ACTIVITY_EXAMPLE: JsonDict = {
    "campaignId": "spring-launch",
    "name": "Spring launch",
    "brand": "Acme Outdoor",
    "status": "scheduled",
    "version": 2,
    "updatedAt": "2026-12-05T09:04:16.401000Z",
}
_ENDPOINT_HEALTH_EXAMPLE: JsonDict = {
    "endpointId": "ep_d08c523c92694efc",
    "url": "http://127.0.0.1:8001/hooks",
    "attempts": 2,
    "delivered": 2,
    "retrying": 0,
    "dead": 0,
    "lastStatus": "delivered",
    "lastAttemptAt": "2026-12-05T09:04:16.472000Z",
    "p95LatencyMs": 26.9,
}


class CampaignEngagement(WireModel):
    """One campaign's engagement in the three sliding windows, by event time."""

    model_config = ConfigDict(json_schema_extra={"examples": [_ENGAGEMENT_EXAMPLE]})

    campaign_id: str = Field(description="The campaignId the events carry.")
    name: str | None = Field(
        default=None, description="The campaign's name when your organisation created it."
    )
    status: CampaignStatus | None = Field(
        default=None, description="Its lifecycle status when your organisation created it."
    )
    window_1h: MetricsWindow = Field(alias="window1h", description="The last hour.")
    window_24h: MetricsWindow = Field(alias="window24h", description="The last 24 hours.")
    total: MetricsWindow = Field(description="Every event ever counted.")


class CampaignEngagementList(WireModel):
    """The busiest campaigns in your scope: your organisation's campaigns and campaign ids nobody
    created (never another organisation's), by events in the last 24 hours, then all time."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        _ENGAGEMENT_EXAMPLE,
                        {
                            "campaignId": "cmp_tech_unboxed",
                            "name": None,
                            "status": None,
                            "window1h": {
                                "views": 94720,
                                "likes": 5878,
                                "comments": 201,
                                "shares": 317,
                                "saves": 460,
                                "engagements": 6396,
                                "engagementRate": 6.7525,
                                "events": 371,
                            },
                            "window24h": {
                                "views": 511160,
                                "likes": 31132,
                                "comments": 1124,
                                "shares": 1521,
                                "saves": 2291,
                                "engagements": 33777,
                                "engagementRate": 6.6079,
                                "events": 2000,
                            },
                            "total": {
                                "views": 706869,
                                "likes": 42870,
                                "comments": 1559,
                                "shares": 2096,
                                "saves": 3128,
                                "engagements": 46525,
                                "engagementRate": 6.5818,
                                "events": 2823,
                            },
                        },
                    ],
                    "limit": 2,
                    "asOf": "2026-12-05T09:12:31.512400Z",
                }
            ]
        }
    )

    items: list[CampaignEngagement]
    limit: int = Field(description="The most campaigns the answer holds.")
    as_of: UtcDatetime = Field(description="The moment the windows are relative to.")


class TrendingHashtag(WireModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_HASHTAG_EXAMPLE]})

    tag: str = Field(description="The hashtag as events carry it (e.g. `#diwali`).")
    events_24h: int = Field(alias="events24h", description="Events with the tag, last 24 hours.")
    previous_24h: int = Field(
        alias="previous24h", description="Events with the tag in the 24 hours before that."
    )
    engagement_rate: float = Field(
        description="(likes + comments + shares) / views * 100 of its last-24-hour events."
    )


class TrendingHashtags(WireModel):
    """Hashtags by events in the last 24 hours, across all engagement data (the same query the
    brief generator's trend tool uses)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "platform": None,
                    "items": [
                        _HASHTAG_EXAMPLE,
                        {
                            "tag": "#ootd",
                            "events24h": 2173,
                            "previous24h": 872,
                            "engagementRate": 6.67,
                        },
                    ],
                    "asOf": "2026-12-05T09:12:31.613712Z",
                }
            ]
        }
    )

    platform: str | None = Field(description="The platform filtered on; null for every one.")
    items: list[TrendingHashtag]
    as_of: UtcDatetime = Field(description="The moment the windows are relative to.")


class CampaignActivity(WireModel):
    """A campaign of your organisation at its newest version."""

    model_config = ConfigDict(json_schema_extra={"examples": [_ACTIVITY_EXAMPLE]})

    campaign_id: str
    name: str
    brand: str | None = None
    status: CampaignStatus
    version: int = Field(description="1 after creation; one more per accepted change.")
    updated_at: UtcDatetime = Field(description="When the newest version was accepted.")


class CampaignActivityList(WireModel):
    """Your organisation's campaigns, most recently changed first."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        _ACTIVITY_EXAMPLE,
                        {
                            "campaignId": "summer-drop",
                            "name": "Summer drop",
                            "brand": None,
                            "status": "draft",
                            "version": 1,
                            "updatedAt": "2026-12-05T09:04:11.687000Z",
                        },
                    ]
                }
            ]
        }
    )

    items: list[CampaignActivity]


class EndpointHealth(WireModel):
    """Delivery attempts to one endpoint over the last 24 hours."""

    model_config = ConfigDict(json_schema_extra={"examples": [_ENDPOINT_HEALTH_EXAMPLE]})

    endpoint_id: str
    url: str = Field(description="The URL of the newest attempt.")
    attempts: int = Field(description="HTTP attempts made (retries included).")
    delivered: int = Field(description="Attempts the endpoint acknowledged with a 2xx.")
    retrying: int = Field(description="Failed attempts after which another was scheduled.")
    dead: int = Field(description="Failed attempts after which the delivery was dead-lettered.")
    last_status: str = Field(description="`delivered`, `retrying` or `dead`: the newest attempt.")
    last_attempt_at: UtcDatetime
    p95_latency_ms: float = Field(description="95th percentile attempt latency.")


class WebhookHealth(WireModel):
    """Your organisation's webhook deliveries over the last 24 hours, from the audit log."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "attempts": 2,
                    "delivered": 2,
                    "retrying": 0,
                    "dead": 0,
                    "successRate": 100.0,
                    "endpoints": [_ENDPOINT_HEALTH_EXAMPLE],
                    "asOf": "2026-12-05T09:12:31.642699Z",
                }
            ]
        }
    )

    attempts: int = Field(description="Every attempt, to every endpoint.")
    delivered: int
    retrying: int
    dead: int
    success_rate: float | None = Field(
        description="delivered / attempts * 100; null when there were no attempts."
    )
    endpoints: list[EndpointHealth] = Field(
        description="Endpoints with attempts, the most failing first (at most 50)."
    )
    as_of: UtcDatetime

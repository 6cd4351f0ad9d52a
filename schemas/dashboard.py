"""Response bodies of the small read endpoints behind the live dashboard (`/dashboard`): busiest
campaigns, trending hashtags, recent campaign changes and webhook health."""

from pydantic import Field

from schemas.api import MetricsWindow
from schemas.base import UtcDatetime, WireModel
from schemas.campaigns import CampaignStatus


class CampaignEngagement(WireModel):
    """One campaign's engagement in the three sliding windows, by event time."""

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

    items: list[CampaignEngagement]
    limit: int = Field(description="The most campaigns the answer holds.")
    as_of: UtcDatetime = Field(description="The moment the windows are relative to.")


class TrendingHashtag(WireModel):
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

    platform: str | None = Field(description="The platform filtered on; null for every one.")
    items: list[TrendingHashtag]
    as_of: UtcDatetime = Field(description="The moment the windows are relative to.")


class CampaignActivity(WireModel):
    """A campaign of your organisation at its newest version."""

    campaign_id: str
    name: str
    brand: str | None = None
    status: CampaignStatus
    version: int = Field(description="1 after creation; one more per accepted change.")
    updated_at: UtcDatetime = Field(description="When the newest version was accepted.")


class CampaignActivityList(WireModel):
    """Your organisation's campaigns, most recently changed first."""

    items: list[CampaignActivity]


class EndpointHealth(WireModel):
    """Delivery attempts to one endpoint over the last 24 hours."""

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

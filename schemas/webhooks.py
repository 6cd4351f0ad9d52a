"""Webhook endpoints, the delivery audit log and dead-letter replay (API bodies and the
`webhook-commands` contract)."""

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, HttpUrl

from schemas.base import UtcDatetime, WireModel
from schemas.campaigns import CampaignEventType


class EndpointCreate(WireModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    url: HttpUrl = Field(description="http(s) URL; private addresses are refused.")
    event_types: Annotated[list[CampaignEventType], Field(max_length=10)] | None = Field(
        default=None, description="Event types to receive; all when omitted or empty."
    )


class EndpointUpdate(WireModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    enabled: bool | None = None
    event_types: Annotated[list[CampaignEventType], Field(max_length=10)] | None = None


class Endpoint(WireModel):
    id: str
    url: str
    event_types: list[CampaignEventType] = Field(description="Empty means every event type.")
    enabled: bool
    disabled_reason: str | None = Field(default=None, description="e.g. 410 Gone from the URL.")
    created_at: UtcDatetime
    updated_at: UtcDatetime


class EndpointWithSecret(Endpoint):
    secret: str = Field(description="whsec_... signing secret. Shown only in this answer.")


class EndpointList(WireModel):
    items: list[Endpoint]


class ReplayRequest(WireModel):
    """Which dead-lettered deliveries to send again (all of the organisation's when empty)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    endpoint_id: str | None = None
    campaign_id: str | None = None


class ReplayAccepted(WireModel):
    command_id: str = Field(description="The replay command published to the dispatcher.")


class WebhookCommand(WireModel):
    """A command for the dispatcher on `webhook-commands`."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    command_id: str
    kind: Literal["replay"] = "replay"
    org: str
    endpoint_id: str | None = None
    campaign_id: str | None = None


AttemptStatus = Literal["delivered", "retrying", "dead"]


class DeliveryAttempt(WireModel):
    """One HTTP attempt to deliver one event to one endpoint."""

    id: str
    webhook_id: str = Field(description="The webhook-id header; the same on every retry.")
    event_type: CampaignEventType | str
    campaign_id: str
    endpoint: str = Field(description="The endpoint id.")
    endpoint_url: str
    attempt: int = Field(description="1 for the first try.")
    status: AttemptStatus = Field(
        description="delivered; retrying (another attempt is scheduled); dead (dead-lettered)."
    )
    http_status: int | None
    error: str | None
    latency_ms: float
    timestamp: UtcDatetime


class AttemptPage(WireModel):
    items: list[DeliveryAttempt]
    next_cursor: str | None = Field(description="Pass as `cursor` for older attempts.")

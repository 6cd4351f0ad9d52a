"""Webhook endpoints, the delivery audit log and dead-letter replay (API bodies and the
`webhook-commands` contract)."""

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, HttpUrl
from pydantic.config import JsonDict

from schemas.base import UtcDatetime, WireModel
from schemas.campaigns import CampaignEventType

_ENDPOINT_EXAMPLE: JsonDict = {
    "id": "ep_d08c523c92694efc",
    "url": "http://127.0.0.1:8001/hooks",
    "eventTypes": ["CampaignCreated", "CampaignStatusChanged"],
    "enabled": True,
    "disabledReason": None,
    "createdAt": "2026-12-05T09:04:16.334000Z",
    "updatedAt": "2026-12-05T09:04:16.334000Z",
}
_CURSOR_EXAMPLE = "MTc5NjQ2MTQ1NjQ3MjplZGM1OTk5NTcyZjI0NjJmOWY5NTlmNTI2MWFkOTllNw=="
_ATTEMPT_EXAMPLE: JsonDict = {
    "id": "edc5999572f2462f9f959f5261ad99e7",
    "webhookId": "evt_66fbee9ceacf4c278198681004784399",
    "eventType": "CampaignStatusChanged",
    "campaignId": "spring-launch",
    "endpoint": "ep_d08c523c92694efc",
    "endpointUrl": "http://127.0.0.1:8001/hooks",
    "attempt": 1,
    "status": "delivered",
    "httpStatus": 204,
    "error": None,
    "latencyMs": 4.932,
    "timestamp": "2026-12-05T09:04:16.472000Z",
}


class EndpointCreate(WireModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "url": "http://127.0.0.1:8001/hooks",
                    "eventTypes": ["CampaignCreated", "CampaignStatusChanged"],
                }
            ]
        },
    )

    url: HttpUrl = Field(
        description="http(s) URL; a private address (such as 127.0.0.1) is refused unless "
        "FK_WEBHOOK_ALLOWED_HOSTS names its host."
    )
    event_types: Annotated[list[CampaignEventType], Field(max_length=10)] | None = Field(
        default=None, description="Event types to receive; all when omitted or empty."
    )


class EndpointUpdate(WireModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={
            "examples": [{"enabled": False}, {"eventTypes": ["CampaignStatusChanged"]}]
        },
    )

    enabled: bool | None = None
    event_types: Annotated[list[CampaignEventType], Field(max_length=10)] | None = None


class Endpoint(WireModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_ENDPOINT_EXAMPLE]})

    id: str
    url: str
    event_types: list[CampaignEventType] = Field(description="Empty means every event type.")
    enabled: bool
    disabled_reason: str | None = Field(default=None, description="e.g. 410 Gone from the URL.")
    created_at: UtcDatetime
    updated_at: UtcDatetime


class EndpointWithSecret(Endpoint):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{**_ENDPOINT_EXAMPLE, "secret": "whsec_DaDeP1cXmQYIBVysb4DD+AJfSrOhCGOF"}]
        }
    )

    secret: str = Field(description="whsec_... signing secret. Shown only in this answer.")


class EndpointList(WireModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [_ENDPOINT_EXAMPLE]}]})

    items: list[Endpoint]


class ReplayRequest(WireModel):
    """Which dead-lettered deliveries to send again (all of the organisation's when empty)."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={
            "examples": [{"campaignId": "spring-launch"}, {"endpointId": "ep_d08c523c92694efc"}]
        },
    )

    endpoint_id: str | None = None
    campaign_id: str | None = None


class ReplayAccepted(WireModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"commandId": "cmd_fa8c4698c5bd47d182fd710f45caaf3b"}]}
    )

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

    model_config = ConfigDict(json_schema_extra={"examples": [_ATTEMPT_EXAMPLE]})

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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [_ATTEMPT_EXAMPLE],
                    "nextCursor": _CURSOR_EXAMPLE,
                }
            ]
        }
    )

    items: list[DeliveryAttempt]
    next_cursor: str | None = Field(description="Pass as `cursor` for older attempts.")

"""Campaigns: the state, the API's create/patch bodies and the `campaign-events` contract."""

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
)
from pydantic.config import JsonDict

from schemas.base import WireModel
from schemas.events import Platform


class CampaignStatus(StrEnum):
    draft = "draft"
    scheduled = "scheduled"
    live = "live"
    paused = "paused"
    completed = "completed"
    cancelled = "cancelled"


class CampaignEventType(StrEnum):
    created = "CampaignCreated"
    updated = "CampaignUpdated"
    status_changed = "CampaignStatusChanged"
    insight = "CampaignInsight"
    """A live spike, stall or engagement-rate drop (`schemas.insights.CampaignInsight`); it
    changes no campaign's state or version."""


def _aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("dates need an offset (Z or +hh:mm)")
    return value.astimezone(UTC)


def _not_a_number(value: object) -> object:
    # Lax parsing would read a number as seconds since 1970; dates are RFC 3339 text.
    if isinstance(value, int | float):
        raise ValueError("dates are RFC 3339 text, e.g. 2026-12-01T00:00:00Z")
    return value


AwareDatetime = Annotated[datetime, BeforeValidator(_not_a_number), AfterValidator(_aware_utc)]
CampaignId = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Budget = Annotated[Decimal, Field(ge=0, le=10**12, max_digits=16, decimal_places=2)]


_CAMPAIGN_EXAMPLE: JsonDict = {
    "id": "spring-launch",
    "org": "demo",
    "name": "Spring launch",
    "brand": "Acme Outdoor",
    "budget": "25000.00",
    "currency": "EUR",
    "platforms": ["instagram", "tiktok"],
    "startDate": "2027-03-01T00:00:00Z",
    "endDate": "2027-03-31T23:59:59Z",
    "status": "draft",
    "version": 1,
    "createdAt": "2026-12-05T09:04:11.687000Z",
    "updatedAt": "2026-12-05T09:04:11.687000Z",
}


class CampaignFields(WireModel):
    """The fields a caller sets; every one optional except `name` on create."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    brand: Annotated[str, StringConstraints(max_length=200)] | None = None
    budget: Budget | None = None
    currency: Currency | None = None
    platforms: Annotated[list[Platform], Field(max_length=5)] | None = None
    start_date: AwareDatetime | None = Field(default=None, description="Goes live at this time.")
    end_date: AwareDatetime | None = Field(default=None, description="Completes at this time.")


class CampaignCreate(CampaignFields):
    """`POST /campaigns`: only `name` is required; `id` lets the caller choose the id."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                # What a caller sends of the example campaign: none of the fields the
                # platform sets.
                {
                    k: v
                    for k, v in _CAMPAIGN_EXAMPLE.items()
                    if k not in ("org", "status", "version", "createdAt", "updatedAt")
                },
                {"name": "Summer drop"},
            ]
        }
    )

    id: CampaignId | None = None
    name: Name


class CampaignPatch(CampaignFields):
    """`PATCH /campaigns/{id}`: the fields to change; `status` requests a transition; `version`
    may stand in for the `If-Match` header."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"status": "scheduled"}, {"budget": "30000.00", "version": 1}]
        }
    )

    name: Name | None = None
    status: CampaignStatus | None = None
    version: Annotated[int, Field(ge=1)] | None = None


class Campaign(WireModel):
    """One campaign at one version."""

    model_config = ConfigDict(
        frozen=True, populate_by_name=True, json_schema_extra={"examples": [_CAMPAIGN_EXAMPLE]}
    )

    id: str
    org: str = Field(description="The owning organisation (from the creator's token).")
    name: str
    brand: str | None = None
    budget: Decimal | None = None
    currency: str | None = None
    platforms: list[Platform] | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    status: CampaignStatus
    version: int = Field(description="Increases by one with every accepted change.")
    created_at: datetime
    updated_at: datetime


class CampaignEvent(WireModel):
    """One accepted change on `campaign-events` (key = campaign id). `previous` is null for
    `CampaignCreated`; folding the events of a campaign in version order gives its state."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    event_id: str = Field(description="Unique per event; the webhook-id of its deliveries.")
    type: CampaignEventType
    campaign_id: str
    org: str
    version: int
    occurred_at: datetime
    previous: Campaign | None
    current: Campaign


CAMPAIGN_EVENT = TypeAdapter(CampaignEvent)


class CampaignPage(WireModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"items": [_CAMPAIGN_EXAMPLE], "nextCursor": None}]}
    )

    items: list[Campaign]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at end.")

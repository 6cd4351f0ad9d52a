"""Response and request bodies of the HTTP API (their field descriptions are the OpenAPI docs)."""

from pydantic import Field

from schemas.base import WireModel


class MetricsWindow(WireModel):
    """Sums over the events of one window. `engagements = likes + comments + shares`."""

    views: int = Field(description="Sum of view increments.")
    likes: int = Field(description="Sum of like increments.")
    comments: int = Field(description="Sum of comment increments.")
    shares: int = Field(description="Sum of share increments.")
    saves: int = Field(description="Sum of save increments (not part of engagements).")
    engagements: int = Field(description="likes + comments + shares.")
    engagement_rate: float = Field(
        description="engagements / views * 100 over the window (ratio of sums); 0 when no views."
    )
    events: int = Field(description="Distinct events (by eventId) in the window.")


class EntityMetrics(WireModel):
    """Engagement of one campaign or creator, by event time, relative to the time of the query."""

    window_1h: MetricsWindow = Field(
        alias="window1h", description="Events whose time is within the last hour."
    )
    window_24h: MetricsWindow = Field(
        alias="window24h", description="Events whose time is within the last 24 hours."
    )
    total: MetricsWindow = Field(description="All events ever counted.")


class EventsAccepted(WireModel):
    accepted: int = Field(description="How many events were published to engagement-events.")
    event_ids: list[str] = Field(description="Their eventIds, in request order.")


class Problem(WireModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[dict[str, object]] | None = Field(
        default=None, description="Per-field validation errors, when the problem is bad input."
    )


class ReadinessCheck(WireModel):
    name: str
    ok: bool
    error: str | None = None


class Readiness(WireModel):
    status: str
    checks: list[ReadinessCheck]

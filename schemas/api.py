"""Response and request bodies of the HTTP API (their field descriptions are the OpenAPI docs)."""

from typing import Literal, get_args

from pydantic import ConfigDict, Field
from pydantic.config import JsonDict

from schemas.base import WireModel

MetricsKind = Literal["campaign", "influencer"]
"""Whose windowed metrics: `GET /campaigns/{id}/metrics` or `GET /influencers/{id}/metrics`."""
METRICS_KINDS: tuple[MetricsKind, ...] = get_args(MetricsKind)

# The examples are answers of the demo platform (`fk up --demo`), so they add up as real ones do.
WINDOW_1H_EXAMPLE: JsonDict = {
    "views": 114811,
    "likes": 7323,
    "comments": 282,
    "shares": 440,
    "saves": 551,
    "engagements": 8045,
    "engagementRate": 7.0072,
    "events": 473,
}
WINDOW_24H_EXAMPLE: JsonDict = {
    "views": 509638,
    "likes": 31654,
    "comments": 1133,
    "shares": 1683,
    "saves": 2409,
    "engagements": 34470,
    "engagementRate": 6.7636,
    "events": 2051,
}
TOTAL_EXAMPLE: JsonDict = {
    "views": 714829,
    "likes": 44604,
    "comments": 1603,
    "shares": 2344,
    "saves": 3380,
    "engagements": 48551,
    "engagementRate": 6.792,
    "events": 2880,
}
_SCORE_EXAMPLE: JsonDict = {
    "cohort": "x/macro",
    "cohortSize": 5,
    "typicalPostRate": 11.5884,
    "cohortPostRate": 8.2148,
    "robustZ": 0.6745,
    "shrinkage": 0.9995,
}
_PERFORMER_EXAMPLE: JsonDict = {
    "influencerId": "inf_000038",
    "handle": "@marisol.runs",
    "category": "Fitness",
    "platform": "x",
    "platforms": ["x"],
    "followers": 821880,
    "posts": 236,
    "views": 93262,
    "likes": 10602,
    "comments": 423,
    "shares": 613,
    "saves": 847,
    "engagements": 11638,
    "engagementRate": 12.4788,
    "engagementScore": 74.99,
    "scoreComponents": _SCORE_EXAMPLE,
}


class MetricsWindow(WireModel):
    """Sums over the events of one window. `engagements = likes + comments + shares`."""

    model_config = ConfigDict(json_schema_extra={"examples": [WINDOW_1H_EXAMPLE]})

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

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "window1h": WINDOW_1H_EXAMPLE,
                    "window24h": WINDOW_24H_EXAMPLE,
                    "total": TOTAL_EXAMPLE,
                }
            ]
        }
    )

    window_1h: MetricsWindow = Field(
        alias="window1h", description="Events whose time is within the last hour."
    )
    window_24h: MetricsWindow = Field(
        alias="window24h", description="Events whose time is within the last 24 hours."
    )
    total: MetricsWindow = Field(description="All events ever counted.")


class EventsAccepted(WireModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"accepted": 2, "eventIds": ["evt_01HZX3K9Q2", "evt_01HZX3K9Q3"]}]
        }
    )

    accepted: int = Field(description="How many events were published to engagement-events.")
    event_ids: list[str] = Field(description="Their eventIds, in request order.")


class Problem(WireModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "about:blank",
                    "title": "Not Found",
                    "status": 404,
                    "detail": "No campaign 'spring-launch'.",
                    "instance": "/campaigns/spring-launch",
                },
                {
                    "type": "about:blank",
                    "title": "Unprocessable Content",
                    "status": 422,
                    "detail": "The request is not valid.",
                    "instance": "/logs",
                    "errors": [
                        {
                            "location": "query.campaignId",
                            "message": "Field required",
                            "type": "missing",
                        }
                    ],
                },
            ]
        }
    )

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[dict[str, object]] | None = Field(
        default=None, description="Per-field validation errors, when the problem is bad input."
    )


class ReadinessCheck(WireModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "broker", "ok": True, "error": None}]}
    )

    name: str
    ok: bool
    error: str | None = None


_BROKER_MEMORY_WARNING = (
    "The embedded broker holds 2,310 MiB of memory, above FK_EMBEDDED_BROKER_WARN_MB=2048: it"
    " keeps every message (~720 B per event) until fk up stops. Run Apache Kafka for long or"
    " busy runs (FK_KAFKA_BOOTSTRAP, docker-compose.yml)."
)


class ReadinessWarning(WireModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "broker", "message": _BROKER_MEMORY_WARNING}]}
    )

    name: str = Field(description="What it concerns (`broker`).")
    message: str = Field(description="What is wrong and what to do about it.")


class Readiness(WireModel):
    """`ready` (200) or `unavailable` (503), with each check and the operator warnings."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ready",
                    "checks": [
                        {"name": "broker", "ok": True, "error": None},
                        {"name": "store", "ok": True, "error": None},
                    ],
                    "warnings": [],
                },
                {
                    "status": "unavailable",
                    "checks": [
                        {"name": "broker", "ok": False, "error": "ConnectionRefusedError"},
                        {"name": "store", "ok": True, "error": None},
                    ],
                    "warnings": [],
                },
            ]
        }
    )

    status: str
    checks: list[ReadinessCheck]
    warnings: list[ReadinessWarning] = Field(
        default_factory=list,
        description="Conditions that need an operator but do not make the platform unready, e.g."
        " the embedded broker's memory above FK_EMBEDDED_BROKER_WARN_MB.",
    )


class ScoreComponents(WireModel):
    """Why a creator has its engagementScore (see docs/scoring.md)."""

    model_config = ConfigDict(json_schema_extra={"examples": [_SCORE_EXAMPLE]})

    cohort: str = Field(
        description="Peers compared with: `platform/tier` (nano <10k, micro <100k, mid <500k, "
        "macro <1M, mega, unknown), or `platform/all` / `all` when that group is too small."
    )
    cohort_size: int = Field(description="Creators in the cohort within this scope.")
    typical_post_rate: float = Field(
        description="The creator's typical per-post engagement rate in %: geometric mean of "
        "its post rates after clipping each to its platform's 5th-95th percentile."
    )
    cohort_post_rate: float = Field(description="The cohort median of typicalPostRate, in %.")
    robust_z: float = Field(
        description="(log typicalPostRate - cohort median) / (1.4826 * MAD) within the cohort."
    )
    shrinkage: float = Field(
        description="Weight (0-1) on the creator's own data; few posts pull it toward 0, i.e. "
        "toward the cohort. engagementScore = 100 * Phi(shrinkage * robustZ)."
    )


class TopPerformer(WireModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_PERFORMER_EXAMPLE]})

    influencer_id: str = Field(description="The creator.")
    handle: str | None = Field(default=None, description="Known from batch loads.")
    category: str | None = Field(default=None, description="Known from batch loads.")
    platform: str = Field(description="The platform with most of the creator's views in scope.")
    platforms: list[str] = Field(description="Every platform the creator has data on in scope.")
    followers: int | None = Field(
        description="Latest known follower count (stream or batch), any scope."
    )
    posts: int = Field(
        description="Distinct posts in scope (a stream event without postId counts as one post)."
    )
    views: int = Field(description="Sum of views in scope.")
    likes: int
    comments: int
    shares: int
    saves: int
    engagements: int = Field(description="likes + comments + shares.")
    engagement_rate: float = Field(
        description="engagements / views * 100 over the creator's rows in scope (ratio of "
        "sums); 0 when no views."
    )
    engagement_score: float = Field(description="0-100, 50 = typical for the cohort.")
    score_components: ScoreComponents


class TopPerformers(WireModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [_PERFORMER_EXAMPLE],
                    "total": 72,
                    "sort": "engagementRate",
                    "limit": 1,
                }
            ]
        }
    )

    items: list[TopPerformer] = Field(description="Sorted descending; ties by influencerId.")
    total: int = Field(description="Creators in scope with at least minViews views.")
    sort: str = Field(description="The sort key used.")
    limit: int

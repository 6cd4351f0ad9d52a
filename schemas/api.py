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


class ReadinessWarning(WireModel):
    name: str = Field(description="What it concerns (`broker`).")
    message: str = Field(description="What is wrong and what to do about it.")


class Readiness(WireModel):
    status: str
    checks: list[ReadinessCheck]
    warnings: list[ReadinessWarning] = Field(
        default_factory=list,
        description="Conditions that need an operator but do not make the platform unready, e.g."
        " the embedded broker's memory above FK_EMBEDDED_BROKER_WARN_MB.",
    )


class ScoreComponents(WireModel):
    """Why a creator has its engagementScore (see docs/scoring.md)."""

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
    items: list[TopPerformer] = Field(description="Sorted descending; ties by influencerId.")
    total: int = Field(description="Creators in scope with at least minViews views.")
    sort: str = Field(description="The sort key used.")
    limit: int

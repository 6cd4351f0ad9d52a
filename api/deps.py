"""What routes depend on: the shared clients (built in the lifespan) and the caller's identity."""

import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Annotated

from aiokafka import AIOKafkaProducer
from fastapi import Depends, Request

from api.cache import TtlCache
from api.errors import Unauthorized
from api.ratelimit import RateLimits
from briefs.service import BriefService
from core.auth import InvalidToken, Principal, verify_token
from core.changes import LocalChanges
from core.clickhouse import Store
from core.coalesce import Gathered
from core.ledger import CampaignLedger
from core.rollups import EngagementRollups
from core.settings import Settings
from schemas.insights import CampaignForecast
from scoring.queries import CampaignScopes, Ranking, ScopeRanking

FORECAST_TTL_SECONDS = 60.0
"""A forecast moves slowly: a minute's new events barely change where a campaign is heading."""


@dataclass
class Services:
    settings: Settings
    store: Store
    producer: AIOKafkaProducer
    metrics_cache: TtlCache[bytes | None]
    ledger: CampaignLedger
    created: TtlCache[bool | None]
    """Whether an (organisation, campaign id) was created, cached (`campaign_created`)."""
    created_reads: Gathered[tuple[str, str], bool]
    """The gathered look-ups of created campaigns behind `created`."""
    top_cache: TtlCache[ScopeRanking | CampaignScopes | None]
    known_campaigns: set[tuple[str, str]] = field(default_factory=set)
    """(organisation, campaign id) of campaigns known to be created (they stay created)."""
    metrics_reads: dict[str, Gathered[tuple[str, str], bytes]] = field(default_factory=dict)
    """Per kind (campaign, influencer): the gathered point reads, by (organisation, id), behind
    `metrics_cache`."""
    top_ranked: dict[Hashable, Ranking] = field(default_factory=dict)
    """Per top-performers scope and sort key: the scoring generation it ranks and the ranking."""
    tokens: dict[str, Principal] = field(default_factory=dict)
    rate_limits: RateLimits = field(default_factory=RateLimits)
    briefs: BriefService | None = None
    events_version: Callable[[], Awaitable[Hashable]] | None = None
    campaigns_version: Callable[[], Awaitable[Hashable]] | None = None
    ack_after_store: bool = False
    """Set in the embedded platform, whose broker keeps messages in memory only: POST /events
    answers once the in-process worker has stored the events (`core.changes.STORED`)."""
    """Set when the engagement writers live in this process (embedded platform): metrics answers
    are then reloaded only after new events were written, instead of on every TTL."""
    rollups: EngagementRollups | None = None
    """The worker's in-memory metrics when it runs in this process (embedded platform)."""
    top_version: Callable[[], Awaitable[Hashable]] | None = None
    """What top-performer answers are versioned by: the in-process write counts in the embedded
    platform, else the store's parts metadata."""
    engagement_writes: LocalChanges | None = None
    """The in-process engagement writes (embedded platform): which campaigns they touched, so a
    campaign pass reads only those again (`api.routes.top_performers.campaign_scopes`)."""
    forecast_cache: TtlCache[CampaignForecast | None] = field(
        default_factory=lambda: TtlCache(FORECAST_TTL_SECONDS, max_entries=10_000, load_share=0.25)
    )
    """Campaign forecasts by (organisation, campaign, version, hour), reloaded after new events
    (`events_version`) and at most a quarter of a thread's time per campaign."""


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]

_MAX_CACHED_TOKENS = 10_000

BEARER_SCHEME = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A JWT signed with FK_JWT_SECRET (HS256) carrying `org`, `sub` and `exp`.",
    }
}


async def require_principal(request: Request) -> Principal:
    """The caller, from `Authorization: Bearer <JWT>`; verified tokens are remembered until they
    expire so the signature check is not paid on every request. A write (POST, PATCH, DELETE)
    also takes one request from the caller's rate limit (`api.ratelimit`), 429 when used up.

    Deliberately one dependency reading the request itself (not HTTPBearer + Services): each
    FastAPI dependency node costs tens of microseconds on the hottest routes. The OpenAPI document
    declares the scheme (see `api.main`)."""
    services: Services = request.app.state.services
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "Send Authorization: Bearer <token>.", headers={"WWW-Authenticate": "Bearer"}
        )
    token = token.strip()
    cached = services.tokens.get(token)
    if cached is not None and cached.expires_at > time.time():
        services.rate_limits.check(request.method, request.url.path, cached)
        return cached
    try:
        principal = verify_token(
            services.settings.jwt_secret, token, issuer=services.settings.jwt_issuer
        )
    except InvalidToken as exc:
        services.tokens.pop(token, None)
        raise Unauthorized(
            f"Invalid token: {exc}.", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
        ) from None
    if len(services.tokens) >= _MAX_CACHED_TOKENS:
        services.tokens.clear()
    services.tokens[token] = principal
    services.rate_limits.check(request.method, request.url.path, principal)
    return principal


PrincipalDep = Annotated[Principal, Depends(require_principal)]


@dataclass(frozen=True, slots=True)
class Caller:
    """The shared clients and the authenticated caller, resolved as one dependency (for the
    hottest read routes, where each dependency node is measurable)."""

    services: Services
    principal: Principal


async def require_caller(request: Request) -> Caller:
    principal = await require_principal(request)
    return Caller(services=request.app.state.services, principal=principal)


CallerDep = Annotated[Caller, Depends(require_caller)]

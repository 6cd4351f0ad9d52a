"""`GET /trends/hashtags`: hashtags by events in the last 24 hours, through the brief
generator's own trend query (one definition of "trending")."""

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from api.deps import PrincipalDep, ServicesDep
from core.repositories.briefs import trending_tags
from schemas.api import Problem
from schemas.dashboard import TrendingHashtag, TrendingHashtags
from schemas.events import Platform

router = APIRouter(tags=["dashboard"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": Problem, "description": "An unknown platform or `limit` out of range."}
}


@router.get(
    "/trends/hashtags",
    response_model=TrendingHashtags,
    summary="Trending hashtags: events in the last 24 hours and the 24 hours before.",
    responses=_RESPONSES,
)
async def trending_hashtags(
    services: ServicesDep,
    principal: PrincipalDep,
    platform: Annotated[Platform | None, Query(description="Only this platform's events.")] = None,
    limit: Annotated[int, Query(ge=1, le=50, description="At most 50.")] = 10,
) -> Response:
    """The caller's organisation's events only, like the brief generator's trend tool."""
    name = platform.value if platform else None
    org = principal.org

    async def load() -> bytes | None:
        now = datetime.now(UTC)
        tags = await trending_tags(services.store, org, name, None, now, limit)
        answer = TrendingHashtags(
            platform=name,
            items=[
                TrendingHashtag(
                    tag=t.tag,
                    events_24h=t.recent,
                    previous_24h=t.previous,
                    engagement_rate=t.engagement_rate,
                )
                for t in tags
            ],
            as_of=now,
        )
        return answer.model_dump_json(by_alias=True).encode()

    body = await services.metrics_cache.get(("trends", org, name, limit), load)
    return Response(body, media_type="application/json")

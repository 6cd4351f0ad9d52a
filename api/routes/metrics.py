"""Windowed engagement metrics of a campaign or a creator: from in-memory rollups in the embedded
platform, else from the store behind a short-lived cache."""

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from api.deps import CallerDep, Services
from api.errors import NotFound
from api.queries import campaign_created
from schemas.api import EntityMetrics, MetricsKind, MetricsWindow, Problem

router = APIRouter(tags=["metrics"])

EntityId = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]

_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No events and no record for this id."}
}


_NO_EVENTS = (
    EntityMetrics.model_validate(
        {
            w: dict.fromkeys(MetricsWindow.model_fields, 0)
            for w in ("window1h", "window24h", "total")
        }
    )
    .model_dump_json(by_alias=True)
    .encode()
)


async def _metrics(
    services: Services,
    kind: MetricsKind,
    org: str,
    entity_id: str,
    *,
    has_record: Callable[[], Awaitable[bool]] | None = None,
) -> Response:
    """One organisation's events only: from the worker's in-memory rollups when it runs in this
    process, else from the store behind a cache of serialised answers (a hit costs no
    validation or encoding). An id without events is 404, unless `has_record` says the
    organisation has a record of it (a created campaign): then it answers zeros."""

    rollups = services.rollups
    body: bytes | None
    if rollups is not None and rollups.ready:
        found = rollups.metrics(kind, org, entity_id, int(time.time() * 1000))
        body = None if found is None else found.model_dump_json(by_alias=True).encode()
    else:

        async def load() -> bytes | None:
            return await services.metrics_reads[kind].get((org, entity_id))

        body = await services.metrics_cache.get(
            (kind, org, entity_id), load, services.events_version
        )
    if body is None:
        if has_record is None or not await has_record():
            raise NotFound(f"No {kind} {entity_id!r} has events.")
        body = _NO_EVENTS
    return Response(body, media_type="application/json")


@router.get(
    "/campaigns/{campaign_id}/metrics",
    response_model=EntityMetrics,
    summary="Engagement of a campaign: last hour, last 24 hours and all time, by event time.",
    responses=_RESPONSES,
)
async def campaign_metrics(campaign_id: EntityId, caller: CallerDep) -> Response:
    """The caller's organisation's events for this campaign id, whoever else uses the id; a
    campaign the organisation created but without events yet answers zeros."""
    services, org = caller.services, caller.principal.org

    async def created() -> bool:
        return await campaign_created(services, org, campaign_id)

    return await _metrics(services, "campaign", org, campaign_id, has_record=created)


@router.get(
    "/influencers/{influencer_id}/metrics",
    response_model=EntityMetrics,
    summary="Engagement of a creator: last hour, last 24 hours and all time, by event time.",
    responses=_RESPONSES,
)
async def influencer_metrics(influencer_id: EntityId, caller: CallerDep) -> Response:
    """The caller's organisation's events for this creator."""
    return await _metrics(caller.services, "influencer", caller.principal.org, influencer_id)

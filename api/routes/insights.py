"""`GET /insights`: the caller's organisation's live insights (spikes, stalls, rate drops), newest
first, from the `campaign_insights` table the campaign worker fills."""

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BeforeValidator

from api.deps import PrincipalDep, ServicesDep
from api.pagination import decode_cursor, encode_cursor
from core.repositories.campaigns import campaign_names
from core.repositories.insights import recent_insights
from schemas.insights import InsightKind, InsightPage

router = APIRouter(tags=["insights"])

_RFC3339_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ]")


def _rfc3339_only(value: Any) -> Any:
    """A moment as RFC 3339 text, as the document says: not a number of seconds, which pydantic
    would otherwise read as a Unix time."""
    if isinstance(value, str) and not _RFC3339_DATE.match(value):
        raise ValueError("expected an RFC 3339 date-time with an offset")
    return value


Moment = Annotated[AwareDatetime, BeforeValidator(_rfc3339_only)]


@router.get(
    "/insights",
    response_model=InsightPage,
    summary="Your organisation's insights (raised and cleared episodes), newest first.",
)
async def list_insights(
    services: ServicesDep,
    principal: PrincipalDep,
    campaign_id: Annotated[
        str | None,
        Query(alias="campaignId", min_length=1, max_length=100, description="One campaign's."),
    ] = None,
    kind: Annotated[InsightKind | None, Query(description="One kind's.")] = None,
    since: Annotated[
        Moment | None,
        Query(description="Only events decided at or after this moment (RFC 3339, with offset)."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[
        str | None, Query(max_length=200, description="A page's `nextCursor`.")
    ] = None,
) -> InsightPage:
    """Each episode appears as its `raised` event and, once it ended, its `cleared` event,
    with the names of the page's campaigns beside them. Another organisation's campaign id
    gives an empty page, as an unused one does."""
    before = decode_cursor(cursor) if cursor else None
    items = await recent_insights(
        services.store,
        principal.org,
        campaign_id=campaign_id,
        kind=kind,
        since=since,
        before=before,
        limit=limit,
    )
    last = items[-1] if len(items) == limit else None
    next_cursor = encode_cursor(last.occurred_at, last.event_id) if last else None
    names = await campaign_names(
        services.store, principal.org, {i.campaign_id for i in items if i.campaign_id}
    )
    return InsightPage(items=items, next_cursor=next_cursor, campaign_names=names)

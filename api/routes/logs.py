"""`GET /logs?campaignId=`: the webhook delivery history of a campaign, newest first."""

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import PrincipalDep, ServicesDep
from api.errors import InvalidInput
from api.queries import delivery_attempts
from schemas.webhooks import AttemptPage

router = APIRouter(tags=["webhooks"])


def encode_cursor(timestamp: datetime, attempt_id: str) -> str:
    raw = f"{int(timestamp.timestamp() * 1000)}:{attempt_id}".encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        ms, _, attempt_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        return datetime.fromtimestamp(int(ms) / 1000, UTC), attempt_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("Invalid cursor.") from None


@router.get(
    "/logs",
    response_model=AttemptPage,
    summary="Every delivery attempt for a campaign of your organisation, newest first.",
)
async def delivery_log(
    services: ServicesDep,
    principal: PrincipalDep,
    campaign_id: Annotated[str, Query(alias="campaignId", min_length=1, max_length=100)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> AttemptPage:
    """Another organisation's campaign shows an empty history (never its attempts)."""
    before = decode_cursor(cursor) if cursor else None
    items = await delivery_attempts(
        services.store, principal.org, campaign_id, before=before, limit=limit
    )
    next_cursor = encode_cursor(items[-1].timestamp, items[-1].id) if len(items) == limit else None
    return AttemptPage(items=items, next_cursor=next_cursor)

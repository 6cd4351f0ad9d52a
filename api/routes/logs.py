"""`GET /logs?campaignId=`: the webhook delivery history of a campaign, newest first, as a tenant
may see it (no IP addresses, the operator's endpoints reduced to scheme and host)."""

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Query

from api.deps import PrincipalDep, ServicesDep
from api.pagination import decode_cursor, encode_cursor
from core.netguard import masked_url, redact_addresses
from core.repositories.webhooks import delivery_attempts
from schemas.webhooks import AttemptPage, DeliveryAttempt

router = APIRouter(tags=["webhooks"])


# The prefix of the endpoint ids `POST /webhooks/endpoints` mints (api/routes/webhooks.py); any
# other endpoint (the settings' default, the Slack and Telegram notifiers) is the operator's.
_TENANT_ENDPOINT_PREFIX = "ep_"


def shown_to_tenant(attempt: DeliveryAttempt) -> DeliveryAttempt:
    """No IP address in any error (a connection error names the address a name resolved to).
    An operator's endpoint shows its scheme and host only (a URL's path or query may carry a
    secret), and of its error only the kind before the first colon: its text could name the
    operator's hosts. Display names the dispatcher writes ("slack incoming webhook") stay."""
    if attempt.endpoint.startswith(_TENANT_ENDPOINT_PREFIX):
        error = attempt.error
        url = attempt.endpoint_url
    else:
        error = attempt.error.partition(":")[0] if attempt.error else None
        is_url = urlsplit(attempt.endpoint_url).scheme in ("http", "https")
        url = masked_url(attempt.endpoint_url) if is_url else attempt.endpoint_url
    if error:
        error = redact_addresses(error)
    return attempt.model_copy(update={"error": error, "endpoint_url": url})


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
    return AttemptPage(items=[shown_to_tenant(a) for a in items], next_cursor=next_cursor)

"""Every store query the API makes, parameterised and bounded."""

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from core import queries as shared
from core.clickhouse import Store
from schemas.api import EntityMetrics, MetricsWindow
from schemas.campaigns import Campaign, CampaignStatus
from schemas.webhooks import DeliveryAttempt, Endpoint

if TYPE_CHECKING:
    from api.deps import Services

_FIELDS = ("views", "likes", "comments", "shares", "saves")


def _window_exprs(condition: str) -> list[str]:
    exprs = [f"sumIf({f}, {condition})" for f in _FIELDS]
    exprs.append(f"countIf({condition})")
    return exprs


_METRICS_SELECT = ", ".join(
    _window_exprs("event_time >= {h1:DateTime64(3, 'UTC')}")
    + _window_exprs("event_time >= {h24:DateTime64(3, 'UTC')}")
    + [f"sum({f})" for f in _FIELDS]
    + ["count()"]
)

_METRICS_SQL = {
    kind: f"SELECT {_METRICS_SELECT} FROM engagement_events WHERE {column} = {{id:String}}"
    for kind, column in (("campaign", "campaign_id"), ("influencer", "influencer_id"))
}


def _window(values: tuple[int, ...]) -> MetricsWindow:
    views, likes, comments, shares, saves, events = (int(v) for v in values)
    engagements = likes + comments + shares
    rate = round(engagements / views * 100, 4) if views else 0.0
    return MetricsWindow(
        views=views,
        likes=likes,
        comments=comments,
        shares=shares,
        saves=saves,
        engagements=engagements,
        engagement_rate=rate,
        events=events,
    )


async def warm_up(store: Store, now: datetime) -> None:
    """Run each read once at start-up so the first client request does not pay for loading the
    store's indexes and marks."""
    for kind in ("campaign", "influencer"):
        await entity_metrics(store, kind, "", now)


async def entity_metrics(
    store: Store, kind: Literal["campaign", "influencer"], entity_id: str, now: datetime
) -> EntityMetrics | None:
    """Windowed sums for one campaign or creator by event time; None when it has no events.

    The sort key (campaign) or the `by_influencer` projection (creator) bounds the scan.
    """
    rows = await store.query_rows(
        _METRICS_SQL[kind],
        {"id": entity_id, "h1": now - timedelta(hours=1), "h24": now - timedelta(hours=24)},
    )
    values = tuple(rows[0])
    if not values or values[-1] == 0:
        return None
    return EntityMetrics(
        window_1h=_window(values[0:6]),
        window_24h=_window(values[6:12]),
        total=_window(values[12:18]),
    )


_MAX_OWNERS = 1_000_000


async def campaign_owner(services: "Services", campaign_id: str) -> str | None:
    """The organisation that created a campaign, or None if nobody did. An owner never changes,
    so a found one is remembered; "nobody" is cached only as long as metrics answers are."""
    known = services.known_owners.get(campaign_id)
    if known is not None:
        return known
    owner = await services.owners.get(
        ("owner", campaign_id), lambda: shared.campaign_owner(services.store, campaign_id)
    )
    if owner is not None:
        if len(services.known_owners) >= _MAX_OWNERS:
            services.known_owners.clear()
        services.known_owners[campaign_id] = owner
    return owner


async def list_campaigns(
    store: Store, org: str, status: CampaignStatus | None, after: str, limit: int
) -> list[Campaign]:
    """One organisation's campaigns by id, after the cursor id."""
    rows = await store.query_rows(
        "SELECT argMax(body, version) FROM campaigns"
        " WHERE org = {org:String} AND id > {after:String}"
        " GROUP BY id"
        " HAVING {status:String} = '' OR argMax(status, version) = {status:String}"
        " ORDER BY id LIMIT {limit:UInt32}",
        {"org": org, "after": after, "status": status.value if status else "", "limit": limit},
    )
    return [Campaign.model_validate_json(r[0]) for r in rows]


_FAR_FUTURE = datetime(2200, 1, 1, tzinfo=UTC)


async def delivery_attempts(
    store: Store,
    org: str,
    campaign_id: str,
    *,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[DeliveryAttempt]:
    """Attempts for one campaign, newest first, strictly older than the `before` cursor."""
    ts, last_id = before or (_FAR_FUTURE, "")
    rows = await store.query_rows(
        "SELECT id, webhook_id, event_type, campaign_id, endpoint_id, endpoint_url, attempt,"
        " status, http_status, error, latency_ms, timestamp FROM webhook_attempts"
        " WHERE org = {org:String} AND campaign_id = {cmp:String}"
        " AND (timestamp < {ts:DateTime64(3, 'UTC')}"
        "      OR (timestamp = {ts:DateTime64(3, 'UTC')} AND id < {id:String}))"
        " ORDER BY timestamp DESC, id DESC LIMIT {limit:UInt32}",
        {"org": org, "cmp": campaign_id, "ts": ts, "id": last_id, "limit": limit},
    )
    return [
        DeliveryAttempt(
            id=r[0],
            webhook_id=r[1],
            event_type=r[2],
            campaign_id=r[3],
            endpoint=r[4],
            endpoint_url=r[5],
            attempt=r[6],
            status=r[7],
            http_status=r[8],
            error=r[9] or None,
            latency_ms=r[10],
            timestamp=r[11],
        )
        for r in rows
    ]


_ENDPOINT_SELECT = (
    "SELECT id, org, url, event_types, secret, enabled, disabled_reason, created_at, updated_at,"
    " previous_secret, previous_expires_at FROM webhook_endpoints FINAL"
)


def _endpoint(row: tuple[Any, ...]) -> tuple[Endpoint, dict[str, Any]]:
    endpoint = Endpoint(
        id=row[0],
        url=row[2],
        event_types=list(row[3]),
        enabled=bool(row[5]),
        disabled_reason=row[6] or None,
        created_at=row[7],
        updated_at=row[8],
    )
    raw = {
        "org": row[1],
        "secret": row[4],
        "previous_secret": row[9],
        "previous_expires_at": row[10],
    }
    return endpoint, raw


async def endpoint_by_id(
    store: Store, org: str, endpoint_id: str
) -> tuple[Endpoint, dict[str, Any]] | None:
    rows = await store.query_rows(
        f"{_ENDPOINT_SELECT} WHERE id = {{id:String}} AND org = {{org:String}} LIMIT 1",
        {"id": endpoint_id, "org": org},
    )
    return _endpoint(rows[0]) if rows else None


async def org_endpoints(store: Store, org: str, limit: int = 1000) -> list[Endpoint]:
    rows = await store.query_rows(
        f"{_ENDPOINT_SELECT} WHERE org = {{org:String}} ORDER BY created_at LIMIT {{limit:UInt32}}",
        {"org": org, "limit": limit},
    )
    return [_endpoint(r)[0] for r in rows]


async def write_endpoint(
    store: Store,
    org: str,
    endpoint: Endpoint,
    *,
    secret: str,
    previous_secret: str,
    previous_expires_at: datetime,
    version: int,
) -> None:
    row = [
        endpoint.id,
        org,
        endpoint.url,
        [t.value for t in endpoint.event_types],
        secret,
        previous_secret,
        previous_expires_at,
        int(endpoint.enabled),
        endpoint.disabled_reason or "",
        version,
        endpoint.created_at,
        endpoint.updated_at,
    ]
    await store.insert(
        "webhook_endpoints",
        [[v] for v in row],
        (
            "id",
            "org",
            "url",
            "event_types",
            "secret",
            "previous_secret",
            "previous_expires_at",
            "enabled",
            "disabled_reason",
            "version",
            "created_at",
            "updated_at",
        ),
    )

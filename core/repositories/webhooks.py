"""The webhook tables: `webhook_endpoints` (written by the API, read by the API and the
dispatcher), `webhook_deliveries` (the dispatcher's due-time table and durable dead-letter
queue) and `webhook_attempts` (the audit log behind `GET /logs` and `/webhooks/health`)."""

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

from core.changes import ENDPOINT_WRITES
from core.clickhouse import Store, StoreQueryError
from core.encryption import PREFIX as SEALED_PREFIX
from core.encryption import SecretCipher, SecretUnreadable
from schemas.campaigns import CampaignEventType
from schemas.dashboard import EndpointHealth, WebhookHealth
from schemas.webhooks import DeliveryAttempt, Endpoint

# -- records --------------------------------------------------------------------------------

_CHAT_EVENTS = frozenset({CampaignEventType.status_changed, CampaignEventType.insight})
"""What Slack and Telegram notifiers post: status changes and live insights."""

ANY_ORG = "*"
"""The org of endpoints that receive every organisation's events (the settings' default)."""


class EndpointKind(StrEnum):
    webhook = "webhook"
    slack = "slack"
    telegram = "telegram"


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    id: str
    org: str
    url: str
    event_types: frozenset[str] = frozenset()
    secret: str = ""
    previous_secret: str = ""
    previous_expires_at: float = 0.0
    enabled: bool = True
    kind: EndpointKind = EndpointKind.webhook
    chat_id: str = ""
    display_url: str = ""

    def accepts(self, event_type: str, org: str) -> bool:
        if not self.enabled or (self.org != ANY_ORG and self.org != org):
            return False
        if self.kind is not EndpointKind.webhook:
            return event_type in _CHAT_EVENTS
        return not self.event_types or event_type in self.event_types

    def active_secrets(self, now: float) -> list[str]:
        out = [self.secret]
        if self.previous_secret and now < self.previous_expires_at:
            out.append(self.previous_secret)
        return out

    @property
    def public_url(self) -> str:
        """The URL as logs may show it (never the Telegram bot token)."""
        return self.display_url or self.url


@dataclass(slots=True)
class Delivery:
    """One event to one endpoint. `attempt` counts attempts made so far; `due_at` is epoch s."""

    delivery_id: str
    webhook_id: str
    org: str
    endpoint_id: str
    campaign_id: str
    event_type: str
    partition: int
    payload: str
    attempt: int = 0
    due_at: float = 0.0
    created_at: float = field(default=0.0, compare=False)


# -- endpoints ------------------------------------------------------------------------------

ENDPOINT_COLUMNS = (
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
)
"""Columns of `webhook_endpoints`, written by the API and read by the dispatcher."""


def open_secret(cipher: SecretCipher, stored: str, endpoint_id: str) -> str:
    """An endpoint's stored secret opened (a legacy plaintext one as it is). One that does not
    open with this key is a store error: the endpoint waits rather than going out unsigned."""
    try:
        return cipher.open(stored, context=endpoint_id)
    except SecretUnreadable as exc:
        raise StoreQueryError(f"the secret of endpoint {endpoint_id} {exc}") from None


class _StoredEndpoint(NamedTuple):
    """A `webhook_endpoints` row as the API reads it (`_API_ENDPOINT_SELECT`)."""

    id: str
    org: str
    url: str
    event_types: list[str]
    secret: str
    enabled: int
    disabled_reason: str
    created_at: datetime
    updated_at: datetime
    previous_secret: str
    previous_expires_at: datetime


_API_ENDPOINT_SELECT = f"SELECT {', '.join(_StoredEndpoint._fields)} FROM webhook_endpoints FINAL"


@dataclass(frozen=True, slots=True)
class EndpointSecrets:
    """What the API keeps to itself of an endpoint: its organisation and opened secrets."""

    org: str
    secret: str
    previous_secret: str
    previous_expires_at: datetime


def _endpoint_model(row: _StoredEndpoint) -> Endpoint:
    return Endpoint(
        id=row.id,
        url=row.url,
        event_types=list(row.event_types),
        enabled=bool(row.enabled),
        disabled_reason=row.disabled_reason or None,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _endpoint_with_secrets(
    row: _StoredEndpoint, cipher: SecretCipher
) -> tuple[Endpoint, EndpointSecrets]:
    secrets = EndpointSecrets(
        org=row.org,
        secret=open_secret(cipher, row.secret, row.id),
        previous_secret=open_secret(cipher, row.previous_secret, row.id),
        previous_expires_at=row.previous_expires_at,
    )
    return _endpoint_model(row), secrets


async def endpoint_by_id(
    store: Store, org: str, endpoint_id: str, cipher: SecretCipher
) -> tuple[Endpoint, EndpointSecrets] | None:
    rows = await store.query_rows(
        f"{_API_ENDPOINT_SELECT} WHERE id = {{id:String}} AND org = {{org:String}} LIMIT 1",
        {"id": endpoint_id, "org": org},
    )
    return _endpoint_with_secrets(_StoredEndpoint._make(rows[0]), cipher) if rows else None


async def endpoint_count(store: Store, org: str) -> int:
    """How many endpoints the organisation has registered (enabled or not)."""
    rows = await store.query_rows(
        "SELECT count() FROM webhook_endpoints FINAL WHERE org = {org:String}", {"org": org}
    )
    return int(rows[0][0])


async def org_endpoints(store: Store, org: str, limit: int = 1000) -> list[Endpoint]:
    rows = await store.query_rows(
        f"{_API_ENDPOINT_SELECT} WHERE org = {{org:String}}"
        " ORDER BY created_at LIMIT {limit:UInt32}",
        {"org": org, "limit": limit},
    )
    return [_endpoint_model(_StoredEndpoint._make(r)) for r in rows]


async def write_endpoint(
    store: Store,
    org: str,
    endpoint: Endpoint,
    *,
    cipher: SecretCipher,
    secret: str,
    previous_secret: str,
    previous_expires_at: datetime,
    version: int,
) -> None:
    """A new version of the endpoint; its secrets are sealed (a legacy plaintext secret carried
    over from an older row is sealed from now on). A previous secret past its grace period is
    not carried over."""
    expires = previous_expires_at
    if expires.tzinfo is None:  # as the store gives it back: UTC
        expires = expires.replace(tzinfo=UTC)
    if expires <= datetime.now(UTC):
        previous_secret = ""
    row = [
        endpoint.id,
        org,
        endpoint.url,
        [t.value for t in endpoint.event_types],
        cipher.seal(secret, context=endpoint.id),
        cipher.seal(previous_secret, context=endpoint.id),
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
        ENDPOINT_COLUMNS,
    )
    ENDPOINT_WRITES.bump()  # a dispatcher in this process reads the endpoint again


_DISPATCHER_ENDPOINT_SELECT = (
    "SELECT id, org, url, event_types, secret, previous_secret,"
    " toFloat64(previous_expires_at), enabled"
    " FROM webhook_endpoints FINAL"
)


class _DispatchedEndpoint(NamedTuple):
    """A `webhook_endpoints` row as the dispatcher reads it (`_DISPATCHER_ENDPOINT_SELECT`)."""

    id: str
    org: str
    url: str
    event_types: list[str]
    secret: str
    previous_secret: str
    previous_expires_at: float
    enabled: int


def _endpoint_config(row: _DispatchedEndpoint, cipher: SecretCipher) -> EndpointConfig:
    return EndpointConfig(
        id=row.id,
        org=row.org,
        url=row.url,
        event_types=frozenset(row.event_types),
        secret=open_secret(cipher, row.secret, row.id),
        previous_secret=open_secret(cipher, row.previous_secret, row.id),
        previous_expires_at=float(row.previous_expires_at),
        enabled=bool(row.enabled),
    )


async def registered_endpoints(
    store: Store, per_org: int, *, cipher: SecretCipher
) -> list[EndpointConfig]:
    """Every organisation's endpoints, at most `per_org` each (its oldest: the quota's), so no
    organisation's registrations can push another's out of the dispatcher."""
    rows = await store.query_rows(
        f"{_DISPATCHER_ENDPOINT_SELECT}"
        " ORDER BY org, created_at, id LIMIT {per_org:UInt32} BY org",
        {"per_org": per_org},
    )
    return [_endpoint_config(_DispatchedEndpoint._make(r), cipher) for r in rows]


async def endpoints_by_id(
    store: Store, ids: Collection[str], *, cipher: SecretCipher
) -> dict[str, EndpointConfig]:
    """The stored endpoints among `ids` as they are now (a deleted one is absent)."""
    if not ids:
        return {}
    rows = await store.query_rows(
        f"{_DISPATCHER_ENDPOINT_SELECT} WHERE id IN {{ids:Array(String)}} LIMIT {{n:UInt32}}",
        {"ids": list(ids), "n": len(ids)},
    )
    found = (_DispatchedEndpoint._make(r) for r in rows)
    return {row.id: _endpoint_config(row, cipher) for row in found}


@dataclass(frozen=True, slots=True)
class StoredSecrets:
    """An endpoint's secrets as stored (sealed, or plaintext from before sealing)."""

    endpoint_id: str
    version: int
    secret: str
    previous_secret: str
    previous_expires_at: float


async def stored_secrets(store: Store, limit: int = 10_000) -> list[StoredSecrets]:
    """Endpoints whose stored secrets may need tidying: those with a previous secret (in or past
    its grace period) and those with a plaintext secret."""
    rows = await store.query_rows(
        "SELECT id, version, secret, previous_secret, toFloat64(previous_expires_at)"
        " FROM webhook_endpoints FINAL"
        " WHERE previous_secret != '' OR NOT startsWith(secret, {prefix:String})"
        " LIMIT {limit:UInt32}",
        {"prefix": SEALED_PREFIX, "limit": limit},
    )
    return [
        StoredSecrets(endpoint_id, int(version), secret, previous, float(expires))
        for endpoint_id, version, secret, previous, expires in rows
    ]


async def rewrite_secrets(store: Store, changes: Sequence[StoredSecrets]) -> None:
    """A new version of each endpoint with the stored secrets given (sealed, or an empty previous
    secret), copied in the store from its row only while that is still at the version read, so
    a change made meanwhile wins. Then the table is merged, so the superseded versions that
    held the old values are gone from its live parts too."""
    if not changes:
        return
    await store.command(
        "INSERT INTO webhook_endpoints SELECT id, org, url, event_types,"
        " {secrets:Array(String)}[indexOf({ids:Array(String)}, id)],"
        " {previous:Array(String)}[indexOf({ids:Array(String)}, id)],"
        " previous_expires_at, enabled, disabled_reason, version + 1, created_at, updated_at"
        " FROM webhook_endpoints FINAL"
        " WHERE has({ids:Array(String)}, id)"
        " AND version = {versions:Array(UInt64)}[indexOf({ids:Array(String)}, id)]",
        {
            "ids": [c.endpoint_id for c in changes],
            "versions": [c.version for c in changes],
            "secrets": [c.secret for c in changes],
            "previous": [c.previous_secret for c in changes],
        },
    )
    ENDPOINT_WRITES.bump()
    await store.command("OPTIMIZE TABLE webhook_endpoints FINAL")


async def disable_endpoint(store: Store, endpoint_id: str, reason: str, version: int) -> None:
    """A new version of the endpoint's row with enabled = 0 (copied in the store)."""
    await store.command(
        "INSERT INTO webhook_endpoints SELECT id, org, url, event_types, secret, previous_secret,"
        " previous_expires_at, 0, {reason:String}, {version:UInt64}, created_at, now64(3)"
        " FROM webhook_endpoints FINAL WHERE id = {id:String}",
        {"id": endpoint_id, "reason": reason, "version": version},
    )
    ENDPOINT_WRITES.bump()


# -- deliveries -----------------------------------------------------------------------------

DELIVERY_COLUMNS = (
    "delivery_id",
    "webhook_id",
    "org",
    "endpoint_id",
    "campaign_id",
    "event_type",
    "source_partition",
    "payload",
    "attempt",
    "state",
    "due_at",
    "last_error",
    "seq",
    "updated_at",
)


class DeliveryState(NamedTuple):
    """A delivery's state change, one `webhook_deliveries` row (the highest `seq` wins)."""

    delivery: Delivery
    state: str
    last_error: str
    seq: int


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


async def insert_delivery_states(store: Store, rows: Sequence[DeliveryState]) -> None:
    if not rows:
        return
    now = datetime.now(UTC)
    await store.insert_gathered(
        "webhook_deliveries",
        [
            (
                d.delivery_id,
                d.webhook_id,
                d.org,
                d.endpoint_id,
                d.campaign_id,
                d.event_type,
                d.partition,
                d.payload,
                d.attempt,
                state,
                _utc(d.due_at),
                error,
                seq,
                now,
            )
            for d, state, error, seq in rows
        ],
        DELIVERY_COLUMNS,
    )


async def known_webhook_ids(store: Store, ids: Collection[str]) -> set[str]:
    """Which of these events (webhook-ids) already have deliveries."""
    if not ids:
        return set()
    columns = await store.query_columns(
        "SELECT DISTINCT webhook_id FROM webhook_deliveries"
        " WHERE webhook_id IN {ids:Array(String)}",
        {"ids": list(ids)},
    )
    return set(columns[0]) if columns else set()


# In the order of `Delivery`'s fields, so a row is a delivery's arguments.
_DELIVERY_FIELDS = (
    "delivery_id, webhook_id, org, endpoint_id, campaign_id, event_type, source_partition,"
    " payload, attempt, toFloat64(due_at), toFloat64(updated_at)"
)
_DELIVERY_SELECT = f"SELECT {_DELIVERY_FIELDS} FROM webhook_deliveries FINAL"


async def pending_deliveries(
    store: Store, partitions: Collection[int], *, per_org: int, limit: int = 10_000
) -> list[Delivery]:
    """Deliveries still to attempt whose event came from one of `partitions`: each
    organisation's `per_org` soonest, at most `limit` in all. When `limit` cuts, the
    organisations take turns (every one's soonest before any one's second, and so on), so no
    organisation's backlog, however large or overdue, keeps another's deliveries out."""
    if not partitions:
        return []
    rows = await store.query_rows(
        f"SELECT {_DELIVERY_FIELDS} FROM ("
        " SELECT *, row_number() OVER (PARTITION BY org ORDER BY due_at, delivery_id) AS turn"
        " FROM webhook_deliveries FINAL"
        " WHERE state = 'pending' AND source_partition IN {p:Array(Int32)}"
        ") WHERE turn <= {per_org:UInt32} ORDER BY turn, due_at, org LIMIT {limit:UInt32}",
        {"p": sorted(partitions), "per_org": per_org, "limit": limit},
    )
    return [Delivery(*r) for r in rows]


async def dead_delivery_count(store: Store, partitions: Collection[int]) -> int:
    """Deliveries in the dead-letter state whose event came from one of `partitions`."""
    if not partitions:
        return 0
    rows = await store.query_rows(
        "SELECT count() FROM webhook_deliveries FINAL"
        " WHERE state = 'dead' AND source_partition IN {p:Array(Int32)}",
        {"p": sorted(partitions)},
    )
    return int(rows[0][0])


async def dead_deliveries(
    store: Store,
    org: str,
    *,
    endpoint_id: str | None,
    campaign_id: str | None,
    limit: int = 10_000,
) -> list[Delivery]:
    rows = await store.query_rows(
        f"{_DELIVERY_SELECT} WHERE state = 'dead' AND org = {{org:String}}"
        " AND ({ep:String} = '' OR endpoint_id = {ep:String})"
        " AND ({cmp:String} = '' OR campaign_id = {cmp:String})"
        " ORDER BY due_at LIMIT {limit:UInt32}",
        {"org": org, "ep": endpoint_id or "", "cmp": campaign_id or "", "limit": limit},
    )
    return [Delivery(*r) for r in rows]


# -- attempts (the audit log) ---------------------------------------------------------------


class Attempt(NamedTuple):
    """One delivery attempt, a `webhook_attempts` row (its fields are the table's columns)."""

    id: str
    org: str
    webhook_id: str
    delivery_id: str
    event_type: str
    campaign_id: str
    endpoint_id: str
    endpoint_url: str
    attempt: int
    status: str
    http_status: int | None
    error: str
    latency_ms: float
    timestamp: datetime


async def insert_attempts(store: Store, rows: Sequence[Attempt]) -> None:
    if rows:
        await store.insert_gathered("webhook_attempts", rows, Attempt._fields)


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
        f"SELECT {', '.join(Attempt._fields)} FROM webhook_attempts"
        " WHERE org = {org:String} AND campaign_id = {cmp:String}"
        " AND (timestamp < {ts:DateTime64(3, 'UTC')}"
        "      OR (timestamp = {ts:DateTime64(3, 'UTC')} AND id < {id:String}))"
        " ORDER BY timestamp DESC, id DESC LIMIT {limit:UInt32}",
        {"org": org, "cmp": campaign_id, "ts": ts, "id": last_id, "limit": limit},
    )
    attempts = (Attempt._make(r) for r in rows)
    return [
        DeliveryAttempt(
            id=a.id,
            webhook_id=a.webhook_id,
            event_type=a.event_type,
            campaign_id=a.campaign_id,
            endpoint=a.endpoint_id,
            endpoint_url=a.endpoint_url,
            attempt=a.attempt,
            status=a.status,
            http_status=a.http_status,
            error=a.error or None,
            latency_ms=a.latency_ms,
            timestamp=a.timestamp,
        )
        for a in attempts
    ]


WEBHOOK_HEALTH_WINDOW = timedelta(hours=24)
_MAX_HEALTH_ENDPOINTS = 50


class _EndpointAttempts(NamedTuple):
    """One endpoint's attempts in the health window, with the organisation's totals."""

    endpoint_id: str
    url: str
    attempts: int
    delivered: int
    retrying: int
    dead: int
    last_status: str
    last_attempt_at: datetime
    p95_latency_ms: float
    org_attempts: int
    org_delivered: int
    org_retrying: int
    org_dead: int


async def webhook_health(store: Store, org: str, now: datetime) -> WebhookHealth:
    """Attempts of the last 24 hours per endpoint from the audit log, with the organisation's
    totals over every endpoint (window sums, computed before the LIMIT)."""
    rows = await store.query_rows(
        "SELECT endpoint_id, argMax(endpoint_url, timestamp), count() AS n,"
        " countIf(status = 'delivered') AS ok, countIf(status = 'retrying'),"
        " countIf(status = 'dead'), argMax(status, timestamp), max(timestamp),"
        " quantile(0.95)(latency_ms),"
        " sum(count()) OVER (), sum(countIf(status = 'delivered')) OVER (),"
        " sum(countIf(status = 'retrying')) OVER (), sum(countIf(status = 'dead')) OVER ()"
        " FROM webhook_attempts"
        " WHERE org = {org:String} AND timestamp >= {since:DateTime64(3, 'UTC')}"
        " GROUP BY endpoint_id ORDER BY n - ok DESC, n DESC, endpoint_id ASC"
        " LIMIT {limit:UInt32}",
        {"org": org, "since": now - WEBHOOK_HEALTH_WINDOW, "limit": _MAX_HEALTH_ENDPOINTS},
    )
    endpoints = [_EndpointAttempts._make(r) for r in rows]
    attempts, delivered, retrying, dead = (
        (
            int(endpoints[0].org_attempts),
            int(endpoints[0].org_delivered),
            int(endpoints[0].org_retrying),
            int(endpoints[0].org_dead),
        )
        if endpoints
        else (0,) * 4
    )
    return WebhookHealth(
        attempts=attempts,
        delivered=delivered,
        retrying=retrying,
        dead=dead,
        success_rate=round(delivered / attempts * 100, 2) if attempts else None,
        endpoints=[
            EndpointHealth(
                endpoint_id=e.endpoint_id,
                url=e.url,
                attempts=int(e.attempts),
                delivered=int(e.delivered),
                retrying=int(e.retrying),
                dead=int(e.dead),
                last_status=e.last_status,
                last_attempt_at=e.last_attempt_at,
                p95_latency_ms=round(float(e.p95_latency_ms), 1),
            )
            for e in endpoints
        ],
        as_of=now,
    )

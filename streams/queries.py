"""Every store query of the webhook dispatcher, parameterised and bounded."""

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.changes import ENDPOINT_WRITES
from core.clickhouse import Store
from core.encryption import PREFIX as SEALED_PREFIX
from core.encryption import SecretCipher
from core.queries import open_secret
from streams.deliveries import Delivery, EndpointConfig

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

ATTEMPT_COLUMNS = (
    "id",
    "org",
    "webhook_id",
    "delivery_id",
    "event_type",
    "campaign_id",
    "endpoint_id",
    "endpoint_url",
    "attempt",
    "status",
    "http_status",
    "error",
    "latency_ms",
    "timestamp",
)

DeliveryRow = tuple[Delivery, str, str, int]
"""(delivery, state, last error, seq)."""


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


async def insert_delivery_states(store: Store, rows: Sequence[DeliveryRow]) -> None:
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


async def insert_attempts(store: Store, rows: Sequence[Sequence[Any]]) -> None:
    if rows:
        await store.insert_gathered("webhook_attempts", rows, ATTEMPT_COLUMNS)


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


_DELIVERY_FIELDS = (
    "delivery_id, webhook_id, org, endpoint_id, campaign_id, event_type, source_partition,"
    " payload, attempt, toFloat64(due_at), toFloat64(updated_at)"
)
_DELIVERY_SELECT = f"SELECT {_DELIVERY_FIELDS} FROM webhook_deliveries FINAL"


def _delivery(row: Sequence[Any]) -> Delivery:
    return Delivery(
        delivery_id=row[0],
        webhook_id=row[1],
        org=row[2],
        endpoint_id=row[3],
        campaign_id=row[4],
        event_type=row[5],
        partition=int(row[6]),
        payload=row[7],
        attempt=int(row[8]),
        due_at=float(row[9]),
        created_at=float(row[10]),
    )


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
    return [_delivery(r) for r in rows]


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
    return [_delivery(r) for r in rows]


_ENDPOINT_SELECT = (
    "SELECT id, org, url, event_types, secret, previous_secret,"
    " toFloat64(previous_expires_at), enabled"
    " FROM webhook_endpoints FINAL"
)


def _endpoint(row: Sequence[Any], cipher: SecretCipher) -> EndpointConfig:
    return EndpointConfig(
        id=row[0],
        org=row[1],
        url=row[2],
        event_types=frozenset(row[3]),
        secret=open_secret(cipher, row[4], row[0]),
        previous_secret=open_secret(cipher, row[5], row[0]),
        previous_expires_at=float(row[6]),
        enabled=bool(row[7]),
    )


async def registered_endpoints(
    store: Store, per_org: int, *, cipher: SecretCipher
) -> list[EndpointConfig]:
    """Every organisation's endpoints, at most `per_org` each (its oldest: the quota's), so no
    organisation's registrations can push another's out of the dispatcher."""
    rows = await store.query_rows(
        f"{_ENDPOINT_SELECT} ORDER BY org, created_at, id LIMIT {{per_org:UInt32}} BY org",
        {"per_org": per_org},
    )
    return [_endpoint(r, cipher) for r in rows]


async def endpoints_by_id(
    store: Store, ids: Collection[str], *, cipher: SecretCipher
) -> dict[str, EndpointConfig]:
    """The stored endpoints among `ids` as they are now (a deleted one is absent)."""
    if not ids:
        return {}
    rows = await store.query_rows(
        f"{_ENDPOINT_SELECT} WHERE id IN {{ids:Array(String)}} LIMIT {{n:UInt32}}",
        {"ids": list(ids), "n": len(ids)},
    )
    return {r[0]: _endpoint(r, cipher) for r in rows}


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
    return [StoredSecrets(r[0], int(r[1]), r[2], r[3], float(r[4])) for r in rows]


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

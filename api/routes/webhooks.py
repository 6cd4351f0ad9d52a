"""`/webhooks`: an organisation's endpoints (the signing secret is shown once), secret rotation,
and replay of dead-lettered deliveries (a command to the dispatcher)."""

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Path, Response, status

from api.deps import PrincipalDep, Services, ServicesDep
from api.errors import Conflict, InvalidInput, NotFound, ServiceUnavailable
from core.encryption import SecretCipher
from core.netguard import AddressRefused, check_url
from core.repositories.webhooks import (
    endpoint_by_id,
    endpoint_count,
    org_endpoints,
    webhook_health,
    write_endpoint,
)
from core.signing import new_secret
from schemas.api import Problem
from schemas.dashboard import WebhookHealth
from schemas.webhooks import (
    Endpoint,
    EndpointCreate,
    EndpointList,
    EndpointUpdate,
    EndpointWithSecret,
    ReplayAccepted,
    ReplayRequest,
    WebhookCommand,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

EndpointPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


_REGISTERING: dict[str, asyncio.Lock] = {}
"""Per organisation: one registration at a time in this process, so two concurrent ones cannot
both pass the quota check."""


def _cipher(services: Services) -> SecretCipher:
    """Seals and opens endpoint secrets with FK_SECRETS_KEY (two key derivations: cheap)."""
    return SecretCipher(services.settings.secrets_key)


def _now() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@router.post(
    "/endpoints",
    status_code=status.HTTP_201_CREATED,
    response_model=EndpointWithSecret,
    summary="Register an endpoint; the answer carries its whsec_ secret, shown only once.",
    responses={
        201: {
            "description": "The endpoint with its secret.",
            "links": {
                "ChangeEndpoint": {
                    "operationId": "update_endpoint_webhooks_endpoints__endpoint_id__patch",
                    "parameters": {"endpoint_id": "$response.body#/id"},
                },
                "RotateSecret": {
                    "operationId": (
                        "rotate_secret_webhooks_endpoints__endpoint_id__rotate_secret_post"
                    ),
                    "parameters": {"endpoint_id": "$response.body#/id"},
                },
            },
        },
        409: {
            "model": Problem,
            "description": "The organisation has `FK_WEBHOOK_MAX_ENDPOINTS_PER_ORG` endpoints.",
        },
        422: {"model": Problem, "description": "Invalid or private URL."},
    },
)
async def create_endpoint(
    body: EndpointCreate, services: ServicesDep, principal: PrincipalDep
) -> EndpointWithSecret:
    url = str(body.url)
    try:
        check_url(url, services.settings.webhook_allowed)
    except AddressRefused as exc:
        raise InvalidInput(f"Endpoint URL refused: {exc}.") from None
    async with _REGISTERING.setdefault(principal.org, asyncio.Lock()):
        return await _register(body, url, services, principal.org)


async def _register(
    body: EndpointCreate, url: str, services: Services, org: str
) -> EndpointWithSecret:
    quota = services.settings.webhook_max_endpoints_per_org
    if await endpoint_count(services.store, org) >= quota:
        raise Conflict(
            f"An organisation has at most {quota} webhook endpoints; disable one and change its"
            " event types, or ask the operator for a larger quota."
        )
    now = _now()
    endpoint = Endpoint(
        id=f"ep_{uuid.uuid4().hex[:16]}",
        url=url,
        event_types=sorted(set(body.event_types or [])),
        enabled=True,
        created_at=now,
        updated_at=now,
    )
    secret = new_secret()
    await write_endpoint(
        services.store,
        org,
        endpoint,
        cipher=_cipher(services),
        secret=secret,
        previous_secret="",
        previous_expires_at=_EPOCH,
        version=time.time_ns(),
    )
    return EndpointWithSecret(**endpoint.model_dump(), secret=secret)


@router.get("/endpoints", response_model=EndpointList, summary="The organisation's endpoints.")
async def list_endpoints(services: ServicesDep, principal: PrincipalDep) -> EndpointList:
    return EndpointList(items=await org_endpoints(services.store, principal.org))


@router.patch(
    "/endpoints/{endpoint_id}",
    response_model=Endpoint,
    summary="Enable or disable an endpoint, or change its event types.",
    responses={404: {"model": Problem}},
)
async def update_endpoint(
    endpoint_id: EndpointPath, body: EndpointUpdate, services: ServicesDep, principal: PrincipalDep
) -> Endpoint:
    found = await endpoint_by_id(services.store, principal.org, endpoint_id, _cipher(services))
    if found is None:
        raise NotFound(f"No endpoint {endpoint_id!r}.")
    endpoint, secrets = found
    changes: dict[str, object] = {"updated_at": _now()}
    if body.enabled is not None:
        changes["enabled"] = body.enabled
        if body.enabled:
            changes["disabled_reason"] = None
    if body.event_types is not None:
        changes["event_types"] = sorted(set(body.event_types))
    endpoint = endpoint.model_copy(update=changes)
    await write_endpoint(
        services.store,
        principal.org,
        endpoint,
        cipher=_cipher(services),
        secret=secrets.secret,
        previous_secret=secrets.previous_secret,
        previous_expires_at=secrets.previous_expires_at,
        version=time.time_ns(),
    )
    return endpoint


@router.post(
    "/endpoints/{endpoint_id}/rotate-secret",
    response_model=EndpointWithSecret,
    summary="A new secret (shown once); the old one keeps signing during the grace period.",
    responses={404: {"model": Problem}},
)
async def rotate_secret(
    endpoint_id: EndpointPath, services: ServicesDep, principal: PrincipalDep
) -> EndpointWithSecret:
    """Until the grace period (FK_WEBHOOK_SECRET_GRACE_SECONDS) ends, every delivery carries a
    signature with each secret, so receivers can switch at their own pace."""
    found = await endpoint_by_id(services.store, principal.org, endpoint_id, _cipher(services))
    if found is None:
        raise NotFound(f"No endpoint {endpoint_id!r}.")
    endpoint, secrets = found
    now = _now()
    endpoint = endpoint.model_copy(update={"updated_at": now})
    secret = new_secret()
    await write_endpoint(
        services.store,
        principal.org,
        endpoint,
        cipher=_cipher(services),
        secret=secret,
        previous_secret=secrets.secret,
        previous_expires_at=now + timedelta(seconds=services.settings.webhook_secret_grace_seconds),
        version=time.time_ns(),
    )
    return EndpointWithSecret(**endpoint.model_dump(), secret=secret)


@router.post(
    "/dlq/replay",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReplayAccepted,
    summary="Send dead-lettered deliveries again (all, one endpoint's, one campaign's).",
    responses={
        429: {
            "model": Problem,
            "description": (
                "The organisation has made `FK_WEBHOOK_MAX_REPLAYS_PER_MINUTE` replays in the"
                " last minute; `Retry-After` says when the next one is allowed."
            ),
        },
        503: {"model": Problem, "description": "The broker did not take the command."},
    },
)
async def replay_dead_letters(
    body: ReplayRequest, services: ServicesDep, principal: PrincipalDep
) -> ReplayAccepted:
    """Each replayed delivery keeps its webhook-id, so receivers that already processed it
    recognise it; it gets a fresh attempt budget. Replays are an organisation's quota
    (`FK_WEBHOOK_MAX_REPLAYS_PER_MINUTE`, counted by each API replica)."""
    services.rate_limits.check_replay(principal.org)
    command = WebhookCommand(
        command_id=f"cmd_{uuid.uuid4().hex}",
        org=principal.org,
        endpoint_id=body.endpoint_id,
        campaign_id=body.campaign_id,
    )
    try:
        await asyncio.wait_for(
            services.producer.send_and_wait(
                services.settings.webhook_commands_topic,
                command.model_dump_json(by_alias=True).encode(),
                key=principal.org.encode(),
            ),
            10,
        )
    except (KafkaError, TimeoutError) as exc:
        raise ServiceUnavailable(
            f"The broker did not accept the command ({type(exc).__name__}).",
            headers={"Retry-After": "1"},
        ) from None
    return ReplayAccepted(command_id=command.command_id)


@router.get(
    "/health",
    response_model=WebhookHealth,
    summary="Delivery attempts of the last 24 hours per endpoint, from the audit log.",
)
async def delivery_health(services: ServicesDep, principal: PrincipalDep) -> Response:
    async def load() -> bytes | None:
        health = await webhook_health(services.store, principal.org, datetime.now(UTC))
        return health.model_dump_json(by_alias=True).encode()

    body = await services.metrics_cache.get(("webhook-health", principal.org), load)
    return Response(body, media_type="application/json")

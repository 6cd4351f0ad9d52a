"""Liveness, readiness and Prometheus metrics (no authentication)."""

import asyncio
import contextlib

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import ServicesDep
from core.clickhouse import StoreError
from core.kafka import running_broker
from core.settings import Settings
from schemas.api import Readiness, ReadinessCheck, ReadinessWarning

router = APIRouter(tags=["health"])

_CHECK_TIMEOUT = 2.0


@router.get(
    "/healthz",
    summary="Liveness: the process serves requests (no I/O).",
    responses={200: {"content": {"application/json": {"example": {"status": "ok"}}}}},
)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _check_broker(bootstrap: str) -> None:
    """The first bootstrap server accepts a TCP connection within the timeout."""
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), _CHECK_TIMEOUT)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


def _warnings(settings: Settings) -> list[ReadinessWarning]:
    """What needs an operator without making the platform unready: the memory of the embedded
    broker this process runs (`fk up`), from its latest sample (no I/O here). A standalone API has
    no embedded broker of its own and no such warning."""
    broker = running_broker(settings.kafka_embedded_port) if settings.embedded_broker else None
    message = broker.memory_warning() if broker is not None else None
    return [ReadinessWarning(name="broker", message=message)] if message else []


@router.get(
    "/readyz",
    summary="Readiness: the broker and the store answer; 503 when either does not. Warnings "
    "(e.g. the embedded broker's memory) do not change the status.",
    response_model=Readiness,
    responses={
        503: {
            "model": Readiness,
            "description": "A dependency does not answer (the failed check names it).",
            "content": {
                "application/json": {"example": Readiness.model_json_schema()["examples"][1]}
            },
        }
    },
)
async def readyz(services: ServicesDep) -> JSONResponse:
    checks = []
    try:
        await _check_broker(services.settings.bootstrap)
        checks.append(ReadinessCheck(name="broker", ok=True))
    except (OSError, TimeoutError) as exc:
        checks.append(ReadinessCheck(name="broker", ok=False, error=type(exc).__name__))
    try:
        await asyncio.wait_for(services.store.ping(), _CHECK_TIMEOUT)
        checks.append(ReadinessCheck(name="store", ok=True))
    except (StoreError, TimeoutError) as exc:
        checks.append(ReadinessCheck(name="store", ok=False, error=type(exc).__name__))
    ready = all(c.ok for c in checks)
    body = Readiness(
        status="ready" if ready else "unavailable",
        checks=checks,
        warnings=_warnings(services.settings),
    )
    return JSONResponse(body.model_dump(by_alias=True), status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics.", response_class=Response)
async def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

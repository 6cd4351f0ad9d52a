"""The FastAPI application factory. Clients are built in the lifespan, never at import time."""

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles

from api.cache import TtlCache
from api.deps import BEARER_SCHEME, Services, require_principal
from api.errors import PROBLEM_JSON, install_error_handlers
from api.examples import document_examples
from api.forecasts import brief_forecaster
from api.middleware import BodyLimit, RequestMetrics
from api.queries import metrics_reads, warm_up
from api.ratelimit import RateLimits
from api.routes import (
    activity,
    briefs,
    campaigns,
    dashboard,
    docs,
    engagement,
    etl,
    events,
    forecast,
    health,
    insights,
    logs,
    metrics,
    top_performers,
    trends,
    webhooks,
)
from briefs.service import BriefService
from core.changes import CAMPAIGN_WRITES, ENGAGEMENT_WRITES, engagement_and_campaign_writes
from core.clickhouse import Store, StoreError
from core.coalesce import Gathered
from core.kafka import client_security
from core.ledger import CampaignLedger
from core.metrics import watch_event_loop
from core.repositories.campaigns import campaign_organisations, created_campaigns
from core.rollups import EngagementRollups
from core.settings import Settings, get_settings
from schemas.api import METRICS_KINDS
from schemas.events import Platform

log = structlog.get_logger(__name__)

MAX_BODY_BYTES = 1024 * 1024

Lifespan = Callable[[], AbstractAsyncContextManager[object]]


# Operations that need no token (the dashboard page itself; its API calls carry one).
_PUBLIC_PATHS = {"/healthz", "/readyz", "/metrics", "/dashboard"}


_PROBLEM = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
_UNPARSABLE = {
    "description": "The body cannot be parsed (not UTF-8, broken multipart).",
    "content": _PROBLEM,
}
_UNAUTHORIZED = {
    "description": "No bearer token, or an invalid or expired one.",
    "content": _PROBLEM,
}


def _document_problems(schema: dict[str, Any]) -> None:
    """Document errors as they are served: RFC 9457 problem details (`application/problem+json`),
    FastAPI's own 422 shape included, plus the 401 of every authenticated operation."""
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if operation.get("security"):
                responses.setdefault("401", dict(_UNAUTHORIZED))
            if "requestBody" in operation:
                responses.setdefault("400", dict(_UNPARSABLE))
            for code, response in responses.items():
                # /readyz answers its 503 with the Readiness body naming the failed check.
                if code.isdigit() and int(code) >= 400 and (path, code) != ("/readyz", "503"):
                    response["content"] = _PROBLEM
                    if response.get("description") == "Validation Error":
                        response["description"] = "The request is not valid (see `errors`)."
    components = schema.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)


def _document_bearer_auth(app: FastAPI) -> None:
    """Declare the bearer scheme in the OpenAPI document for every authenticated operation, and
    document its errors as problem details."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            schema.setdefault("components", {})["securitySchemes"] = BEARER_SCHEME
            for path, operations in schema.get("paths", {}).items():
                if path in _PUBLIC_PATHS:
                    continue
                for operation in operations.values():
                    operation["security"] = [{"bearerAuth": []}]
            _document_problems(schema)
            document_examples(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


_WARM_ORGANISATIONS = 20


async def _score_organisations(services: Services) -> None:
    """Score the rankings of the organisations that own campaigns, and of `FK_DEFAULT_ORG`
    (every campaign, the whole organisation and each platform), in the background after a
    start, so their first requests do not wait for a scoring. A failure only costs those
    requests their speed."""
    try:
        owners = await campaign_organisations(services.store, _WARM_ORGANISATIONS)
        orgs = list(dict.fromkeys([services.settings.default_org, *owners]))
        # The organisation-wide rankings first (a dashboard's first read; at 10M events each
        # takes seconds, and the platform's start competes for the CPU), then every campaign's.
        for org in orgs:
            await top_performers.warm_organisation(services, org)
        for org in orgs:
            await top_performers.campaign_scopes(services, org)
            for platform in Platform:
                await top_performers.scope_ranking(services, org, None, platform.value, None)
    except StoreError as exc:
        log.warning("api.warm_up_failed", error=str(exc))
    # Scored, not read: a scope nobody reads must not lengthen the refresh turns of those that
    # are (the first half-minute's rankings would lag for it).
    services.top_cache.forget_reads()


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    ledger: CampaignLedger | None = None,
    lifespans: Sequence[Lifespan] = (),
    writers_in_process: bool = False,
    ack_after_store: bool = False,
    rollups: EngagementRollups | None = None,
) -> FastAPI:
    """Build the API. `store` is shared when the caller already owns one (embedded mode, tests);
    so is `ledger` (the embedded worker's clock commands through the same one); `lifespans` run
    inside the API's own (the embedded platform starts the Faust app there). With
    `writers_in_process` (the worker runs in this process) metrics answers are reloaded only
    after new events were written. With `ack_after_store` (the embedded platform, whose broker
    forgets its messages when it dies) POST /events answers only once the worker stored them.
    With `rollups` (kept by the worker in this process) metrics are answered from memory: they
    are loaded from the store at start-up, before `lifespans` start the worker."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_store = store is None
        st = store if store is not None else await asyncio.to_thread(Store.from_settings, settings)
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap,
            **client_security(settings),
            acks="all",
            linger_ms=2,
            request_timeout_ms=10_000,
        )
        await producer.start()
        # Campaign commands go to the campaign agent; its answers are read from now on.
        commands = ledger or CampaignLedger(settings, st, producer)
        await commands.start()
        await warm_up(st, datetime.now(UTC))
        if rollups is not None:
            # Before the worker starts: whatever it stores from now on, it reports.
            started = time.perf_counter()
            await asyncio.to_thread(rollups.load, st, int(time.time() * 1000))
            log.info(
                "api.rollups_loaded",
                buckets=rollups.buckets(),
                seconds=round(time.perf_counter() - started, 3),
            )
        app.state.services = Services(
            settings=settings,
            store=st,
            producer=producer,
            metrics_cache=TtlCache(
                settings.metrics_cache_ttl_seconds,
                max_stale=settings.metrics_cache_max_stale_seconds,
            ),
            metrics_reads={kind: metrics_reads(st, kind) for kind in METRICS_KINDS},
            ledger=commands,
            created_reads=Gathered(partial(created_campaigns, st)),
            created=TtlCache(
                settings.metrics_cache_ttl_seconds,
                max_stale=settings.metrics_cache_max_stale_seconds,
            ),
            briefs=await asyncio.to_thread(BriefService.build, settings, st),
            rate_limits=RateLimits.from_settings(settings),
            events_version=ENGAGEMENT_WRITES.current if writers_in_process else None,
            campaigns_version=CAMPAIGN_WRITES.current if writers_in_process else None,
            top_version=engagement_and_campaign_writes if writers_in_process else None,
            engagement_writes=ENGAGEMENT_WRITES if writers_in_process else None,
            ack_after_store=ack_after_store,
            rollups=rollups,
            top_cache=TtlCache(
                settings.top_performers_cache_ttl_seconds,
                max_stale=settings.top_performers_cache_max_stale_seconds,
                max_entries=10_000,
                load_share=top_performers.SCORING_SHARE,
                refresh_budget=settings.top_performers_refresh_share,
            ),
        )
        if app.state.services.briefs is not None:
            app.state.services.briefs.forecaster = brief_forecaster(app.state.services)
        warming = app.state.warming = asyncio.create_task(_score_organisations(app.state.services))
        watching = asyncio.create_task(watch_event_loop())
        try:
            async with AsyncExitStack() as stack:
                for extra in lifespans:
                    await stack.enter_async_context(extra())
                log.info("api.started", host=settings.api_host, port=settings.api_port)
                yield
        finally:
            warming.cancel()
            watching.cancel()
            await app.state.services.briefs.aclose()
            if ledger is None:
                await commands.stop()
            await producer.stop()
            if own_store:
                st.close()

    app = FastAPI(
        title="Creator engagement platform",
        version="0.1.0",
        summary="Streaming engagement metrics, batch ETL, campaigns and briefs on Kafka.",
        lifespan=lifespan,
        # Served by api/routes/docs.py with local assets instead of a CDN's.
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app, authenticate=require_principal)
    _document_bearer_auth(app)
    app.include_router(health.router)
    # The hottest reads first: routes are matched in order.
    app.include_router(metrics.router)
    app.include_router(top_performers.router)  # hot reads first: routes are matched in order
    app.include_router(events.router)
    app.include_router(campaigns.router)
    app.include_router(forecast.router)
    app.include_router(insights.router)
    app.include_router(webhooks.router)
    app.include_router(logs.router)
    app.include_router(briefs.router)
    app.include_router(etl.router)
    app.include_router(engagement.router)
    app.include_router(trends.router)
    app.include_router(activity.router)
    app.include_router(dashboard.router)
    app.mount(
        dashboard.ASSETS_PATH,
        StaticFiles(directory=dashboard.STATIC_DIR / "assets"),
        name="dashboard-assets",
    )
    app.include_router(docs.router)
    app.mount(docs.ASSETS_PATH, StaticFiles(directory=docs.ASSETS_DIR), name="docs-assets")
    # Uploads stream to a temporary file and have their own (larger) limit.
    app.add_middleware(
        BodyLimit,
        max_bytes=MAX_BODY_BYTES,
        overrides={etl.UPLOAD_PATH: settings.etl_max_upload_bytes + etl.MULTIPART_OVERHEAD},
    )
    app.add_middleware(RequestMetrics)
    return app

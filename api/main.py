"""The FastAPI application factory. Clients are built in the lifespan, never at import time."""

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

import structlog
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from api.cache import TtlCache
from api.deps import Services
from api.errors import install_error_handlers
from api.middleware import BodyLimit, RequestMetrics
from api.routes import etl, events, health, metrics, top_performers
from core.clickhouse import Store
from core.settings import Settings, get_settings

log = structlog.get_logger(__name__)

MAX_BODY_BYTES = 1024 * 1024

Lifespan = Callable[[], AbstractAsyncContextManager[object]]


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    lifespans: Sequence[Lifespan] = (),
) -> FastAPI:
    """Build the API. `store` is shared when the caller already owns one (embedded mode, tests);
    `lifespans` run inside the API's own (the embedded platform starts the Faust app there)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_store = store is None
        st = (
            store
            if store is not None
            else await asyncio.to_thread(
                Store.open,
                settings.store_url,
                settings.clickhouse_database,
                user=settings.clickhouse_user,
                password=settings.clickhouse_password,
            )
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap,
            acks="all",
            linger_ms=2,
            request_timeout_ms=10_000,
        )
        await producer.start()
        app.state.services = Services(
            settings=settings,
            store=st,
            producer=producer,
            metrics_cache=TtlCache(
                settings.metrics_cache_ttl_seconds,
                max_stale=settings.metrics_cache_max_stale_seconds,
            ),
            top_cache=TtlCache(
                settings.top_performers_cache_ttl_seconds,
                max_stale=settings.top_performers_cache_max_stale_seconds,
                max_entries=10_000,
            ),
        )
        try:
            async with AsyncExitStack() as stack:
                for extra in lifespans:
                    await stack.enter_async_context(extra())
                log.info("api.started", host=settings.api_host, port=settings.api_port)
                yield
        finally:
            await producer.stop()
            if own_store:
                st.close()

    app = FastAPI(
        title="Creator engagement platform",
        version="0.1.0",
        summary="Streaming engagement metrics, batch ETL, campaigns and briefs on Kafka.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(events.router)
    app.include_router(metrics.router)
    app.include_router(top_performers.router)
    app.include_router(etl.router)
    # Uploads stream to a temporary file and have their own (larger) limit.
    app.add_middleware(
        BodyLimit,
        max_bytes=MAX_BODY_BYTES,
        overrides={etl.UPLOAD_PATH: settings.etl_max_upload_bytes + etl.MULTIPART_OVERHEAD},
    )
    app.add_middleware(RequestMetrics)
    return app

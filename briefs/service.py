"""The brief service: the cache in front, the loop behind it, and storage of every brief.

Cache key = sha256 of the normalised request, the organisation, the model, the prompt version
and the data snapshot (count and newest ingestion time of engagement events), kept in ClickHouse
so that every API replica shares it. A brief that used a tool whose answer changes with the
hour (`campaignForecast`, `risingCreators`) is served from the cache until that hour ends at most.
"""

import asyncio
import hashlib
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
import structlog

from briefs.embeddings import Embedder, load_embedder
from briefs.errors import BriefError, DeadlineExceeded
from briefs.loop import PROMPT_VERSION, Caps, run
from briefs.providers import Provider, build_provider
from briefs.tools import Forecaster, ToolBox
from core import metrics
from core.clickhouse import Store
from core.repositories import briefs as brief_store
from core.repositories import engagement as engagement_store
from core.settings import Settings
from schemas.briefs import Brief, BriefMeta, BriefRequest, TokenUsage

log = structlog.get_logger(__name__)

HOURLY_TOOLS = frozenset({"campaignForecast", "risingCreators"})
"""Tools whose answers change with the hour: a brief that used one is cached until the hour
ends at most."""
HOUR = timedelta(hours=1)


def normalised(request: BriefRequest) -> dict[str, object]:
    """Requests that differ only in case or spacing share a cache entry."""
    data = request.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {k: " ".join(v.split()).casefold() if isinstance(v, str) else v for k, v in data.items()}


@dataclass(frozen=True, slots=True)
class Generated:
    brief: Brief
    created: bool


class BriefService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        provider: Provider,
        embedder: Embedder | None,
    ) -> None:
        self.settings, self.store, self.provider, self.embedder = (
            settings,
            store,
            provider,
            embedder,
        )
        self.forecaster: Forecaster | None = None
        """Set by the API: the `campaignForecast` tool's source (`api.forecasts`)."""
        self.caps = Caps(
            max_turns=settings.brief_max_turns,
            max_tool_calls=settings.brief_max_tool_calls,
            max_tokens=settings.brief_max_tokens,
        )

    @classmethod
    def build(cls, settings: Settings, store: Store) -> "BriefService":
        """Blocking (loads the embedding model): call from a thread at start-up."""
        return cls(
            settings, store, build_provider(settings), load_embedder(settings.brief_embedder)
        )

    @property
    def embedder_name(self) -> str:
        return self.embedder.name if self.embedder is not None else "lexical"

    async def cache_key(self, request: BriefRequest, org: str) -> str:
        snapshot = await engagement_store.data_snapshot(self.store)
        material = {
            "request": normalised(request),
            "org": org,
            "model": self.provider.model,
            "prompt": PROMPT_VERSION,
            "embedder": self.embedder_name,
            "data": snapshot,
        }
        return hashlib.sha256(orjson.dumps(material, option=orjson.OPT_SORT_KEYS)).hexdigest()

    async def generate(self, request: BriefRequest, org: str) -> Generated:
        started = time.perf_counter()
        now = datetime.now(UTC)
        key = await self.cache_key(request, org)
        cached = await brief_store.cached_brief(self.store, key, org, now)
        if cached is not None:
            metrics.LLM_CACHE.labels("hit").inc()
            metrics.BRIEFS.labels("cached").inc()
            brief = Brief.model_validate_json(cached)
            meta = brief.meta.model_copy(
                update={
                    "cache_hit": True,
                    "latency_ms": round((time.perf_counter() - started) * 1000, 1),
                }
            )
            return Generated(brief.model_copy(update={"meta": meta}), created=False)
        metrics.LLM_CACHE.labels("miss").inc()

        toolbox = ToolBox(self.store, org, self.embedder, now, self.forecaster)
        deadline = self.settings.brief_deadline_seconds
        try:
            try:
                async with asyncio.timeout(deadline):
                    result = await run(self.provider, toolbox, request, self.caps)
            except TimeoutError:
                log.warning("briefs.deadline", deadline_s=deadline)
                raise DeadlineExceeded(
                    f"The brief was not ready within its deadline of {deadline:g} seconds."
                ) from None
        except BriefError as exc:
            metrics.BRIEFS.labels(exc.outcome).inc()
            raise
        brief = Brief(
            **result.content.model_dump(),
            id=f"brf_{uuid.uuid4().hex}",
            created_at=now,
            request=request,
            evidence=result.verdict.evidence,
            meta=BriefMeta(
                model=self.provider.model,
                prompt_version=PROMPT_VERSION,
                tool_calls=len(result.tools),
                tools=result.tools,
                turns=result.turns,
                tokens=TokenUsage(prompt=result.prompt_tokens, completion=result.completion_tokens),
                latency_ms=round((time.perf_counter() - started) * 1000, 1),
                cache_hit=False,
                embedder=self.embedder_name,
            ),
        )
        await self._store(brief, org, key, now)
        metrics.BRIEFS.labels("ok").inc()
        log.info(
            "briefs.generated",
            brief_id=brief.id,
            model=brief.meta.model,
            tool_calls=brief.meta.tool_calls,
            turns=brief.meta.turns,
            latency_ms=brief.meta.latency_ms,
        )
        return Generated(brief, created=True)

    async def _store(self, brief: Brief, org: str, key: str, now: datetime) -> None:
        body = brief.model_dump_json(by_alias=True)
        request = brief.request.model_dump_json(by_alias=True, exclude_none=True)
        await brief_store.insert_brief(self.store, brief.id, org, request, body, now)
        expires = now + timedelta(seconds=self.settings.brief_cache_ttl_seconds)
        if any(t.ok and t.tool in HOURLY_TOOLS for t in brief.meta.tools):
            # The forecast is remade every hour (and the rising creators' windows move): a brief
            # citing them is not served after the hour it was made in.
            expires = min(expires, now.replace(minute=0, second=0, microsecond=0) + HOUR)
        await brief_store.insert_cache_entry(self.store, key, brief.id, now, expires)
        if self.embedder is not None:
            text = " ".join(
                p
                for p in (
                    brief.request.brand,
                    brief.request.product,
                    brief.request.goal,
                    brief.request.audience,
                    brief.objective,
                )
                if p
            )
            vector = self.embedder.embed([text])[0]
            await brief_store.insert_embeddings(
                self.store, org, self.embedder.name, [("brief", brief.id, 1, text, vector)], now
            )

    async def aclose(self) -> None:
        await self.provider.aclose()

    async def get(self, brief_id: str, org: str) -> Brief | None:
        found = await brief_store.find_brief(self.store, brief_id, org)
        return None if found is None else Brief.model_validate_json(found)

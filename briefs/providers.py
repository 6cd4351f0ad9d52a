"""Model providers behind one interface: any OpenAI-compatible server through the `openai` SDK
(with our own retries), and the offline provider that plans tool calls and composes the brief
deterministically from their results when no key is configured."""

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import openai
import orjson
import structlog

from briefs import composer
from briefs.errors import UpstreamTimeout, UpstreamUnavailable
from core import metrics
from core.settings import Settings

log = structlog.get_logger(__name__)

Message = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Completion:
    content: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str = "stop"
    refusal: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Provider(Protocol):
    model: str

    async def complete(
        self, messages: Sequence[Message], tools: Sequence[dict[str, Any]] | None
    ) -> Completion:
        """One model turn. Raises UpstreamUnavailable / UpstreamTimeout on final failure."""
        ...

    async def aclose(self) -> None: ...


def _retry_after(headers: Any) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (delta seconds); None when absent/odd."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name) if headers is not None else None
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            continue
    return None


class OpenAIProvider:
    """Chat completions with tools. The SDK's own retries are off (max_retries=0): 429 (honouring
    Retry-After), 5xx, timeouts and connection failures are retried here with exponential
    back-off and jitter; other 4xx fail at once. Only the final failure raises."""

    def __init__(self, settings: Settings) -> None:
        self.model = settings.llm_model
        self.max_retries = settings.llm_max_retries
        self.backoff = settings.llm_backoff_seconds
        self.backoff_max = settings.llm_backoff_max_seconds
        self.client = openai.AsyncOpenAI(
            base_url=settings.llm_base_url or None,
            api_key=settings.llm_api_key or "unused",
            max_retries=0,
            timeout=settings.llm_timeout_seconds,
        )

    async def complete(
        self, messages: Sequence[Message], tools: Sequence[dict[str, Any]] | None
    ) -> Completion:
        attempt = 0
        while True:
            started = time.perf_counter()
            outcome, delay = "ok", None
            failure: UpstreamUnavailable | UpstreamTimeout
            try:
                kwargs: dict[str, Any] = {"model": self.model, "messages": list(messages)}
                if tools:
                    kwargs["tools"] = list(tools)
                response = await self.client.chat.completions.create(**kwargs)
                return self._completion(response)
            except openai.APITimeoutError:
                outcome = "timeout"
                failure = UpstreamTimeout("The model provider did not answer in time.")
            except openai.APIConnectionError:
                outcome = "connection"
                failure = UpstreamUnavailable("The model provider cannot be reached.")
            except openai.RateLimitError as exc:
                outcome, delay = "rate_limited", _retry_after(exc.response.headers)
                failure = UpstreamUnavailable("The model provider is rate limiting us.")
            except openai.APIStatusError as exc:
                if exc.status_code < 500:
                    outcome = "client_error"
                    log.warning("llm.rejected", status=exc.status_code)
                    raise UpstreamUnavailable(
                        f"The model provider refused the request (HTTP {exc.status_code})."
                    ) from None
                outcome = "server_error"
                failure = UpstreamUnavailable(
                    f"The model provider failed (HTTP {exc.status_code})."
                )
            finally:
                metrics.LLM_LATENCY_SECONDS.observe(time.perf_counter() - started)
                metrics.LLM_CALLS.labels(outcome).inc()
            if attempt >= self.max_retries:
                log.warning("llm.gave_up", outcome=outcome, attempts=attempt + 1)
                raise failure
            wait = self._delay(attempt, delay)
            log.info("llm.retry", outcome=outcome, attempt=attempt + 1, wait_s=round(wait, 3))
            await asyncio.sleep(wait)
            attempt += 1

    async def aclose(self) -> None:
        await self.client.close()

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.backoff_max)
        base: float = self.backoff * 2**attempt
        return float(min(self.backoff_max, base * random.uniform(0.5, 1.0)))

    @staticmethod
    def _completion(response: Any) -> Completion:
        choice = response.choices[0]
        message = choice.message
        usage = response.usage
        calls = [
            ToolCall(c.id, c.function.name, c.function.arguments or "")
            for c in (message.tool_calls or [])
            if getattr(c, "function", None) is not None
        ]
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion = int(getattr(usage, "completion_tokens", 0) or 0)
        metrics.LLM_TOKENS.labels("prompt").inc(prompt)
        metrics.LLM_TOKENS.labels("completion").inc(completion)
        return Completion(
            content=message.content,
            tool_calls=calls,
            finish_reason=str(choice.finish_reason or "stop"),
            refusal=getattr(message, "refusal", None),
            prompt_tokens=prompt,
            completion_tokens=completion,
        )


class OfflineProvider:
    """A deterministic stand-in for a model: it calls the tools in a fixed plan (persona first,
    then trends, creators, angles and past briefs for that persona) and composes the brief from
    their results. It reads the request only from the data block, like a model would."""

    model = "offline-composer"

    async def complete(
        self, messages: Sequence[Message], tools: Sequence[dict[str, Any]] | None
    ) -> Completion:
        request = composer.request_from_messages(messages)
        results = composer.tool_results_from_messages(messages)
        if tools and "personaClassifier" not in results:
            return _calls(
                0,
                [
                    (
                        "personaClassifier",
                        {
                            "brand": request.get("brand", ""),
                            "product": request.get("product", ""),
                            "goal": request.get("goal", ""),
                            "audience": request.get("audience"),
                        },
                    )
                ],
            )
        if tools and "topCreators" not in results:
            persona = results["personaClassifier"].get("persona", {}).get("id", "")
            category = composer.persona_category(persona)
            platform = request.get("platform", "instagram")
            return _calls(
                1,
                [
                    ("trendFetcher", {"platform": platform, "category": category}),
                    ("topCreators", {"platform": platform, "category": category, "limit": 5}),
                    (
                        "creativeAngle",
                        {"goal": request.get("goal", ""), "persona": persona, "platform": platform},
                    ),
                    ("similarBriefs", {"query": composer.search_text(request), "limit": 3}),
                ],
            )
        brief = composer.compose(request, results)
        return Completion(content=orjson.dumps(brief).decode())

    async def aclose(self) -> None:
        return None


def _calls(turn: int, calls: list[tuple[str, dict[str, Any]]]) -> Completion:
    return Completion(
        content=None,
        tool_calls=[
            ToolCall(f"offline-{turn}-{i}", name, orjson.dumps(args).decode())
            for i, (name, args) in enumerate(calls)
        ],
        finish_reason="tool_calls",
    )


def build_provider(settings: Settings) -> Provider:
    """OpenAI-compatible when FK_LLM_API_KEY is set, else the offline provider."""
    if settings.llm_api_key:
        return OpenAIProvider(settings)
    return OfflineProvider()

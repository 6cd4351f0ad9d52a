"""Model providers behind one interface: any OpenAI-compatible server through the `openai` SDK
(with its own retries), and the offline provider that plans tool calls and composes the brief
deterministically from their results when no key is configured."""

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Unpack

import httpx2
import openai
import orjson
import structlog
from openai._models import FinalRequestOptions
from openai._types import HttpxSendArgs
from typing_extensions import override

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


class _RetryingClient(openai.AsyncOpenAI):
    """`openai.AsyncOpenAI` whose own retries wait as our settings say, and which counts each
    attempt.

    The SDK decides what is retried (408, 409, 429, 5xx, timeouts, connection failures; not a
    `Retry-After` over two minutes, which fails at once) and reads `retry-after-ms` and
    `Retry-After` (seconds or an HTTP date). Its waits are fixed constants (0.5 s doubling up to
    8 s, and a server's delay up to two minutes), so the wait is the one override: a server's
    delay capped at `backoff_max_seconds`, else `backoff_seconds` doubling per retry with jitter,
    capped the same. The other override times and counts each attempt, which the SDK's loop
    hides from the caller.
    """

    def __init__(
        self, *, backoff_seconds: float, backoff_max_seconds: float, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.backoff_seconds = backoff_seconds
        self.backoff_max_seconds = backoff_max_seconds

    @override
    def _calculate_retry_timeout(
        self,
        remaining_retries: int,
        options: FinalRequestOptions,
        response_headers: httpx2.Headers | None = None,
    ) -> float:
        retry = options.get_max_retries(self.max_retries) - remaining_retries
        requested = self._parse_retry_after_header(response_headers)
        if requested is not None and math.isfinite(requested) and requested > 0:
            wait = min(requested, self.backoff_max_seconds)
        else:
            ceiling = min(self.backoff_max_seconds, self.backoff_seconds * 2 ** min(retry, 32))
            wait = ceiling * random.uniform(0.5, 1.0)
        log.info("llm.retry", retry=retry + 1, wait_s=round(wait, 3))
        return wait

    @override
    async def _send_request(
        self, request: httpx2.Request, *, stream: bool, **kwargs: Unpack[HttpxSendArgs]
    ) -> httpx2.Response:
        started = time.perf_counter()
        try:
            response = await super()._send_request(request, stream=stream, **kwargs)
        except httpx2.TimeoutException:
            _count_attempt("timeout", started)
            raise
        except Exception:  # what the SDK turns into APIConnectionError (or retries)
            _count_attempt("connection", started)
            raise
        _count_attempt(_outcome(response.status_code), started)
        return response


def _outcome(status: int) -> str:
    if status < 400:
        return "ok"
    if status == 429:
        return "rate_limited"
    return "server_error" if status >= 500 else "client_error"


def _count_attempt(outcome: str, started: float) -> None:
    metrics.LLM_LATENCY_SECONDS.observe(time.perf_counter() - started)
    metrics.LLM_CALLS.labels(outcome).inc()


class OpenAIProvider:
    """Chat completions with tools, through the SDK's own retries (`_RetryingClient`): up to
    `llm_max_retries` of them, waits from `llm_backoff_seconds` and `llm_backoff_max_seconds`.
    Only the final failure raises, as UpstreamTimeout or UpstreamUnavailable."""

    def __init__(self, settings: Settings) -> None:
        self.model = settings.llm_model
        self.client = _RetryingClient(
            base_url=settings.llm_base_url or None,
            api_key=settings.llm_api_key or "unused",
            max_retries=settings.llm_max_retries,
            timeout=settings.llm_timeout_seconds,
            backoff_seconds=settings.llm_backoff_seconds,
            backoff_max_seconds=settings.llm_backoff_max_seconds,
        )

    async def complete(
        self, messages: Sequence[Message], tools: Sequence[dict[str, Any]] | None
    ) -> Completion:
        kwargs: dict[str, Any] = {"model": self.model, "messages": list(messages)}
        if tools:
            kwargs["tools"] = list(tools)
        try:
            response = await self.client.chat.completions.create(**kwargs)
        except openai.APITimeoutError:
            log.warning("llm.gave_up", outcome="timeout")
            raise UpstreamTimeout("The model provider did not answer in time.") from None
        except openai.APIConnectionError:
            log.warning("llm.gave_up", outcome="connection")
            raise UpstreamUnavailable("The model provider cannot be reached.") from None
        except openai.RateLimitError:
            log.warning("llm.gave_up", outcome="rate_limited")
            raise UpstreamUnavailable("The model provider is rate limiting us.") from None
        except openai.APIStatusError as exc:
            if exc.status_code >= 500:
                log.warning("llm.gave_up", outcome="server_error", status=exc.status_code)
                raise UpstreamUnavailable(
                    f"The model provider failed (HTTP {exc.status_code})."
                ) from None
            log.warning("llm.rejected", status=exc.status_code)
            raise UpstreamUnavailable(
                f"The model provider refused the request (HTTP {exc.status_code})."
            ) from None
        return self._completion(response)

    async def aclose(self) -> None:
        await self.client.close()

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

"""The OpenAI-compatible provider's retries, which are the SDK's own, against a scripted server
on 127.0.0.1 through the real `openai` SDK: which answers are retried, how long each wait is
(a server's `Retry-After` in seconds or as an HTTP date, capped by FK_LLM_BACKOFF_MAX_SECONDS),
and how each attempt is counted."""

import time
from email.utils import formatdate
from itertools import pairwise

import pytest
from prometheus_client import REGISTRY

from briefs.errors import UpstreamUnavailable
from briefs.providers import OpenAIProvider
from core.settings import Settings
from tests.briefs.fake_llm import FakeLLM, Step, final, status

CAP = 0.3
"""FK_LLM_BACKOFF_MAX_SECONDS in these tests: every server's delay below is longer."""
BACKOFF = 0.01

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture
def provider_settings(llm_settings: Settings) -> Settings:
    return llm_settings.model_copy(
        update={
            "llm_max_retries": 3,
            "llm_backoff_seconds": BACKOFF,
            "llm_backoff_max_seconds": CAP,
        }
    )


def _gaps(fake_llm: FakeLLM) -> list[float]:
    return [later - earlier for earlier, later in pairwise(fake_llm.arrivals)]


def _calls(outcome: str) -> float:
    return REGISTRY.get_sample_value("fk_llm_calls_total", {"outcome": outcome}) or 0.0


async def test_429_in_seconds_and_as_a_date_and_503_are_retried_within_the_cap(
    provider_settings: Settings, fake_llm: FakeLLM
) -> None:
    in_a_minute = formatdate(time.time() + 60, usegmt=True)
    fake_llm.load(
        status(429, {"Retry-After": "2"}),
        status(429, {"Retry-After": in_a_minute}),
        status(503),
        final("done"),
    )
    before = {o: _calls(o) for o in ("rate_limited", "server_error", "ok")}
    provider = OpenAIProvider(provider_settings)
    try:
        completion = await provider.complete(MESSAGES, None)
    finally:
        await provider.aclose()
    assert completion.content == "done"
    assert len(fake_llm.requests) == 4  # one try and three retries
    after_seconds, after_date, after_503 = _gaps(fake_llm)
    # Both servers' delays are read (the back-off alone would wait at most BACKOFF) and capped.
    assert CAP <= after_seconds < 1.0, after_seconds
    assert CAP <= after_date < 1.0, after_date
    # A 503 without a delay backs off from FK_LLM_BACKOFF_SECONDS (doubled twice, with jitter).
    assert after_503 < CAP, after_503
    # Each attempt is counted by its outcome, not only the call.
    assert _calls("rate_limited") - before["rate_limited"] == 2
    assert _calls("server_error") - before["server_error"] == 1
    assert _calls("ok") - before["ok"] == 1


async def test_a_delay_under_the_cap_is_waited_as_the_server_says(
    provider_settings: Settings, fake_llm: FakeLLM
) -> None:
    settings = provider_settings.model_copy(update={"llm_backoff_max_seconds": 5.0})
    fake_llm.load(status(429, {"retry-after-ms": "400"}), final("done"))
    provider = OpenAIProvider(settings)
    try:
        await provider.complete(MESSAGES, None)
    finally:
        await provider.aclose()
    (gap,) = _gaps(fake_llm)
    assert 0.4 <= gap < 1.5, gap


async def test_retries_run_out_and_the_last_failure_is_raised(
    provider_settings: Settings, fake_llm: FakeLLM
) -> None:
    fake_llm.load(*[status(429, {"Retry-After": "1"})] * 4, final("too late"))
    provider = OpenAIProvider(provider_settings)
    try:
        with pytest.raises(UpstreamUnavailable, match="rate limiting"):
            await provider.complete(MESSAGES, None)
    finally:
        await provider.aclose()
    assert len(fake_llm.requests) == 4  # FK_LLM_MAX_RETRIES = 3


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (status(400), "HTTP 400"),
        # A server that asks for more than two minutes is not retried (the SDK's rule): failing
        # now beats a brief that waits out the client.
        (status(429, {"Retry-After": "3600"}), "rate limiting"),
    ],
    ids=["client-error", "retry-after-past-two-minutes"],
)
async def test_what_is_not_retried_fails_at_once(
    provider_settings: Settings,
    fake_llm: FakeLLM,
    answer: Step,
    reason: str,
) -> None:
    fake_llm.load(answer, final("not asked"))
    provider = OpenAIProvider(provider_settings)
    try:
        with pytest.raises(UpstreamUnavailable, match=reason):
            await provider.complete(MESSAGES, None)
    finally:
        await provider.aclose()
    assert len(fake_llm.requests) == 1

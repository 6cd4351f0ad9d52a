"""Retry decisions and back-off (pure)."""

import random
from datetime import UTC, datetime

import pytest

from streams.retry import Policy, Verdict, backoff, decide, parse_retry_after

POLICY = Policy(max_attempts=3, base_seconds=1.0, max_seconds=60.0)


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_2xx_delivers(status: int) -> None:
    assert decide(1, status, POLICY).verdict is Verdict.delivered


@pytest.mark.parametrize("status", [None, 408, 429, 500, 502, 503, 504])
def test_retryable_until_the_last_attempt(status: int | None) -> None:
    assert decide(1, status, POLICY).verdict is Verdict.retry
    assert decide(2, status, POLICY).verdict is Verdict.retry
    assert decide(3, status, POLICY).verdict is Verdict.dead


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 413, 422, 301, 302])
def test_other_statuses_fail_at_once(status: int) -> None:
    outcome = decide(1, status, POLICY)
    assert outcome.verdict is Verdict.dead
    assert not outcome.disable_endpoint


def test_410_disables_the_endpoint() -> None:
    outcome = decide(1, 410, POLICY)
    assert (outcome.verdict, outcome.disable_endpoint) == (Verdict.dead, True)


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    rng = random.Random(1)
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (10, 60), (40, 60)]:
        delays = [backoff(attempt, POLICY, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1


def test_retry_after_is_honoured_for_429() -> None:
    assert decide(1, 429, POLICY, retry_after=30).delay == 30
    assert decide(1, 429, POLICY, retry_after=10_000).delay == 60  # capped


def test_parse_retry_after() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert parse_retry_after("120") == 120
    assert parse_retry_after("Tue, 01 Jan 2030 00:00:30 GMT", now) == 30
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None

"""What to do after a delivery attempt (pure): done, retry later (exponential back-off with
jitter, honouring Retry-After), or give up (dead-letter), and whether the endpoint is gone."""

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum


class Verdict(StrEnum):
    delivered = "delivered"
    retry = "retry"
    dead = "dead"


@dataclass(frozen=True, slots=True)
class Policy:
    max_attempts: int = 3
    base_seconds: float = 1.0
    max_seconds: float = 6 * 3600.0


@dataclass(frozen=True, slots=True)
class Outcome:
    verdict: Verdict
    delay: float = 0.0
    disable_endpoint: bool = False


def retryable_status(status: int) -> bool:
    return status in (408, 429) or status >= 500


def backoff(attempt: int, policy: Policy, rng: random.Random | None = None) -> float:
    """Delay before attempt `attempt + 1`: base * 2^(attempt-1), "full jitter" between half and
    all of it, capped."""
    ceiling = min(policy.max_seconds, policy.base_seconds * 2 ** (attempt - 1))
    return (rng or random).uniform(ceiling / 2, ceiling)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None when absent or
    unparseable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def decide(
    attempt: int,
    status: int | None,
    policy: Policy,
    *,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> Outcome:
    """After attempt number `attempt` (1-based) answered `status` (None: timeout or connection
    error). 2xx delivers; 410 disables the endpoint; 408, 429, 5xx and transport errors retry
    while attempts remain; any other status fails at once."""
    if status is not None and 200 <= status < 300:
        return Outcome(Verdict.delivered)
    if status == 410:
        return Outcome(Verdict.dead, disable_endpoint=True)
    if status is not None and not retryable_status(status):
        return Outcome(Verdict.dead)
    if attempt >= policy.max_attempts:
        return Outcome(Verdict.dead)
    delay = backoff(attempt, policy, rng)
    if status == 429 and retry_after is not None:
        delay = max(delay, min(retry_after, policy.max_seconds))
    return Outcome(Verdict.retry, delay=delay)

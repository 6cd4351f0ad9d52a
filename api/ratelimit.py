"""Per-caller rate limits on reads, writes, ingestion and the brief generator, and a
per-organisation quota on dead-letter replays: in-process token buckets keyed by the token's
organisation and subject, or by the organisation alone for replays (each API replica counts its
own callers), answered with 429 problem details and `Retry-After`."""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from api.errors import TooManyRequests
from core import metrics
from core.auth import Principal
from core.settings import Settings

LimitName = Literal["reads", "writes", "events", "briefs"]
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_MAX_KEYS = 100_000
"""Buckets kept per limit; past that, full ones (indistinguishable from absent ones) are dropped."""


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


@dataclass
class TokenBucket:
    """`per_minute` requests per minute per key, in bursts of up to `per_minute`; 0 = no limit."""

    per_minute: int
    clock: Callable[[], float] = time.monotonic
    buckets: dict[tuple[str, str], _Bucket] = field(default_factory=dict)

    def acquire(self, key: tuple[str, str]) -> float:
        """Take one request from `key`'s bucket: 0 when allowed, else the seconds until one is."""
        if self.per_minute <= 0:
            return 0.0
        now = self.clock()
        capacity = float(self.per_minute)
        rate = capacity / 60.0
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) >= _MAX_KEYS:
                self._drop_full(now, capacity, rate)
            bucket = self.buckets[key] = _Bucket(tokens=capacity, updated=now)
        else:
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / rate

    def _drop_full(self, now: float, capacity: float, rate: float) -> None:
        self.buckets = {
            k: b for k, b in self.buckets.items() if b.tokens + (now - b.updated) * rate < capacity
        }
        if len(self.buckets) >= _MAX_KEYS:
            self.buckets.clear()


@dataclass
class RateLimits:
    """Which limit a request counts against: `POST /events` (ingestion, a high default),
    `POST /generate-brief` (model calls), any other write, or a read (any other method)."""

    reads: TokenBucket = field(default_factory=lambda: TokenBucket(0))
    writes: TokenBucket = field(default_factory=lambda: TokenBucket(0))
    events: TokenBucket = field(default_factory=lambda: TokenBucket(0))
    briefs: TokenBucket = field(default_factory=lambda: TokenBucket(0))
    replays: TokenBucket = field(default_factory=lambda: TokenBucket(0))
    """Dead-letter replays per organisation (every token of it together), besides `writes`."""

    @classmethod
    def from_settings(cls, settings: Settings) -> "RateLimits":
        return cls(
            reads=TokenBucket(settings.rate_limit_reads_per_minute),
            writes=TokenBucket(settings.rate_limit_writes_per_minute),
            events=TokenBucket(settings.rate_limit_events_per_minute),
            briefs=TokenBucket(settings.rate_limit_briefs_per_minute),
            replays=TokenBucket(settings.webhook_max_replays_per_minute),
        )

    def check(self, method: str, path: str, principal: Principal) -> None:
        """Raise 429 when the caller has used up the limit this request counts against."""
        name: LimitName = (
            "reads"
            if method not in WRITE_METHODS
            else "events"
            if path == "/events"
            else "briefs"
            if path == "/generate-brief"
            else "writes"
        )
        bucket: TokenBucket = getattr(self, name)
        wait = bucket.acquire((principal.org, principal.subject))
        if wait > 0:
            metrics.API_RATE_LIMITED.labels(name).inc()
            raise TooManyRequests(
                f"Rate limit for {name} exceeded ({bucket.per_minute} per minute per token "
                f"subject); retry after the delay in Retry-After.",
                headers=_retry_after(wait),
            )

    def check_replay(self, org: str) -> None:
        """Raise 429 when `org` has used up its dead-letter replays: a replay re-sends up to
        thousands of deliveries, so its quota is the organisation's, whatever token asks."""
        wait = self.replays.acquire((org, ""))
        if wait > 0:
            metrics.API_RATE_LIMITED.labels("replays").inc()
            raise TooManyRequests(
                f"An organisation may replay dead-lettered deliveries {self.replays.per_minute}"
                " times per minute; retry after the delay in Retry-After.",
                headers=_retry_after(wait),
            )


def _retry_after(wait: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(wait)))}

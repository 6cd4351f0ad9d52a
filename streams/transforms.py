"""Pure functions of the engagement pipeline: decode and validate one message, and lay out a
batch of events as store columns. No I/O here; unit-tested without Kafka."""

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from schemas.events import MAX_EVENT_BYTES, DeadLetterReason, EngagementEvent


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: DeadLetterReason
    error: str


def _describe(exc: ValidationError, limit: int = 3) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:limit]:
        where = ".".join(str(p) for p in err["loc"]) or "event"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def decode_event(
    raw: bytes | None, *, now_ms: int, max_future_ms: int
) -> EngagementEvent | Rejection:
    """Turn one message value into an event, or say why it cannot be one.

    Never raises: every failure is a `Rejection` whose `reason` is one of a bounded set.
    """
    if raw is None:
        return Rejection(DeadLetterReason.invalid_json, "message has no value")
    if len(raw) > MAX_EVENT_BYTES:
        return Rejection(DeadLetterReason.too_large, f"{len(raw)} bytes exceeds {MAX_EVENT_BYTES}")
    try:
        event = EngagementEvent.model_validate_json(raw)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors(include_url=False)):
            return Rejection(DeadLetterReason.invalid_json, _describe(exc, 1))
        if any(e["type"] == "model_type" for e in exc.errors(include_url=False)):
            return Rejection(DeadLetterReason.invalid_event, "event must be a JSON object")
        return Rejection(DeadLetterReason.invalid_event, _describe(exc))
    if event.timestamp_ms > now_ms + max_future_ms:
        return Rejection(
            DeadLetterReason.future_timestamp,
            f"timestamp {event.timestamp.isoformat()} is more than "
            f"{max_future_ms // 1000}s in the future",
        )
    return event


EVENT_COLUMNS = (
    "event_id",
    "event_time",
    "influencer_id",
    "campaign_id",
    "platform",
    "post_id",
    "views",
    "likes",
    "comments",
    "shares",
    "saves",
    "followers",
    "hashtags",
    "source",
    "kafka_partition",
    "kafka_offset",
)


@dataclass(slots=True)
class EventBatch:
    """Valid, first-seen events laid out column by column for one store insert."""

    columns: list[list[Any]] = field(default_factory=lambda: [[] for _ in EVENT_COLUMNS])
    ids: set[str] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, event: EngagementEvent, *, source: str, partition: int, offset: int) -> None:
        c = self.columns
        c[0].append(event.event_id)
        c[1].append(event.timestamp_ms)
        c[2].append(event.influencer_id)
        c[3].append(event.campaign_id or "")
        c[4].append(event.platform.value)
        c[5].append(event.post_id or "")
        c[6].append(event.views)
        c[7].append(event.likes)
        c[8].append(event.comments)
        c[9].append(event.shares)
        c[10].append(event.saves)
        c[11].append(event.followers)
        c[12].append(event.hashtags)
        c[13].append(source)
        c[14].append(partition)
        c[15].append(offset)
        self.ids.add(event.event_id)

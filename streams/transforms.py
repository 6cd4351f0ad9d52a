"""Pure functions of the engagement pipeline: decode and validate one message, and lay out a
batch of events as store columns. No I/O here; unit-tested without Kafka."""

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Annotated, Any

import msgspec
import pyarrow as pa
from msgspec import Meta
from pydantic import ValidationError

from schemas.events import (
    MAX_EVENT_BYTES,
    DeadLetterReason,
    EngagementEvent,
    PlatformName,
    epoch_milliseconds,
    parse_event_time,
)


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


# Tuples, not lists, for hashtags: a row without containers is one the garbage collector can
# stop tracking, and the consumer holds tens of thousands of them per batch.
Row = tuple[str, int, str, str, str, str, int, int, int, int, int, int | None, tuple[str, ...]]
"""An accepted event as the first 13 store columns: event_id, event_time (epoch ms),
influencer_id, campaign_id ("" when none), platform, post_id ("" when none), views, likes,
comments, shares, saves, followers, hashtags."""

_MIN_EPOCH_MS = 946_684_800_000
_MAX_EPOCH_MS = 4_102_444_800_000
_MAX_COUNT = 2**53

_Id = Annotated[str, Meta(min_length=1, max_length=200)]
_Count = Annotated[int, Meta(ge=0, le=_MAX_COUNT)]
_Tag = Annotated[str, Meta(min_length=1, max_length=100)]


class _WireEvent(msgspec.Struct, kw_only=True, rename="camel", gc=False):
    """`EngagementEvent`'s constraints for msgspec's decoder, fields in `Row` order.

    msgspec is strict where pydantic may coerce (no bools or floats for integers, no null for
    strings), so it accepts a subset of what the model accepts; whatever it refuses goes to
    the model.
    """

    event_id: _Id
    timestamp: Annotated[int, Meta(ge=_MIN_EPOCH_MS, lt=_MAX_EPOCH_MS)] | str
    influencer_id: _Id
    # "" when absent, as in `Row` (defaults are not checked against min_length); None only
    # when the message says null.
    campaign_id: _Id | None = ""
    platform: PlatformName
    post_id: _Id | None = ""
    views: _Count = 0
    likes: _Count = 0
    comments: _Count = 0
    shares: _Count = 0
    saves: _Count = 0
    followers: _Count | None = None
    hashtags: Annotated[tuple[_Tag, ...], Meta(max_length=50)] = ()
    # The Python-side names the model accepts too (`populate_by_name`), which msgspec would
    # skip as unknown: read (escaped spellings included) so that a message using one of them
    # goes to the model. Not part of the row.
    snake_event_id: Any = msgspec.field(default=msgspec.UNSET, name="event_id")
    snake_influencer_id: Any = msgspec.field(default=msgspec.UNSET, name="influencer_id")
    snake_campaign_id: Any = msgspec.field(default=msgspec.UNSET, name="campaign_id")
    snake_post_id: Any = msgspec.field(default=msgspec.UNSET, name="post_id")


_SNAKE_NAMES = frozenset(
    name
    for name, info in EngagementEvent.model_fields.items()
    if info.alias is not None and info.alias != name
)
assert {f.encode_name for f in msgspec.structs.fields(_WireEvent)} >= _SNAKE_NAMES
_ROW_FIELDS = len(Row.__args__)  # type: ignore[attr-defined]
_NO_SNAKE_NAMES = (msgspec.UNSET,) * (len(_WireEvent.__struct_fields__) - _ROW_FIELDS)
_decode_wire = msgspec.json.Decoder(_WireEvent).decode
_as_tuple = msgspec.structs.astuple


def fast_row(raw: bytes) -> Row | None:
    """The event as a row when it is plainly valid, else None (the model then decides).

    About 3x cheaper than the pydantic model, which stays the definition: this only accepts
    what `EngagementEvent` accepts, with the same values (a property test holds it to that), and
    leaves everything unusual - errors included, to get the model's messages - to `decode_event`.
    msgspec decodes and checks the fields in C: a third of the cost of orjson plus the same
    checks written in Python.
    """
    try:
        fields = _as_tuple(_decode_wire(raw))
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    if fields[_ROW_FIELDS:] != _NO_SNAKE_NAMES:
        return None
    row: Row = fields[:_ROW_FIELDS]
    # An RFC 3339 timestamp (a str, whatever `Row` says) or a null id needs completing.
    if type(row[1]) is not int or row[3] is None or row[5] is None:
        return _completed(row)
    return row


def _completed(row: tuple[Any, ...]) -> Row | None:
    """`row` with an RFC 3339 timestamp as epoch milliseconds and "" for null ids."""
    ms = row[1]
    if type(ms) is str:
        try:
            ms = epoch_milliseconds(parse_event_time(ms))
        except ValueError:
            return None
    return (
        row[0],
        ms,
        row[2],
        row[3] if row[3] is not None else "",
        row[4],
        row[5] if row[5] is not None else "",
        *row[6:],
    )


def event_row(event: EngagementEvent) -> Row:
    return (
        event.event_id,
        event.timestamp_ms,
        event.influencer_id,
        event.campaign_id or "",
        event.platform.value,
        event.post_id or "",
        event.views,
        event.likes,
        event.comments,
        event.shares,
        event.saves,
        event.followers,
        tuple(event.hashtags),
    )


def decode_rows(
    values: Iterable[bytes | None], *, now_ms: int, max_future_ms: int
) -> list[Row | Rejection]:
    """`decode_event` of each message value as a store row, in order: the fast path when the
    message allows it, else the model (whose rejections and messages are the answer).

    What the engagement consumer runs on each poll: one call per poll, because a call per event
    costs about 30 % more than the loop below.
    """
    horizon_ms = now_ms + max_future_ms
    decoded: list[Row | Rejection] = []
    append = decoded.append
    for raw in values:
        if raw is not None and len(raw) <= MAX_EVENT_BYTES:
            row = fast_row(raw)
            if row is not None and row[1] <= horizon_ms:
                append(row)
                continue
        result = decode_event(raw, now_ms=now_ms, max_future_ms=max_future_ms)
        append(result if isinstance(result, Rejection) else event_row(result))
    return decoded


def decode_row(raw: bytes | None, *, now_ms: int, max_future_ms: int) -> Row | Rejection:
    """One message value through `decode_rows` (the same code, for a single event)."""
    return decode_rows((raw,), now_ms=now_ms, max_future_ms=max_future_ms)[0]


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
    "org",
)


EVENT_ARROW_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_time", pa.timestamp("ms", tz="UTC")),
        ("influencer_id", pa.string()),
        ("campaign_id", pa.string()),
        ("platform", pa.string()),
        ("post_id", pa.string()),
        ("views", pa.uint64()),
        ("likes", pa.uint64()),
        ("comments", pa.uint64()),
        ("shares", pa.uint64()),
        ("saves", pa.uint64()),
        ("followers", pa.uint64()),
        ("hashtags", pa.list_(pa.string())),
        ("source", pa.string()),
        ("kafka_partition", pa.int32()),
        ("kafka_offset", pa.int64()),
        ("org", pa.string()),
    ]
)
"""`EVENT_COLUMNS` as Arrow types (`engagement_events` converts them on insert)."""


_event_id = itemgetter(0)


@dataclass(slots=True)
class EventBatch:
    """Valid, first-seen events of one store insert; `columns` lays them out in store order.

    Each event belongs to an organisation (`orgs`, parallel to `rows`); `ids` holds the batch's
    (organisation, eventId) keys, what makes an event a duplicate.
    """

    source: str = "stream"
    rows: list[Row] = field(default_factory=list)
    partitions: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    orgs: list[str] = field(default_factory=list)
    ids: set[tuple[str, str]] = field(default_factory=set)
    _columns: list[Sequence[Any]] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.rows)

    def add_rows(
        self,
        rows: Sequence[Row],
        *,
        partitions: Sequence[int],
        offsets: Sequence[int],
        orgs: Sequence[str],
    ) -> int:
        """Append the events whose key the batch does not hold yet, in order (of one key
        repeated in `rows`, the first); return how many were left out as duplicates.

        The sequences are parallel. Without a duplicate (the usual case) the work is done by
        set and list operations in C, not per event in Python.
        """
        self._columns = None
        keys = list(zip(orgs, map(_event_id, rows), strict=True))
        first = set(keys)
        if len(first) == len(keys) and self.ids.isdisjoint(first):
            self.rows.extend(rows)
            self.partitions.extend(partitions)
            self.offsets.extend(offsets)
            self.orgs.extend(orgs)
            self.ids |= first
            return 0
        ids = self.ids
        duplicates = 0
        for i, key in enumerate(keys):
            if key in ids:
                duplicates += 1
                continue
            ids.add(key)
            self.rows.append(rows[i])
            self.partitions.append(partitions[i])
            self.offsets.append(offsets[i])
            self.orgs.append(orgs[i])
        return duplicates

    def add_row(self, row: Row, *, partition: int, offset: int, org: str) -> bool:
        """`add_rows` of one event: False when the batch holds its key already."""
        return not self.add_rows((row,), partitions=(partition,), offsets=(offset,), orgs=(org,))

    def keys(self) -> Iterator[tuple[str, str]]:
        """(organisation, eventId) of each row, in row order."""
        return zip(self.orgs, map(_event_id, self.rows), strict=True)

    def extend(self, later: "EventBatch") -> None:
        """Append another batch's events (keys disjoint from this one's: the consumer checks)."""
        self._columns = None
        self.rows.extend(later.rows)
        self.partitions.extend(later.partitions)
        self.offsets.extend(later.offsets)
        self.orgs.extend(later.orgs)
        self.ids |= later.ids

    def add(self, event: EngagementEvent, *, partition: int, offset: int, org: str) -> bool:
        """`add_row` of the event's row: False when the batch holds its key already."""
        return self.add_row(event_row(event), partition=partition, offset=offset, org=org)

    @property
    def columns(self) -> list[Sequence[Any]]:
        """The batch column by column, in `EVENT_COLUMNS` order (computed once per batch)."""
        if self._columns is None:
            if not self.rows:
                return [[] for _ in EVENT_COLUMNS]
            self._columns = [
                *zip(*self.rows, strict=False),  # rows are all 13-tuples; strict costs 4x here
                [self.source] * len(self.rows),
                self.partitions,
                self.offsets,
                self.orgs,
            ]
        return self._columns

    def arrow(self) -> pa.Table:
        """The batch as an Arrow table: what the sink inserts (the store parses it natively, so
        the Python side of an insert is a third of the column-by-column encoding)."""
        return pa.Table.from_arrays(
            [
                pa.array(column, type=f.type)
                for column, f in zip(self.columns, EVENT_ARROW_SCHEMA, strict=True)
            ],
            schema=EVENT_ARROW_SCHEMA,
        )

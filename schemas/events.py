"""The engagement event contract (topic `engagement-events`) and its dead-letter reasons."""

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

from pydantic import BeforeValidator, ConfigDict, Field, StringConstraints
from pydantic.config import JsonValue

from schemas.base import WireModel

REQUEST_ID_KAFKA_HEADER = "fk-request-id"
"""Message header naming the HTTP request that published the message (log correlation)."""
ORG_KAFKA_HEADER = "fk-org"
"""Message header naming the organisation an engagement event belongs to (absent:
`FK_DEFAULT_ORG`). `POST /events` sets the caller's; a producer of its own may set it."""

MAX_EVENT_BYTES = 64 * 1024
"""A valid event is a few hundred bytes; anything above this is refused unread."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)

# Epoch milliseconds accepted as a timestamp: 2000-01-01 .. 2100-01-01.
_MIN_EPOCH_MS = 946_684_800_000
_MAX_EPOCH_MS = 4_102_444_800_000


# The one list of platforms an event, a campaign and a performance CSV row may name. (A comment:
# a docstring would become the description of the OpenAPI schema.)
class Platform(StrEnum):
    instagram = "instagram"
    tiktok = "tiktok"
    youtube = "youtube"
    x = "x"
    facebook = "facebook"


PLATFORMS: tuple[str, ...] = tuple(p.value for p in Platform)
"""`Platform`'s values, in its order (for SQL checks, generators and samples)."""

PlatformName = Literal["instagram", "tiktok", "youtube", "x", "facebook"]
"""`Platform` as a type of plain strings, for decoders that yield `str` (msgspec's fast path):
static typing needs the names spelled out, and the check below keeps them `Platform`'s."""
assert get_args(PlatformName) == PLATFORMS, "PlatformName and Platform differ"


class DeadLetterReason(StrEnum):
    """Why a message went to the dead-letter topic (a bounded set: it labels a metric)."""

    too_large = "too_large"
    invalid_json = "invalid_json"
    invalid_event = "invalid_event"
    future_timestamp = "future_timestamp"
    store_rejected = "store_rejected"
    """Valid by the event contract, refused by a rule of the store (found by the sink)."""


def epoch_milliseconds(moment: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime, exact (floored to the millisecond)."""
    return (moment - _EPOCH) // _ONE_MS


def parse_event_time(value: Any) -> datetime:
    """Accept epoch milliseconds or an RFC 3339 string with an offset; return aware UTC.

    Naive strings, floats, booleans and out-of-range epochs are refused: a producer that omits
    the offset would otherwise be silently shifted by the consumer's time zone.
    """
    if isinstance(value, bool):
        raise ValueError("timestamp must be epoch milliseconds or an RFC 3339 string")
    if isinstance(value, int):
        if not _MIN_EPOCH_MS <= value < _MAX_EPOCH_MS:
            raise ValueError("epoch-millisecond timestamp out of range (years 2000-2099)")
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("timestamp is not RFC 3339") from None
        if parsed.tzinfo is None:
            raise ValueError("RFC 3339 timestamp needs an offset (Z or +hh:mm)")
        return parsed.astimezone(UTC)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    raise ValueError("timestamp must be epoch milliseconds or an RFC 3339 string")


EventTime = Annotated[datetime, BeforeValidator(parse_event_time)]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Count = Annotated[int, Field(ge=0, le=2**53, strict=True)]
Hashtag = Annotated[str, StringConstraints(min_length=1, max_length=100)]


EVENT_EXAMPLES: list[JsonValue] = [
    {
        "eventId": "evt_01HZX3K9Q2",
        "timestamp": "2026-12-05T09:12:31Z",
        "influencerId": "inf_priya_sharma",
        "platform": "instagram",
        "campaignId": "spring-launch",
        "postId": "post_88123",
        "views": 1200,
        "likes": 85,
        "comments": 6,
        "shares": 4,
        "saves": 11,
        "followers": 48210,
        "hashtags": ["#springlaunch", "#ootd"],
    },
    {
        "eventId": "evt_01HZX3K9Q3",
        "timestamp": 1796461951000,
        "influencerId": "inf_priya_sharma",
        "platform": "tiktok",
        "views": 310,
    },
]
"""A complete event, and the least an event needs (with epoch milliseconds for its time)."""


class EngagementEvent(WireModel):
    """One creator engagement observation; `eventId` is the idempotency key.

    Counts are increments (default 0); `followers` is a gauge at that time. Unknown extra fields
    are ignored so producers can add fields before consumers know them.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        json_schema_extra={"examples": EVENT_EXAMPLES},
    )

    event_id: Identifier
    timestamp: EventTime
    influencer_id: Identifier
    platform: Platform
    campaign_id: Identifier | None = None
    post_id: Identifier | None = None
    views: Count = 0
    likes: Count = 0
    comments: Count = 0
    shares: Count = 0
    saves: Count = 0
    followers: Count | None = None
    hashtags: Annotated[list[Hashtag], Field(max_length=50)] = Field(default_factory=list)

    @property
    def timestamp_ms(self) -> int:
        """Epoch milliseconds, exact (float seconds times 1000 can lose the last one)."""
        return epoch_milliseconds(self.timestamp)

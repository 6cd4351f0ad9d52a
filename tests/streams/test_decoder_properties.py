"""Property tests of the event decoder: any byte string is either a valid event or a rejection
with a reason, never an exception; and the fast path agrees with the model on every input."""

import json
import time
from typing import Any

import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import event as note_kind
from hypothesis import strategies as st

from schemas.events import DeadLetterReason, EngagementEvent
from streams.transforms import Rejection, decode_event, decode_row, decode_rows, event_row, fast_row

NOW_MS = int(time.time() * 1000)
SKEW_MS = 300_000

_SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_text = st.text(max_size=8) | st.text(min_size=195, max_size=205)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([0, 1, 2**53, 2**53 + 1, 2**63 - 1, 2**64, -1])
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text
)
_timestamps = (
    st.integers(min_value=900_000_000_000, max_value=4_200_000_000_000)
    | st.integers(min_value=NOW_MS - 10**9, max_value=NOW_MS + 2 * SKEW_MS)
    | st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat())
    | st.sampled_from(["2026-11-27T10:15:00Z", "2026-11-27", "yesterday", "", "2026-11-27T10:15"])
    | _scalars
)
_containers = st.lists(_scalars, max_size=2) | st.dictionaries(
    st.text(max_size=3), _scalars, max_size=2
)
_platforms = st.sampled_from(["instagram", "tiktok", "youtube", "x", "facebook", "X", "myspace"])
_counts = st.integers(min_value=-2, max_value=2**53 + 2) | _scalars
_tags = st.lists(_text | _scalars, max_size=3) | st.lists(st.just("#a"), min_size=49, max_size=52)

_fields: dict[str, st.SearchStrategy[Any]] = {
    "eventId": _text | _scalars,
    "timestamp": _timestamps,
    "influencerId": _text | _scalars,
    "platform": _platforms | _scalars,
    "campaignId": _text | _scalars,
    "postId": _text | _scalars,
    "views": _counts,
    "likes": _counts,
    "comments": _counts,
    "shares": _counts,
    "saves": _counts,
    "followers": _counts,
    "hashtags": _tags | _scalars,
    # Python-side names the model also accepts, and a field nobody knows.
    "event_id": _text,
    "campaign_id": _text,
    "extra": _scalars | st.dictionaries(st.text(max_size=3), _scalars, max_size=2),
}
_valid = {
    "eventId": st.text(min_size=1, max_size=10),
    "timestamp": st.integers(min_value=NOW_MS - 10**9, max_value=NOW_MS),
    "influencerId": st.text(min_size=1, max_size=10),
    "platform": st.sampled_from(["instagram", "tiktok", "youtube", "x", "facebook"]),
}


@st.composite
def event_like(draw: st.DrawFn) -> bytes:
    """A JSON object near the contract: mostly valid fields, some wrong, some missing."""
    obj: dict[str, Any] = {k: draw(v) for k, v in _valid.items() if draw(st.integers(0, 9))}
    for name in draw(st.lists(st.sampled_from(sorted(_fields)), max_size=6, unique=True)):
        obj[name] = draw(_fields[name] | _containers)
    encoding = draw(st.sampled_from(["orjson", "ascii", "duplicate"]))
    if encoding == "orjson":
        try:
            return orjson.dumps(obj)
        except TypeError:  # integers beyond 64 bits
            return json.dumps(obj).encode()
    text = json.dumps(obj, ensure_ascii=True)  # \\u escapes for every non-ASCII character
    if encoding == "duplicate" and len(obj) > 0:
        key = draw(st.sampled_from(sorted(obj)))
        text = text[:-1] + (", " if text != "{}" else "") + json.dumps({key: draw(_scalars)})[1:]
    return text.encode()


def _model_answer(raw: bytes | None) -> Any:
    result = decode_event(raw, now_ms=NOW_MS, max_future_ms=SKEW_MS)
    return result if isinstance(result, Rejection) else event_row(result)


def _check(raw: bytes | None) -> None:
    answer = decode_row(raw, now_ms=NOW_MS, max_future_ms=SKEW_MS)
    if isinstance(answer, Rejection):
        assert isinstance(answer.reason, DeadLetterReason)
        assert answer.error
    else:
        # An accepted row is a valid event by the contract's own model, with the same values.
        assert len(answer) == 13
    assert answer == _model_answer(raw)
    if raw is not None:
        fast = fast_row(raw)
        note_kind("fast path" if fast is not None else f"model: {type(answer).__name__}")
        if fast is not None:
            event = EngagementEvent.model_validate_json(raw)
            assert event_row(event) == fast


@_SETTINGS
@given(event_like())
@example(b'{"eventId":"e","timestamp":1093077386909,"influencerId":"i","platform":"x"}')
@example(
    b'{"eventId":"e","eventId":"","timestamp":1793077386909,"influencerId":"i","platform":"x"}'
)
@example(
    b'{"eventId":"e","timestamp":1793077386909,"influencerId":"i","platform":"x","hashtags":null}'
)
@example(b'{"event_id":"e","timestamp":1793077386909,"influencerId":"i","platform":"x"}')
@example(b'{"eventId":"e","timestamp":1793077386909,"influencerId":"i","platform":["x"]}')
@example(b'{"eventId":"e","timestamp":1793077386909,"influencerId":"i","platform":{}}')
@example(b'{"eventId":"e","timestamp":1793077386909,"influencerId":"i","platform":"x","views":1.0}')
def test_near_contract_objects_decode_like_the_model(raw: bytes) -> None:
    _check(raw)


@_SETTINGS
@given(st.binary(max_size=300) | st.text(max_size=100).map(str.encode))
@example(None)
@example(b"\xef\xbb\xbf{}")
@example(b'{"eventId": "\\ud800"}')
@example(b"NaN")
@example(b"1" * 5000)
def test_any_bytes_are_an_event_or_a_rejection(raw: bytes | None) -> None:
    _check(raw)


@_SETTINGS
@given(st.lists(event_like() | st.binary(max_size=100) | st.none(), max_size=8))
def test_a_poll_decodes_as_its_messages_do_one_by_one(values: list[bytes | None]) -> None:
    """What the consumer runs on a poll answers for each message what the model does."""
    decoded = decode_rows(values, now_ms=NOW_MS, max_future_ms=SKEW_MS)
    assert decoded == [_model_answer(raw) for raw in values]

"""Cursors of the newest-first pages (`GET /logs`, `GET /insights`): an item's store timestamp
and id, so the next page starts strictly after it without gaps or repeats."""

import base64
import binascii
import re
from datetime import UTC, datetime, timedelta

from api.errors import InvalidInput

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
# What the store's DateTime64(3, 'UTC') holds: a cursor outside it names no item.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2300, 1, 1, tzinfo=UTC) - _MS
_EARLIEST_MS = (EARLIEST - _EPOCH) // _MS
_LATEST_MS = (LATEST - _EPOCH) // _MS
_CURSOR = re.compile(r"(-?[0-9]{1,20}):(.+)", re.DOTALL)


def encode_cursor(timestamp: datetime, item_id: str) -> str:
    """`<epoch ms>:<item id>`, base64url; whole milliseconds counted exactly (no float)."""
    raw = f"{(timestamp - _EPOCH) // _MS}:{item_id}".encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (timestamp, item id) `encode_cursor` made. Anything else — not base64url, not
    UTF-8, no id, a timestamp that is not whole milliseconds or outside what the store holds —
    is `InvalidInput` (422), never an overflow or a store error."""
    try:
        raw = base64.b64decode(cursor, altchars=b"-_", validate=True).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("Invalid cursor.") from None
    match = _CURSOR.fullmatch(raw)
    if match is None or not _EARLIEST_MS <= int(match[1]) <= _LATEST_MS:
        raise InvalidInput("Invalid cursor.")
    return _EPOCH + int(match[1]) * _MS, match[2]

"""`GET /logs`: cursors (a cursor the API did not mint is a 422, never a 500) and what the delivery
history shows a tenant (no internal addresses, the operator's default endpoint masked)."""

import base64
from datetime import UTC, datetime

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.routes.logs import decode_cursor, encode_cursor
from tests.api.test_http import assert_problem


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


BAD_CURSORS = {
    "overflowing-timestamp": b64(b"99999999999999999999:att_1"),
    "huge-timestamp": b64(b"9" * 120 + b":att_1"),
    "year-1": b64(b"-62135596800000:att_1"),
    "before-1900": b64(b"-2208988800001:att_1"),
    "after-2299": b64(b"10413792000000:att_1"),
    "negative-overflow": b64(b"-99999999999999999:att_1"),
    "no-id": b64(b"1700000000000"),
    "empty-id": b64(b"1700000000000:"),
    "float-timestamp": b64(b"1e12:att_1"),
    "nan": b64(b"nan:att_1"),
    "not-utf8": b64(b"\xff\xfe\xfd:att_1"),
    "garbage": "%%%not base64%%%",
    "bad-padding": "YQ",
    "one-char": "a",
    "padding-only": "====",
    "junk-around-base64": "!" + b64(b"1700000000000:att_1") + "!",
    "non-ascii-digits": b64("\u0661\u0667\u0660\u0660:att_1".encode()),
}


@pytest.mark.parametrize("cursor", BAD_CURSORS.values(), ids=BAD_CURSORS.keys())
async def test_a_cursor_the_api_did_not_mint_is_422_problem_details(
    client: httpx.AsyncClient, cursor: str
) -> None:
    response = await client.get("/logs", params={"campaignId": "cmp_a", "cursor": cursor})
    body = assert_problem(response, 422)
    assert body["detail"] == "Invalid cursor."


@given(
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2299, 12, 31, 23, 59, 59)).map(
        lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000, tzinfo=UTC)
    ),
    st.text(min_size=1, max_size=40),
)
def test_every_store_timestamp_survives_a_cursor_exactly(
    timestamp: datetime, attempt_id: str
) -> None:
    """Whole milliseconds in, the same out: a cursor a millisecond off would repeat or skip the
    attempts of that millisecond on the next page."""
    assert decode_cursor(encode_cursor(timestamp, attempt_id)) == (timestamp, attempt_id)


@pytest.mark.parametrize(
    "timestamp",
    [
        datetime(2024, 5, 1, 12, 30, 15, 123000, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(2299, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
    ],
)
def test_a_minted_cursor_decodes_to_what_it_was_made_of(timestamp: datetime) -> None:
    assert decode_cursor(encode_cursor(timestamp, "att_1:x")) == (timestamp, "att_1:x")


async def test_a_minted_cursor_is_accepted(client: httpx.AsyncClient) -> None:
    cursor = encode_cursor(datetime(2024, 5, 1, tzinfo=UTC), "att_1")
    response = await client.get("/logs", params={"campaignId": "cmp_a", "cursor": cursor})
    assert response.status_code == 200, response.text
    assert response.json() == {"items": [], "nextCursor": None}

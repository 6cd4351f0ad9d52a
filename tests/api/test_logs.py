"""`GET /logs`: cursors (a cursor the API did not mint is a 422, never a 500) and what the delivery
history shows a tenant (no internal addresses, the operator's default endpoint masked)."""

import base64
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.pagination import decode_cursor, encode_cursor
from core.clickhouse import Store
from core.repositories.webhooks import Attempt, insert_attempts
from core.settings import Settings
from streams.app import Orchestrator
from tests.api.test_http import assert_problem
from tests.conftest import free_port, wait_until


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


def attempt_row(
    endpoint_id: str, endpoint_url: str, error: str, *, campaign_id: str = "cmp_logs"
) -> Attempt:
    """One `webhook_attempts` row of org acme, as the dispatcher writes it."""
    return Attempt(
        id=uuid.uuid4().hex,
        org="acme",
        webhook_id=uuid.uuid4().hex,
        delivery_id=f"{uuid.uuid4().hex}:{endpoint_id}",
        event_type="CampaignStatusChanged",
        campaign_id=campaign_id,
        endpoint_id=endpoint_id,
        endpoint_url=endpoint_url,
        attempt=1,
        status="dead",
        http_status=None,
        error=error,
        latency_ms=1.5,
        timestamp=datetime.now(UTC),
    )


async def test_the_history_shows_no_address_and_no_more_of_an_operator_url_than_its_host(
    client: httpx.AsyncClient, store: Store
) -> None:
    """A tenant's own endpoint keeps its URL and its errors (without any IP address in them);
    the operator's endpoints (the settings' default, the notifiers) show scheme and public host
    only, and of their errors only the kind (their text could name the operator's hosts)."""
    response = await client.post("/webhooks/endpoints", json={"url": "https://hooks.example.com/x"})
    assert response.status_code == 201, response.text
    own = response.json()["id"]
    rows = {
        "own-resolved": attempt_row(
            own,
            "https://hooks.example.com/x",
            "refused: hooks.example.com resolves to non-public 10.1.2.3",
        ),
        "own-connect": attempt_row(
            own,
            "https://hooks.example.com/x",
            "ConnectError: [Errno 111] Connect call failed ('fd00::7', 443, 0, 0)",
        ),
        "default-private": attempt_row(
            "default",
            "http://10.0.0.5:8080/hooks/s3cret-path?token=t0ken",
            "refused: 10.0.0.5 is not a public address",
        ),
        "default-named": attempt_row(
            "default",
            "https://hooks.operator.example:8443/in/s3cret-path",
            "ConnectError: cannot resolve hooks.operator.example: Name or service not known",
        ),
        "telegram": attempt_row(
            "notifier-telegram",
            "https://api.telegram.org/bot***/sendMessage",
            "ConnectError: cannot resolve tg-relay.corp.lan: Name or service not known",
        ),
        "slack": attempt_row("notifier-slack", "slack incoming webhook", "HTTP 500"),
    }
    await insert_attempts(store, list(rows.values()))
    response = await client.get("/logs", params={"campaignId": "cmp_logs"})
    assert response.status_code == 200, response.text
    for leaked in ("10.1.2.3", "fd00::7", "10.0.0.5", "s3cret", "t0ken", "8443", "tg-relay"):
        assert leaked not in response.text
    shown = {item["id"]: item for item in response.json()["items"]}
    assert len(shown) == len(rows)

    def of(name: str) -> tuple[str, str]:
        item = shown[rows[name].id]
        return item["endpointUrl"], item["error"]

    assert of("own-resolved") == (
        "https://hooks.example.com/x",
        "refused: hooks.example.com resolves to non-public [address]",
    )
    assert of("own-connect") == (
        "https://hooks.example.com/x",
        "ConnectError: [Errno 111] Connect call failed ('[address]', 443, 0, 0)",
    )
    assert of("default-private") == ("http://***", "refused")
    assert of("default-named") == ("https://hooks.operator.example", "ConnectError")
    assert of("telegram") == ("https://api.telegram.org", "ConnectError")
    assert of("slack") == ("slack incoming webhook", "HTTP 500")


@pytest.mark.usefixtures("campaign_agent")  # it creates a campaign
async def test_the_operators_default_endpoint_is_masked_end_to_end(
    client: httpx.AsyncClient, settings: Settings, store: Store
) -> None:
    """The settings' default endpoint on a private address with a secret path: the dispatcher
    refuses to connect, stores only scheme and masked host, and /logs shows neither the address
    nor the path."""
    default_url = f"http://127.0.0.1:{free_port()}/hooks/s3cret-path?token=t0ken"
    configured = settings.model_copy(
        update={
            "webhook_default_url": default_url,
            "webhook_default_secret": "whsec_" + "A" * 32,
            "webhook_allowed_hosts": "",
            "webhook_sweep_seconds": 0.5,
        }
    )
    service = Orchestrator(configured, store)
    await service.start()
    try:
        response = await client.post("/campaigns", json={"id": "cmp_default", "name": "Launch"})
        assert response.status_code == 201, response.text

        async def logged() -> httpx.Response | None:
            response = await client.get("/logs", params={"campaignId": "cmp_default"})
            return response if response.json()["items"] else None

        response = await wait_until(logged)
    finally:
        await service.stop()
    [item] = response.json()["items"]
    assert (item["endpoint"], item["status"]) == ("default", "dead")
    assert (item["endpointUrl"], item["error"]) == ("http://***", "refused")
    for leaked in ("127.0.0.1", "s3cret", "t0ken", default_url.split("/")[2]):
        assert leaked not in response.text
    stored = await store.query_rows(
        "SELECT endpoint_url, error FROM webhook_attempts WHERE campaign_id = 'cmp_default'"
    )
    # The store keeps the full error for the operator, never the full URL.
    assert [r[0] for r in stored] == ["http://***"]
    assert "127.0.0.1" in stored[0][1]

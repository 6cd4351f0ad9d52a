"""Webhook delivery end to end on the real broker and chDB, to real HTTP receivers on 127.0.0.1
that verify every delivery with the official `standardwebhooks` library."""

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from core.auth import issue_token
from core.changes import ENDPOINT_WRITES
from core.clickhouse import Store
from core.encryption import PREFIX as SEALED_PREFIX
from core.encryption import SecretCipher
from core.repositories.webhooks import ENDPOINT_COLUMNS
from core.settings import Settings
from core.signing import new_secret
from streams.app import Orchestrator
from streams.retry import Policy
from tests.conftest import free_port, wait_until
from tests.receivers import Receiver

# Campaign commands are answered by the campaign agent.
pytestmark = pytest.mark.usefixtures("campaign_agent")


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The webhook settings of these tests; a test changes more with
    `@pytest.mark.parametrize("settings", [{...}], indirect=True)`."""
    return settings.model_copy(
        update={
            "webhook_allowed_hosts": "127.0.0.1",
            "webhook_max_attempts": 3,
            "webhook_backoff_base_seconds": 0.2,
            "webhook_backoff_max_seconds": 1.0,
            "webhook_timeout_seconds": 2.0,
            "webhook_sweep_seconds": 0.5,
            "webhook_endpoint_concurrency": 2,
            "scheduler_interval_seconds": 0.2,
            **getattr(request, "param", {}),
        }
    )


async def register(client: httpx.AsyncClient, receiver: Receiver, **body: Any) -> dict[str, Any]:
    response = await client.post("/webhooks/endpoints", json={"url": receiver.url, **body})
    assert response.status_code == 201, response.text
    endpoint: dict[str, Any] = response.json()
    assert endpoint["secret"].startswith("whsec_")
    receiver.secrets.append(endpoint["secret"])
    return endpoint


async def rotate(client: httpx.AsyncClient, endpoint_id: str) -> str:
    """Rotate the endpoint's secret; the new one."""
    response = await client.post(f"/webhooks/endpoints/{endpoint_id}/rotate-secret")
    assert response.status_code == 200, response.text
    secret: str = response.json()["secret"]
    return secret


async def create(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    body.setdefault("name", "Launch")
    response = await client.post("/campaigns", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def patch(client: httpx.AsyncClient, c: dict[str, Any], **body: Any) -> dict[str, Any]:
    response = await client.patch(
        f"/campaigns/{c['id']}", json=body, headers={"If-Match": f'"{c["version"]}"'}
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def logs(client: httpx.AsyncClient, campaign_id: str, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/logs", params={"campaignId": campaign_id, **params})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_every_event_is_delivered_signed_and_logged(
    client: httpx.AsyncClient, orchestrator: Orchestrator, receiver: Receiver, settings: Settings
) -> None:
    endpoint = await register(client, receiver)
    c = await create(client, id="cmp_hook")
    c = await patch(client, c, status="scheduled")
    c = await patch(client, c, name="Launch 2")
    await wait_until(lambda: len(receiver.received) == 3)
    assert receiver.bad == []
    assert [r.body["type"] for r in receiver.received] == [
        "CampaignCreated",
        "CampaignStatusChanged",
        "CampaignUpdated",
    ]
    changed = receiver.received[1].body["data"]
    assert (changed["previous"]["status"], changed["current"]["status"]) == ("draft", "scheduled")
    assert changed["version"] == 2
    assert len(receiver.ids()) == 3
    entries = await wait_until(lambda: _logged(client, "cmp_hook", 3))
    assert [e["status"] for e in entries] == ["delivered"] * 3
    assert [e["timestamp"] for e in entries] == sorted(
        (e["timestamp"] for e in entries), reverse=True
    )
    first = entries[-1]
    assert first["endpoint"] == endpoint["id"]
    assert (first["attempt"], first["httpStatus"], first["eventType"]) == (
        1,
        204,
        "CampaignCreated",
    )
    assert set(first) >= {"id", "latencyMs", "error", "webhookId", "campaignId"}
    # Paged, and invisible to another organisation.
    page = (await client.get("/logs", params={"campaignId": "cmp_hook", "limit": 2})).json()
    rest = await logs(client, "cmp_hook", cursor=page["nextCursor"], limit=2)
    assert [e["id"] for e in page["items"] + rest] == [e["id"] for e in entries]
    foreign = {"Authorization": f"Bearer {issue_token(settings.jwt_secret, org='globex')}"}
    response = await client.get("/logs", params={"campaignId": "cmp_hook"}, headers=foreign)
    assert response.json()["items"] == []


async def _logged(
    client: httpx.AsyncClient, campaign_id: str, n: int
) -> list[dict[str, Any]] | None:
    entries = await logs(client, campaign_id)
    return entries if len(entries) >= n else None


async def test_event_types_filter_which_events_an_endpoint_gets(
    client: httpx.AsyncClient, orchestrator: Orchestrator, receiver: Receiver
) -> None:
    await register(client, receiver, eventTypes=["CampaignStatusChanged"])
    c = await create(client)
    c = await patch(client, c, name="renamed")
    c = await patch(client, c, status="cancelled")
    await wait_until(lambda: len(receiver.received) == 1)
    assert receiver.received[0].body["type"] == "CampaignStatusChanged"


async def test_receiver_down_then_back_gets_every_event(
    client: httpx.AsyncClient,
    orchestrator: Orchestrator,
    settings: Settings,
) -> None:
    orchestrator.dispatcher.policy = Policy(max_attempts=20, base_seconds=0.2, max_seconds=1.0)
    receiver = Receiver(port=free_port())
    await register(client, receiver)  # registered while nothing listens on its port
    campaigns = [await create(client, id=f"cmp_down_{i}") for i in range(5)]
    for c in campaigns:
        await patch(client, c, status="scheduled")
    await wait_until(lambda: orchestrator_attempts(orchestrator, "retrying") >= 10, timeout=30)
    await receiver.start()
    try:
        await wait_until(lambda: len(receiver.ids()) == 10, timeout=30)
        assert receiver.bad == []
        counts = Counter(r.webhook_id for r in receiver.received)
        assert set(counts) == receiver.ids()  # duplicates, if any, carry the same webhook-id
        for c in campaigns:
            entries = await wait_until(partial(_delivered_both, client, c["id"]), timeout=10)
            per_webhook: dict[str, list[int]] = {}
            for e in reversed(entries):
                per_webhook.setdefault(e["webhookId"], []).append(e["attempt"])
                assert e["status"] in ("retrying", "delivered")
                if e["status"] == "retrying":
                    assert e["error"]
            # Every attempt is in the log: numbered 1..n without gaps, the last delivered.
            for attempts in per_webhook.values():
                assert attempts == list(range(1, len(attempts) + 1))
            assert sum(len(a) for a in per_webhook.values()) >= 3  # at least one failure
    finally:
        await receiver.stop()


def orchestrator_attempts(orchestrator: Orchestrator, status: str) -> float:
    from core import metrics

    return metrics.WEBHOOK_ATTEMPTS.labels("webhook", status)._value.get()  # type: ignore[no-any-return]


async def _delivered_both(
    client: httpx.AsyncClient, campaign_id: str
) -> list[dict[str, Any]] | None:
    entries = await logs(client, campaign_id)
    return entries if sum(e["status"] == "delivered" for e in entries) >= 2 else None


async def test_a_hung_endpoint_does_not_delay_a_healthy_one(
    client: httpx.AsyncClient, orchestrator: Orchestrator, receiver: Receiver
) -> None:
    release = asyncio.Event()

    async def hang(_: int) -> None:
        await release.wait()

    hung = await Receiver(respond=hang).start()
    try:
        await register(client, hung)
        await register(client, receiver)
        started = time.monotonic()
        for i in range(20):
            await create(client, id=f"cmp_slow_{i}")
        await wait_until(lambda: len(receiver.ids()) == 20, timeout=10)
        assert time.monotonic() - started < 5
        assert hung.received == []  # still stuck (every attempt times out after 2 s)
    finally:
        release.set()
        await hung.stop()


async def test_4xx_dead_letters_at_once_and_replay_resends_with_the_same_id(
    client: httpx.AsyncClient, orchestrator: Orchestrator, receiver: Receiver
) -> None:
    refusing = True
    receiver.respond = lambda _: (400, {}) if refusing else None
    endpoint = await register(client, receiver)
    c = await create(client, id="cmp_dlq")
    c = await patch(client, c, status="scheduled")
    other = await create(client, id="cmp_dlq_other")
    entries = await wait_until(lambda: _logged(client, "cmp_dlq", 2))
    assert {(e["status"], e["attempt"], e["httpStatus"]) for e in entries} == {("dead", 1, 400)}
    await wait_until(lambda: _logged(client, "cmp_dlq_other", 1))
    assert receiver.hits == 3
    # The dead-letter queue's size is exported (set by the dispatcher's sweep).
    await wait_until(lambda: REGISTRY.get_sample_value("fk_webhook_dlq_size") == 3)
    refusing = False
    response = await client.post("/webhooks/dlq/replay", json={"campaignId": "cmp_dlq"})
    assert response.status_code == 202
    await wait_until(lambda: len(receiver.received) == 2)
    assert receiver.ids() == {e["webhookId"] for e in entries}
    # Replay by endpoint takes the rest; nothing is sent twice.
    response = await client.post("/webhooks/dlq/replay", json={"endpointId": endpoint["id"]})
    assert response.status_code == 202
    await wait_until(lambda: len(receiver.received) == 3)
    assert other["id"] in {r.body["data"]["campaignId"] for r in receiver.received}
    await wait_until(lambda: _logged(client, "cmp_dlq", 4))
    assert len(receiver.received) == 3
    assert receiver.bad == []
    await wait_until(lambda: REGISTRY.get_sample_value("fk_webhook_dlq_size") == 0)


async def test_429_honours_retry_after_and_410_disables_the_endpoint(
    client: httpx.AsyncClient, orchestrator: Orchestrator, receiver: Receiver
) -> None:
    receiver.respond = lambda hit: (429, {"Retry-After": "1"}) if hit == 1 else None
    await register(client, receiver)
    await create(client, id="cmp_429")
    entries = await wait_until(lambda: _logged(client, "cmp_429", 2), timeout=10)
    retried, delivered = entries[1], entries[0]
    assert (retried["httpStatus"], delivered["httpStatus"]) == (429, 204)
    gap = datetime.fromisoformat(delivered["timestamp"]) - datetime.fromisoformat(
        retried["timestamp"]
    )
    assert gap >= timedelta(seconds=0.9)

    gone = await Receiver(respond=lambda _: (410, {})).start()
    try:
        ep = await register(client, gone)
        await create(client, id="cmp_410")
        await wait_until(lambda: _logged(client, "cmp_410", 2))
        listed = (await client.get("/webhooks/endpoints")).json()["items"]
        mine = next(e for e in listed if e["id"] == ep["id"])
        assert mine["enabled"] is False
        assert "410" in mine["disabledReason"]
        hits = gone.hits
        await create(client, id="cmp_410_after")
        await wait_until(lambda: _logged(client, "cmp_410_after", 1))
        assert gone.hits == hits  # no more attempts to a disabled endpoint
    finally:
        await gone.stop()


def _received(receiver: Receiver, n: int) -> bool:
    return len(receiver.received) == n


async def test_rotated_secret_signs_with_old_and_new(
    client: httpx.AsyncClient, orchestrator: Orchestrator, receiver: Receiver
) -> None:
    endpoint = await register(client, receiver)
    old = receiver.secrets.pop()
    new = await rotate(client, endpoint["id"])
    assert new != old
    for secret in (old, new):
        receiver.secrets = [secret]
        before = len(receiver.received)
        await create(client)
        await wait_until(partial(_received, receiver, before + 1))
        assert receiver.bad == []
    assert len(receiver.received[-1].headers["webhook-signature"].split(" ")) == 2


async def test_private_urls_are_refused_at_registration_and_connect_time(
    client: httpx.AsyncClient, settings: Settings, store: Store, topics: None
) -> None:
    for url in ("http://10.0.0.1/x", "http://169.254.169.254/latest", "http://localhost/x"):
        response = await client.post("/webhooks/endpoints", json={"url": url})
        assert response.status_code == 422, url
    # The settings' default endpoint is not allow-listed here: refused when connecting.
    local = await Receiver().start()
    strict = settings.model_copy(
        update={
            "webhook_allowed_hosts": "",
            "webhook_default_url": local.url,
            "webhook_default_secret": "whsec_" + "A" * 32,
        }
    )
    service = Orchestrator(strict, store)
    await service.start()
    try:
        await create(client, id="cmp_ssrf")
        rows = await wait_until(
            lambda: store.query_rows(
                "SELECT status, error FROM webhook_attempts WHERE campaign_id = 'cmp_ssrf'"
            )
        )
        assert rows[0][0] == "dead"
        assert "refused" in rows[0][1]
        assert local.hits == 0
    finally:
        await service.stop()
        await local.stop()


async def test_scheduled_campaign_goes_live_and_completes_on_its_dates(
    client: httpx.AsyncClient, orchestrator: Orchestrator, receiver: Receiver
) -> None:
    await register(client, receiver, eventTypes=["CampaignStatusChanged"])
    now = datetime.now(UTC)
    c = await create(
        client,
        id="cmp_timed",
        startDate=(now + timedelta(seconds=1)).isoformat(),
        endDate=(now + timedelta(seconds=2.5)).isoformat(),
    )
    await patch(client, c, status="scheduled")

    async def status() -> str:
        return str((await client.get("/campaigns/cmp_timed")).json()["status"])

    await wait_until(lambda: _is(status, "live"), timeout=10)
    assert datetime.now(UTC) >= now + timedelta(seconds=1)
    await wait_until(lambda: _is(status, "completed"), timeout=10)
    await wait_until(lambda: len(receiver.received) == 3)
    moves = [
        (r.body["data"]["previous"]["status"], r.body["data"]["current"]["status"])
        for r in receiver.received
    ]
    assert moves == [("draft", "scheduled"), ("scheduled", "live"), ("live", "completed")]


async def _is(status: Any, wanted: str) -> bool:
    return bool(await status() == wanted)


async def test_slack_and_telegram_notifiers_post_status_updates(
    client: httpx.AsyncClient, settings: Settings, store: Store, topics: None
) -> None:
    slack = await Receiver().start()
    telegram = await Receiver().start()
    configured = settings.model_copy(
        update={
            "slack_webhook_url": slack.url,
            "telegram_bot_token": "123:secret-token",
            "telegram_chat_id": "-10042",
            "telegram_api_base": f"http://127.0.0.1:{telegram.port}",
        }
    )
    service = Orchestrator(configured, store)
    await service.start()
    try:
        c = await create(client, id="cmp_chat", name="Spring drop")
        await patch(client, c, status="scheduled")
        await wait_until(lambda: slack.received and telegram.received)
        text = slack.received[0].body["text"]
        assert "Spring drop" in text
        assert "draft" in text
        assert "scheduled" in text
        assert telegram.received[0].body == {"chat_id": "-10042", "text": text}
        assert telegram.received[0].path == "/bot123:secret-token/sendMessage"
        rows = await store.query_rows(
            "SELECT endpoint_url FROM webhook_attempts WHERE campaign_id = 'cmp_chat'"
        )
        assert all("secret-token" not in r[0] for r in rows)
        assert len(slack.received) == len(telegram.received) == 1  # created is not a status change
    finally:
        await service.stop()
        await slack.stop()
        await telegram.stop()


def _retry_in(orchestrator: Orchestrator, seconds: float) -> None:
    """Attempts answered 429 with `Retry-After: <seconds>` are retried that much later."""
    orchestrator.dispatcher.policy = Policy(max_attempts=5, base_seconds=0.1, max_seconds=seconds)


async def test_a_retry_due_after_its_endpoint_was_disabled_is_not_sent(
    client: httpx.AsyncClient, orchestrator: Orchestrator, receiver: Receiver
) -> None:
    _retry_in(orchestrator, 3.0)
    receiver.respond = lambda hit: (429, {"Retry-After": "3"}) if hit == 1 else None
    endpoint = await register(client, receiver)
    await create(client, id="cmp_disabled_retry")
    await wait_until(lambda: receiver.hits == 1)
    response = await client.patch(f"/webhooks/endpoints/{endpoint['id']}", json={"enabled": False})
    assert response.status_code == 200
    entries = await wait_until(lambda: _logged(client, "cmp_disabled_retry", 2), timeout=10)
    assert [(e["attempt"], e["status"]) for e in entries] == [(2, "dead"), (1, "retrying")]
    assert entries[0]["httpStatus"] is None
    assert "disabled" in entries[0]["error"]
    assert receiver.hits == 1
    assert receiver.received == []


async def test_a_retry_goes_out_once_its_endpoint_is_enabled_again(
    client: httpx.AsyncClient, orchestrator: Orchestrator, receiver: Receiver
) -> None:
    """The dispatcher disables an endpoint that answers 410; enabled again through the API, the
    retry it had pending is sent."""
    _retry_in(orchestrator, 3.0)
    answers = {1: (429, {"Retry-After": "3"}), 2: (410, {})}
    receiver.respond = lambda hit: answers.get(hit)
    endpoint = await register(client, receiver)
    await create(client, id="cmp_reenabled_retry")
    await wait_until(lambda: receiver.hits == 1)
    await create(client, id="cmp_reenabled_gone")
    await wait_until(lambda: _logged(client, "cmp_reenabled_gone", 1))

    async def enabled() -> bool:
        listed = (await client.get("/webhooks/endpoints")).json()["items"]
        return bool(next(e for e in listed if e["id"] == endpoint["id"])["enabled"])

    assert not await enabled()
    response = await client.patch(f"/webhooks/endpoints/{endpoint['id']}", json={"enabled": True})
    assert response.status_code == 200
    await wait_until(lambda: len(receiver.received) == 1, timeout=10)
    assert receiver.received[0].body["data"]["campaignId"] == "cmp_reenabled_retry"
    entries = await wait_until(lambda: _logged(client, "cmp_reenabled_retry", 2))
    assert [(e["attempt"], e["status"]) for e in entries] == [(2, "delivered"), (1, "retrying")]
    assert receiver.bad == []


async def test_a_retry_after_a_secret_rotation_is_signed_with_the_new_secret(
    client: httpx.AsyncClient, orchestrator: Orchestrator, receiver: Receiver
) -> None:
    _retry_in(orchestrator, 3.0)
    receiver.respond = lambda hit: (429, {"Retry-After": "3"}) if hit == 1 else None
    endpoint = await register(client, receiver)
    await create(client, id="cmp_rotated_retry")
    await wait_until(lambda: receiver.hits == 1)
    receiver.secrets = [await rotate(client, endpoint["id"])]  # a receiver that switched at once
    await wait_until(lambda: receiver.received or receiver.bad, timeout=10)
    assert receiver.bad == []
    assert [r.body["data"]["campaignId"] for r in receiver.received] == ["cmp_rotated_retry"]
    # Within the grace period the old secret signs too.
    assert len(receiver.received[0].headers["webhook-signature"].split(" ")) == 2


async def test_on_a_chdb_store_an_endpoint_is_read_again_only_after_an_endpoint_write(
    client: httpx.AsyncClient, orchestrator: Orchestrator, receiver: Receiver, store: Store
) -> None:
    """chDB opens its data in one process only, so every endpoint write passes this process's
    count: without one, the endpoint read before is current and no store query is made. A row
    slipped into the store behind the count (which no writer does) shows which one is used."""
    endpoint = await register(client, receiver)
    dispatcher = orchestrator.dispatcher
    read = await dispatcher.current_endpoint(endpoint["id"])
    assert read is not None
    assert read.enabled
    await store.command(
        "INSERT INTO webhook_endpoints SELECT id, org, url, event_types, secret, previous_secret,"
        " previous_expires_at, 0, 'behind', version + 1, created_at, now64(3)"
        " FROM webhook_endpoints FINAL WHERE id = {id:String}",
        {"id": endpoint["id"]},
    )
    cached = await dispatcher.current_endpoint(endpoint["id"])
    assert cached is not None
    assert cached.enabled
    # A write through the API (which reads the row slipped in, so it disables it again).
    response = await client.patch(f"/webhooks/endpoints/{endpoint['id']}", json={"enabled": False})
    assert response.status_code == 200
    current = await dispatcher.current_endpoint(endpoint["id"])
    assert current is not None
    assert not current.enabled


async def _stored_secrets(store: Store, endpoint_id: str) -> list[str]:
    """Every secret value stored for the endpoint, superseded versions' included."""
    rows = await store.query_rows(
        "SELECT secret, previous_secret FROM webhook_endpoints WHERE id = {id:String}",
        {"id": endpoint_id},
    )
    return [value for row in rows for value in row if value]


async def test_endpoint_secrets_are_stored_sealed_and_deliveries_verify_with_the_plain_secret(
    client: httpx.AsyncClient,
    orchestrator: Orchestrator,
    receiver: Receiver,
    store: Store,
    settings: Settings,
) -> None:
    endpoint = await register(client, receiver)
    old = receiver.secrets.pop()
    new = await rotate(client, endpoint["id"])
    stored = await _stored_secrets(store, endpoint["id"])
    assert len(stored) == 3  # the first version's secret, the rotation's new and previous
    for value in stored:
        assert value.startswith(SEALED_PREFIX)
        for plain in (old, new):
            assert plain.removeprefix("whsec_") not in value
    cipher = SecretCipher(settings.secrets_key)
    assert {cipher.open(v, context=endpoint["id"]) for v in stored} == {old, new}
    receiver.secrets = [new]
    await create(client, id="cmp_sealed")
    await wait_until(lambda: receiver.received or receiver.bad)
    assert receiver.bad == []
    assert [r.body["data"]["campaignId"] for r in receiver.received] == ["cmp_sealed"]


async def test_a_secret_stored_in_plaintext_still_signs_and_is_sealed_in_every_copy(
    client: httpx.AsyncClient, orchestrator: Orchestrator, receiver: Receiver, store: Store
) -> None:
    """A row written before secrets were sealed: deliveries verify with its secret at once, and
    the dispatcher seals it, leaving no plaintext copy in the table."""
    plain = new_secret()
    receiver.secrets = [plain]
    now = datetime.now(UTC)
    row = ["ep_legacy", "acme", receiver.url, [], plain, "", datetime(1970, 1, 1, tzinfo=UTC)]
    row += [1, "", 1, now, now]
    await store.insert("webhook_endpoints", [[v] for v in row], ENDPOINT_COLUMNS)
    ENDPOINT_WRITES.bump()  # as any endpoint write does
    await create(client, id="cmp_legacy")
    await wait_until(lambda: receiver.received or receiver.bad)
    assert receiver.bad == []
    assert [r.body["data"]["campaignId"] for r in receiver.received] == ["cmp_legacy"]

    async def sealed() -> bool:
        stored = await _stored_secrets(store, "ep_legacy")
        return bool(stored) and all(plain.removeprefix("whsec_") not in v for v in stored)

    await wait_until(sealed, timeout=10)
    await create(client, id="cmp_legacy_2")
    await wait_until(lambda: len(receiver.received) == 2 or receiver.bad)
    assert receiver.bad == []


@pytest.mark.parametrize("settings", [{"webhook_secret_grace_seconds": 1}], indirect=True)
async def test_the_previous_secret_is_cleared_when_its_grace_period_ends(
    client: httpx.AsyncClient,
    orchestrator: Orchestrator,
    receiver: Receiver,
    store: Store,
    settings: Settings,
) -> None:
    endpoint = await register(client, receiver)
    old = receiver.secrets.pop()
    new = await rotate(client, endpoint["id"])
    rotated = time.monotonic()
    cipher = SecretCipher(settings.secrets_key)

    async def opened() -> set[str]:
        return {
            cipher.open(v, context=endpoint["id"])
            for v in await _stored_secrets(store, endpoint["id"])
        }

    assert old in await opened()

    async def cleared() -> bool:
        return await opened() == {new}

    # The grace period (1 s) plus a sweep (0.5 s) and some slack.
    await wait_until(cleared, timeout=5)
    assert time.monotonic() - rotated >= 0.9
    rows = await store.query_rows(
        "SELECT previous_secret FROM webhook_endpoints FINAL WHERE id = {id:String}",
        {"id": endpoint["id"]},
    )
    assert rows == [("",)]
    receiver.secrets = [new]
    await create(client, id="cmp_after_grace")
    await wait_until(lambda: receiver.received or receiver.bad)
    assert receiver.bad == []
    assert len(receiver.received[0].headers["webhook-signature"].split(" ")) == 1

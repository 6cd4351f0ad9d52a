"""One organisation's webhook endpoints that never answer do not delay another organisation's
deliveries: each organisation has its share of the dispatcher's attempts and connections. A real
dispatcher on the real broker and store; A's endpoint is a real HTTP receiver on 127.0.0.1, B's
point at a TCP server there that takes connections and never answers."""

import asyncio
import statistics
import time

import httpx
import pytest

from core.auth import issue_token
from core.settings import Settings
from streams.app import Orchestrator
from tests.conftest import wait_until
from tests.receivers import Receiver, Silent
from tests.security.conftest import ORG_B

# Campaign commands are answered by the campaign agent.
pytestmark = pytest.mark.usefixtures("campaign_agent")

HUNG_ENDPOINTS = 50
DELIVERIES = 150
B_BACKLOG = 20


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "webhook_allowed_hosts": "127.0.0.1",
            "webhook_max_endpoints_per_org": HUNG_ENDPOINTS,
            "webhook_endpoint_concurrency": 16,
            "webhook_timeout_seconds": 5.0,
            "webhook_max_attempts": 3,
            "webhook_backoff_base_seconds": 1.0,
            "webhook_backoff_max_seconds": 2.0,
            "rate_limit_writes_per_minute": 0,
        }
    )


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


async def _latencies(
    client: httpx.AsyncClient, receiver: Receiver, prefix: str, n: int
) -> list[float]:
    """Organisation A creates `n` campaigns one after the other: the seconds from each request
    to its webhook's arrival."""
    sent: dict[str, float] = {}
    for i in range(n):
        campaign_id = f"{prefix}_{i}"
        sent[campaign_id] = time.monotonic()
        response = await client.post("/campaigns", json={"id": campaign_id, "name": "A"})
        assert response.status_code == 201, f"A's campaign {campaign_id}: {response.text}"
    arrived = await wait_until(lambda: _arrivals(receiver, set(sent)), timeout=30)
    return [arrived[c] - sent[c] for c in sent]


def _arrivals(receiver: Receiver, wanted: set[str]) -> dict[str, float] | None:
    seen = {r.body["data"]["campaignId"]: r.at for r in receiver.received}
    return seen if wanted <= set(seen) else None


async def test_endpoints_of_one_organisation_that_never_answer_do_not_delay_another(
    client: httpx.AsyncClient, orchestrator: Orchestrator, settings: Settings, receiver: Receiver
) -> None:
    silent = Silent()
    port = await silent.start()
    b = {"Authorization": f"Bearer {issue_token(settings.jwt_secret, org=ORG_B)}"}
    try:
        response = await client.post("/webhooks/endpoints", json={"url": receiver.url})
        receiver.secrets.append(response.json()["secret"])
        await _latencies(client, receiver, "warm", 30)  # first connections, caches
        without = await _latencies(client, receiver, "without", DELIVERIES)

        for i in range(HUNG_ENDPOINTS):
            url = f"http://127.0.0.1:{port}/never/{i}"
            response = await client.post("/webhooks/endpoints", json={"url": url}, headers=b)
            assert response.status_code == 201, response.text
        # B's events (its answers do not matter here: before each organisation had its share,
        # B's deliveries overflowed the shared pool and stalled the whole worker).
        await asyncio.gather(
            *(
                client.post("/campaigns", json={"name": f"B {i}"}, headers=b)
                for i in range(B_BACKLOG)
            )
        )
        # B's deliveries hold every slot they may (its share) before A is measured again.
        await wait_until(lambda: silent.connections >= settings.webhook_org_concurrency, timeout=20)
        with_hung = await _latencies(client, receiver, "with", DELIVERIES)
        held = silent.connections
    finally:
        await silent.stop()

    measured = (
        f"A's delivery p99 {p99(without) * 1000:.0f} ms without B's endpoints that never"
        f" answer, {p99(with_hung) * 1000:.0f} ms with them (medians"
        f" {statistics.median(without) * 1000:.0f} / {statistics.median(with_hung) * 1000:.0f} ms;"
        f" B's connections {held})"
    )
    assert p99(with_hung) <= 1.5 * p99(without), measured
    assert receiver.bad == []

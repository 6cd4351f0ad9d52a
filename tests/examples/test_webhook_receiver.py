"""examples/webhook_receiver.py as a user runs it (a child process): registered through the API,
it verifies what the running webhook dispatcher delivers for a campaign's changes; sent
deliveries built by the dispatcher's own code (`fan_out` and `build_request`, signed by
`core.signing`), it handles a good one once however often it comes, and refuses a forged,
altered or stale one."""

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from core.repositories.webhooks import EndpointConfig
from core.settings import Settings
from core.signing import new_secret
from schemas.campaigns import Campaign, CampaignEvent, CampaignEventType, CampaignStatus
from streams.app import Orchestrator
from streams.deliveries import Request, build_request, fan_out
from tests.conftest import free_port, wait_until

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "webhook_receiver.py"
START_DEADLINE_SECONDS = 20


@dataclass
class RunningReceiver:
    process: "subprocess.Popen[str]"
    url: str


@pytest.fixture
def secret() -> str:
    return new_secret()


@contextmanager
def running_receiver(secret: str, port: int = 0) -> Iterator[RunningReceiver]:
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--secret", secret, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        # The first line names the port it listens on (it binds before printing it).
        line = process.stderr.readline()
        assert line.startswith("listening on http://"), line
        yield RunningReceiver(process, line.split()[-1].rstrip("/") + "/hooks")
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=START_DEADLINE_SECONDS)


@pytest.fixture
def receiver(secret: str) -> Iterator[RunningReceiver]:
    with running_receiver(secret) as running:
        yield running


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The dispatcher may reach the receiver on 127.0.0.1."""
    return settings.model_copy(update={"webhook_allowed_hosts": "127.0.0.1"})


@pytest.mark.usefixtures("campaign_agent")
async def test_what_the_dispatcher_delivers_is_verified_and_handled(
    client: httpx.AsyncClient, orchestrator: Orchestrator
) -> None:
    """As docs/webhooks-receiver.md says: register the URL, start the script with the secret of
    that answer, change a campaign."""
    port = free_port()
    registered = await client.post(
        "/webhooks/endpoints", json={"url": f"http://127.0.0.1:{port}/hooks"}
    )
    assert registered.status_code == 201, registered.text
    with running_receiver(registered.json()["secret"], port) as running:
        created = await client.post("/campaigns", json={"id": "cmp_hooked", "name": "Hooked"})
        assert created.status_code == 201, created.text
        scheduled = await client.patch(
            "/campaigns/cmp_hooked", json={"status": "scheduled"}, headers={"If-Match": '"1"'}
        )
        assert scheduled.status_code == 200, scheduled.text

        async def both_delivered() -> list[str] | None:
            response = await client.get("/logs", params={"campaignId": "cmp_hooked"})
            statuses = [entry["status"] for entry in response.json()["items"]]
            return statuses if len(statuses) == 2 else None

        assert await wait_until(both_delivered) == ["delivered", "delivered"]
        handled, refused = output(running)
    assert [(h["type"], h["campaignId"], h["version"], h["status"]) for h in handled] == [
        ("CampaignCreated", "cmp_hooked", 1, "draft"),
        ("CampaignStatusChanged", "cmp_hooked", 2, "scheduled"),
    ]
    assert "refused" not in refused


def campaign_event(event_id: str = "evt_0123456789abcdef") -> CampaignEvent:
    at = datetime.now(UTC)
    campaign = Campaign(
        id="spring-launch",
        org="demo",
        name="Spring launch",
        status=CampaignStatus.draft,
        version=1,
        created_at=at,
        updated_at=at,
    )
    return CampaignEvent(
        event_id=event_id,
        type=CampaignEventType.created,
        campaign_id=campaign.id,
        org=campaign.org,
        version=1,
        occurred_at=at,
        previous=None,
        current=campaign,
    )


def delivery_request(url: str, secret: str, event: CampaignEvent, *, at: datetime) -> Request:
    """The POST the dispatcher makes for `event` to an endpoint at `url` with `secret`."""
    endpoint = EndpointConfig(id="ep_receiver", org=event.org, url=url, secret=secret)
    (delivery,) = fan_out(event, [endpoint], partition=0, now=time.time())
    return build_request(delivery, endpoint, at)


def send(request: Request, *, body: bytes | None = None) -> httpx.Response:
    return httpx.post(
        request.url,
        headers=request.headers,
        content=request.body if body is None else body,
        timeout=START_DEADLINE_SECONDS,
    )


def output(receiver: RunningReceiver) -> tuple[list[dict[str, object]], str]:
    receiver.process.terminate()
    out, err = receiver.process.communicate(timeout=START_DEADLINE_SECONDS)
    return [json.loads(line) for line in out.splitlines()], err


def test_a_signed_delivery_is_handled_once_however_often_it_comes(
    receiver: RunningReceiver, secret: str
) -> None:
    event = campaign_event()
    request = delivery_request(receiver.url, secret, event, at=datetime.now(UTC))
    assert send(request).status_code == 204
    # A retry (same webhook-id, signed again at a later attempt) is acknowledged, not redone.
    retry = delivery_request(receiver.url, secret, event, at=datetime.now(UTC))
    assert send(retry).status_code == 204
    handled, refused = output(receiver)
    assert handled == [
        {
            "webhookId": event.event_id,
            "type": "CampaignCreated",
            "campaignId": "spring-launch",
            "version": 1,
            "status": "draft",
        }
    ]
    assert "refused" not in refused


def test_forged_altered_and_stale_deliveries_are_refused(
    receiver: RunningReceiver, secret: str
) -> None:
    now = datetime.now(UTC)
    forged = delivery_request(receiver.url, new_secret(), campaign_event("evt_forged"), at=now)
    assert send(forged).status_code == 400
    good = delivery_request(receiver.url, secret, campaign_event("evt_altered"), at=now)
    altered = good.body.replace(b'"draft"', b'"live"')
    assert altered != good.body
    assert send(good, body=altered).status_code == 400
    # Signed correctly, but ten minutes ago: a replay of a captured delivery.
    stale = delivery_request(
        receiver.url, secret, campaign_event("evt_stale"), at=now - timedelta(minutes=10)
    )
    assert send(stale).status_code == 400
    unsigned = httpx.post(receiver.url, content=good.body, timeout=START_DEADLINE_SECONDS)
    assert unsigned.status_code == 400
    handled, refused = output(receiver)
    assert handled == []
    for webhook_id in ("evt_forged", "evt_altered", "evt_stale"):
        assert f"refused '{webhook_id}'" in refused

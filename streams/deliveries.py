"""Webhook deliveries as data (pure): which endpoints an event goes to, and the HTTP request of
one attempt (a Standard Webhooks signed POST, or a Slack / Telegram status message)."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from core.repositories.webhooks import Delivery, EndpointConfig, EndpointKind
from core.signing import signature_header
from schemas.campaigns import CampaignEvent, CampaignEventType
from schemas.insights import CampaignInsight


def webhook_payload(event: CampaignEvent | CampaignInsight) -> str:
    """The body every webhook of `event` carries: `{type, timestamp, data}`."""
    return orjson.dumps(
        {
            "type": event.type.value,
            "timestamp": event.occurred_at.isoformat().replace("+00:00", "Z"),
            "data": event.model_dump(mode="json", by_alias=True),
        }
    ).decode()


def fan_out(
    event: CampaignEvent | CampaignInsight,
    endpoints: list[EndpointConfig],
    *,
    partition: int,
    now: float,
) -> list[Delivery]:
    """A delivery per matching endpoint, all due now. Ids are deterministic, so re-reading the
    event gives the same deliveries (and the same webhook-id)."""
    payload = webhook_payload(event)
    return [
        Delivery(
            delivery_id=f"{event.event_id}:{ep.id}",
            webhook_id=event.event_id,
            org=event.org,
            endpoint_id=ep.id,
            campaign_id=event.campaign_id,
            event_type=event.type.value,
            partition=partition,
            payload=payload,
            due_at=now,
            created_at=event.occurred_at.timestamp(),
        )
        for ep in endpoints
        if ep.accepts(event.type.value, event.org)
    ]


def status_text(payload: dict[str, Any]) -> str:
    """A human-readable line for chat notifiers."""
    data = payload.get("data", {})
    current = data.get("current", {})
    previous = data.get("previous") or {}
    name = current.get("name", "?")
    return (
        f"Campaign \u201c{name}\u201d ({current.get('id', '?')}): "
        f"{previous.get('status', '?')} \u2192 {current.get('status', '?')} "
        f"(version {current.get('version', '?')})"
    )


_INSIGHT_WORDS = {
    "spike": "spike",
    "stall": "stall",
    "rateDrop": "engagement-rate drop",
}


def insight_text(payload: dict[str, Any]) -> str:
    """A human-readable line for chat notifiers about a live insight."""
    data = payload.get("data", {})
    scope = data.get("scope", {})
    word = _INSIGHT_WORDS.get(data.get("kind", ""), data.get("kind", "?"))
    what = "Campaign" if scope.get("kind") == "campaign" else "Creator"
    if data.get("status") == "cleared":
        return f"{what} {scope.get('id', '?')}: {word} in {data.get('metric', '?')} is over"
    return (
        f"{what} {scope.get('id', '?')}: {word} in {data.get('metric', '?')}, "
        f"{data.get('observed', '?')} against {data.get('expected', '?')} expected "
        f"(score {data.get('score', '?')}) since {data.get('firstSeen', '?')}"
    )


def chat_text(payload: dict[str, Any]) -> str:
    """The chat notifiers' line for a status change or an insight."""
    if payload.get("type") == CampaignEventType.insight:
        return insight_text(payload)
    return status_text(payload)


def slack_escape(text: str) -> str:
    """`text` for Slack's mrkdwn: `&`, `<` and `>` as its entities, so a campaign named
    `<!channel>` or `<https://evil|click>` shows as text instead of pinging or linking."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(frozen=True, slots=True)
class Request:
    url: str
    headers: dict[str, str]
    body: bytes


def build_request(delivery: Delivery, endpoint: EndpointConfig, now: datetime) -> Request:
    """The POST of one attempt; the signature is computed per attempt (fresh timestamp)."""
    if endpoint.kind is EndpointKind.slack:
        text = slack_escape(chat_text(orjson.loads(delivery.payload)))
        return Request(endpoint.url, _JSON, orjson.dumps({"text": text}))
    if endpoint.kind is EndpointKind.telegram:
        # No parse_mode: Telegram shows the text as it is, so a name needs no escaping.
        text = chat_text(orjson.loads(delivery.payload))
        body = orjson.dumps({"chat_id": endpoint.chat_id, "text": text})
        return Request(endpoint.url, _JSON, body)
    body = delivery.payload.encode()
    timestamp = int(now.timestamp())
    headers = {
        **_JSON,
        "webhook-id": delivery.webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(
            endpoint.active_secrets(now.timestamp()), delivery.webhook_id, timestamp, body
        ),
    }
    return Request(endpoint.url, headers, body)


_JSON = {"content-type": "application/json", "user-agent": "fk-webhooks/1"}

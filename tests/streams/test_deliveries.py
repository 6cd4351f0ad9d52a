"""The chat notifiers' messages (pure, no HTTP): a campaign name is shown as text, never as Slack
markup (a mention, a link) or Telegram formatting."""

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from core.repositories.webhooks import EndpointConfig, EndpointKind
from schemas.campaigns import Campaign, CampaignEvent, CampaignEventType, CampaignStatus
from streams.deliveries import build_request, fan_out

HOSTILE_NAMES = [
    "<!channel>",
    "<!here> deploy",
    "<!subteam^S0123|@oncall>",
    "<@U024BE7LH>",
    "<https://evil.example|click>",
    "<mailto:a@evil.example|mail>",
    "Spring & Summer <3 > all",
    "&lt;!channel&gt;",
]


def status_changed(name: str) -> CampaignEvent:
    now = datetime(2024, 5, 1, tzinfo=UTC)
    before = Campaign(
        id="cmp_chat",
        org="acme",
        name=name,
        status=CampaignStatus.draft,
        version=1,
        created_at=now,
        updated_at=now,
    )
    after = before.model_copy(update={"status": CampaignStatus.scheduled, "version": 2})
    return CampaignEvent(
        event_id=uuid.uuid4().hex,
        type=CampaignEventType.status_changed,
        campaign_id="cmp_chat",
        org="acme",
        version=2,
        occurred_at=now,
        previous=before,
        current=after,
    )


def message(name: str, endpoint: EndpointConfig) -> dict[str, Any]:
    [delivery] = fan_out(status_changed(name), [endpoint], partition=0, now=0.0)
    request = build_request(delivery, endpoint, datetime.now(UTC))
    body: dict[str, Any] = orjson.loads(request.body)
    return body


SLACK = EndpointConfig(
    id="notifier-slack", org="*", url="https://hooks.slack.invalid/x", kind=EndpointKind.slack
)
TELEGRAM = EndpointConfig(
    id="notifier-telegram",
    org="*",
    url="https://api.telegram.invalid/botT/sendMessage",
    kind=EndpointKind.telegram,
    chat_id="-10042",
)


def slack_unescape(text: str) -> str:
    """What Slack displays for escaped text (its three entities, `&amp;` last)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_slack_shows_a_campaign_name_as_text_never_as_a_mention_or_link(name: str) -> None:
    """Slack's mrkdwn reads `<...>` as a mention or a link and `&...;` as an entity: the text
    carries neither `<` nor `>`, every `&` starts one of Slack's three entities, and reading the
    entities back gives the name exactly as the campaign has it."""
    text = message(name, SLACK)["text"]
    assert "<" not in text
    assert ">" not in text
    assert text.count("&") == text.count("&amp;") + text.count("&lt;") + text.count("&gt;")
    assert f"\u201c{name}\u201d" in slack_unescape(text)
    assert "draft \u2192 scheduled" in text


def test_slack_escapes_exactly_its_three_characters() -> None:
    text = message("<!channel> & <https://evil.example|click>", SLACK)["text"]
    assert "\u201c&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;\u201d" in text


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_telegram_sends_plain_text_so_a_name_needs_no_escaping(name: str) -> None:
    """sendMessage without `parse_mode` formats nothing (no HTML, no MarkdownV2), so the name is
    sent as it is; a `parse_mode` added to the body would need the name escaped for it, and this
    test would fail until it is."""
    body = message(name, TELEGRAM)
    assert set(body) == {"chat_id", "text"}
    assert f"\u201c{name}\u201d" in body["text"]

"""Secrets never reach the logs: a real `fk up` (its own logging set-up, JSON lines, debug level)
is given a JWT secret, an LLM key, a default webhook secret and Slack / Telegram URLs that carry
secrets; requests with good and bad tokens, webhook secrets shown and rotated, a brief whose model
calls fail and notifier deliveries that fail all run; none of the secret values is in its output."""

import uuid
from pathlib import Path

import jwt
import pytest

from core.auth import issue_token
from core.settings import Settings
from tests.briefs.fake_llm import FakeLLM
from tests.conftest import free_port, wait_until
from tests.processes import PlatformProcess


def _attempts(platform: PlatformProcess) -> float:
    total = 0.0
    for line in platform.http.get("/metrics").text.splitlines():
        if line.startswith("fk_webhook_attempts_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.slow
async def test_no_secret_value_is_logged(tmp_path: Path) -> None:
    jwt_secret = f"jwt-{uuid.uuid4().hex}{uuid.uuid4().hex}"
    secrets_key = f"key-{uuid.uuid4().hex}{uuid.uuid4().hex}"
    llm_key = f"sk-{uuid.uuid4().hex}"
    default_secret = "whsec_" + uuid.uuid4().hex
    bot_token = f"123456:{uuid.uuid4().hex}"
    slack_path = f"T0/B0/{uuid.uuid4().hex}"
    closed = free_port()  # nothing listens: every notifier delivery fails
    llm = FakeLLM()  # an empty script: every model call is a 500
    llm.start()
    env = {
        "FK_ENV": "test",
        "FK_LOG_FORMAT": "json",
        "FK_LOG_LEVEL": "DEBUG",
        "FK_KAFKA_EMBEDDED_PORT": str(free_port()),
        "FK_JWT_SECRET": jwt_secret,
        "FK_SECRETS_KEY": secrets_key,
        "FK_LLM_BASE_URL": llm.base_url,
        "FK_LLM_API_KEY": llm_key,
        "FK_LLM_MAX_RETRIES": "1",
        "FK_LLM_BACKOFF_SECONDS": "0.01",
        "FK_BRIEF_EMBEDDER": "lexical",
        "FK_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        "FK_WEBHOOK_DEFAULT_URL": f"http://127.0.0.1:{closed}/hook",
        "FK_WEBHOOK_DEFAULT_SECRET": default_secret,
        "FK_SLACK_WEBHOOK_URL": f"http://127.0.0.1:{closed}/services/{slack_path}",
        "FK_TELEGRAM_BOT_TOKEN": bot_token,
        "FK_TELEGRAM_CHAT_ID": "42",
        "FK_TELEGRAM_API_BASE": f"http://127.0.0.1:{closed}",
        "FK_WEBHOOK_MAX_ATTEMPTS": "1",
    }
    token = issue_token(jwt_secret, org="acme")
    forged = jwt.encode(
        {"sub": "x", "org": "acme", "exp": 4_000_000_000, "iss": "fk"},
        "a-forged-secret-of-thirty-two-bytes!",
        algorithm="HS256",
    )
    secrets = {
        "jwt secret": jwt_secret,
        "secrets key": secrets_key,
        "request token": token,
        "forged token": forged,
        "llm key": llm_key,
        "default webhook secret": default_secret,
        "bot token": bot_token,
        "slack url": slack_path,
    }
    try:
        with PlatformProcess(tmp_path / "p", **env) as platform:
            platform.http.headers["Authorization"] = f"Bearer {token}"
            platform.start()
            http = platform.http
            assert (
                http.get("/campaigns", headers={"Authorization": f"Bearer {forged}"}).status_code
                == 401
            )
            created = http.post("/webhooks/endpoints", json={"url": "https://hooks.example.com/fk"})
            assert created.status_code == 201, created.text
            secrets["endpoint secret"] = created.json()["secret"]
            rotated = http.post(f"/webhooks/endpoints/{created.json()['id']}/rotate-secret")
            assert rotated.status_code == 200, rotated.text
            secrets["rotated secret"] = rotated.json()["secret"]
            campaign = http.post("/campaigns", json={"name": "Logged"})
            assert campaign.status_code == 201, campaign.text
            changed = http.patch(
                f"/campaigns/{campaign.json()['id']}",
                json={"status": "scheduled"},
                headers={"If-Match": '"1"'},
            )
            assert changed.status_code == 200, changed.text
            brief = http.post(
                "/generate-brief",
                json={
                    "brand": "Glowlab",
                    "product": "Serum",
                    "goal": "Awareness",
                    "platform": "instagram",
                    "audience": "Skincare fans",
                },
            )
            assert brief.status_code == 502, brief.text
            assert llm.requests, "the model was called with the key"
            # Default webhook, Slack and Telegram for two events each: all attempted and failed.
            await wait_until(lambda: _attempts(platform) >= 6, timeout=30, interval=0.2)
            assert platform.interrupt() == 0
            output = (platform.workdir / f"fk-up-{platform.starts}.log").read_text()
    finally:
        llm.stop()
    assert '"event": "llm.gave_up"' in output or '"event":"llm.gave_up"' in output, output[-2000:]
    found = [name for name, value in secrets.items() if value in output]
    assert not found, f"logged: {found}"


def test_settings_do_not_show_secrets_in_their_repr() -> None:
    """A settings object that ends up in a log line or a traceback shows no secret."""
    values = {
        "jwt_secret": "jwt-secret-value-0123456789abcdef",
        "secrets_key": "secrets-key-value-0123456789abcdef",
        "llm_api_key": "sk-llm-key-value",
        "clickhouse_password": "pw-clickhouse-value",
        "clickhouse_reader_password": "pw-reader-value",
        "webhook_default_secret": "whsec_default-value",
        "slack_webhook_url": "https://hooks.slack.com/services/T0/B0/slack-value",
        "telegram_bot_token": "123:telegram-value",
    }
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    text = repr(settings) + str(settings)
    assert [name for name, value in values.items() if value in text] == []
    assert "api_port=8000" in text, "the other settings still show"

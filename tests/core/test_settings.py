"""Settings: FK_* names, safe defaults, and refusal of placeholder secrets in production."""

import pytest
from pydantic import ValidationError

from core.settings import DEV_JWT_SECRET, Settings


def test_reads_the_contract_names_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FK_KAFKA_BOOTSTRAP", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("FK_CLICKHOUSE_URL", "http://clickhouse:8123")
    monkeypatch.setenv("FK_API_PORT", "9000")
    monkeypatch.setenv("FK_WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.bootstrap == "kafka-1:9092,kafka-2:9092"
    assert not settings.embedded_broker
    assert settings.store_url == "http://clickhouse:8123"
    assert settings.api_port == 9000


def test_embedded_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in ("FK_KAFKA_BOOTSTRAP", "FK_CLICKHOUSE_URL", "FK_API_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.embedded_broker
    assert settings.api_port == 8000
    assert settings.store_url.startswith("chdb:///")
    assert settings.engagement_topic == "engagement-events"


def test_production_refuses_the_placeholder_jwt_secret() -> None:
    with pytest.raises(ValidationError, match="FK_JWT_SECRET"):
        Settings(_env_file=None, env="prod", jwt_secret=DEV_JWT_SECRET)  # type: ignore[call-arg]
    assert Settings(_env_file=None, env="prod", jwt_secret="x" * 40).env == "prod"  # type: ignore[call-arg]

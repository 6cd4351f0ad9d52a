"""Settings: FK_* names, safe defaults, and refusal of weak or placeholder secrets."""

import pytest
from pydantic import ValidationError

from core.settings import (
    DEV_JWT_SECRET,
    DEV_SECRETS_KEY,
    MIN_JWT_SECRET_BYTES,
    MIN_SECRETS_KEY_BYTES,
    Settings,
)

SECRETS_KEY = "k" * 40
"""A secrets key outside dev, for the tests of the JWT secret (which is checked first)."""


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


@pytest.fixture(autouse=True)
def _no_auth_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FK_ENV", "FK_JWT_SECRET", "FK_SECRETS_KEY", "FK_DEV_TOKEN_TTL_HOURS"):
        monkeypatch.delenv(name, raising=False)


def test_production_refuses_the_placeholder_jwt_secret() -> None:
    with pytest.raises(ValidationError, match="FK_JWT_SECRET"):
        Settings(_env_file=None, env="prod", jwt_secret=DEV_JWT_SECRET)  # type: ignore[call-arg]
    prod = Settings(_env_file=None, env="prod", jwt_secret="x" * 40, secrets_key=SECRETS_KEY)  # type: ignore[call-arg]
    assert prod.env == "prod"


@pytest.mark.parametrize("env", ["test", "prod"])
def test_the_development_jwt_secret_is_refused_unless_env_is_dev(env: str) -> None:
    with pytest.raises(ValidationError, match="only FK_ENV=dev accepts"):
        Settings(_env_file=None, env=env)  # type: ignore[call-arg]
    # Out of the box (`fk up` from a fresh clone) the environment is dev, which accepts it.
    assert Settings(_env_file=None).jwt_secret == DEV_JWT_SECRET  # type: ignore[call-arg]


@pytest.mark.parametrize("env", ["dev", "test", "prod"])
def test_jwt_secrets_shorter_than_32_bytes_are_refused(env: str) -> None:
    assert MIN_JWT_SECRET_BYTES == 32
    for short in ("", "s" * 31, "\u00e9" * 15 + "x"):  # the last is 16 characters but 31 bytes
        with pytest.raises(ValidationError, match="shorter than 32 bytes"):
            Settings(_env_file=None, env=env, jwt_secret=short)  # type: ignore[call-arg]
    for enough in ("s" * 32, "\u00e9" * 16):
        settings = Settings(_env_file=None, env=env, jwt_secret=enough, secrets_key=SECRETS_KEY)  # type: ignore[call-arg]
        assert settings.jwt_secret == enough


@pytest.mark.parametrize("env", ["test", "prod"])
def test_the_development_secrets_key_is_refused_unless_env_is_dev(env: str) -> None:
    with pytest.raises(ValidationError, match="FK_SECRETS_KEY is the development key"):
        Settings(_env_file=None, env=env, jwt_secret="j" * 40)  # type: ignore[call-arg]
    assert Settings(_env_file=None).secrets_key == DEV_SECRETS_KEY  # type: ignore[call-arg]


@pytest.mark.parametrize("env", ["dev", "test", "prod"])
def test_secrets_keys_shorter_than_32_bytes_are_refused(env: str) -> None:
    assert MIN_SECRETS_KEY_BYTES == 32
    for short in ("", "k" * 31, "\u00e9" * 15 + "x"):
        with pytest.raises(ValidationError, match="FK_SECRETS_KEY is shorter than 32 bytes"):
            Settings(_env_file=None, env=env, jwt_secret="j" * 40, secrets_key=short)  # type: ignore[call-arg]
    settings = Settings(_env_file=None, env=env, jwt_secret="j" * 40, secrets_key="k" * 32)  # type: ignore[call-arg]
    assert settings.secrets_key == "k" * 32


def test_development_tokens_live_at_most_a_day(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).dev_token_ttl_hours <= 24  # type: ignore[call-arg]
    monkeypatch.setenv("FK_DEV_TOKEN_TTL_HOURS", "720")
    with pytest.raises(ValidationError, match="dev_token_ttl_hours"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_a_negative_number_of_llm_retries_is_refused_at_start() -> None:
    # The SDK would refuse it only at the first brief.
    with pytest.raises(ValidationError, match="llm_max_retries"):
        Settings(_env_file=None, llm_max_retries=-1)  # type: ignore[call-arg]
    assert Settings(_env_file=None, llm_max_retries=0).llm_max_retries == 0  # type: ignore[call-arg]

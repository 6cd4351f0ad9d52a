"""Every setting of the platform, read from `FK_*` environment variables or `.env`.

Nobody else reads `os.environ`: code takes a `Settings` (tests build their own) or calls
`get_settings()`.
"""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "dev-only-insecure-jwt-secret-change-me"
MIN_JWT_SECRET_BYTES = 32
DEV_SECRETS_KEY = "dev-only-insecure-secrets-key-change-me"
MIN_SECRETS_KEY_BYTES = 32


class Settings(BaseSettings):
    """Secret values (`repr=False`) never show in the settings' repr, so neither in a log line
    nor in a traceback that prints it."""

    model_config = SettingsConfigDict(
        env_prefix="FK_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    env: Literal["dev", "test", "prod"] = Field(
        default="dev",
        description=(
            "dev (the default, what `fk up` runs as) is the only environment that accepts the"
            " development JWT secret."
        ),
    )
    data_dir: Path = Field(default=Path("data"), description="Embedded-mode state (chDB).")
    log_format: Literal["console", "json"] = "console"
    log_level: str = "INFO"

    # Kafka
    kafka_bootstrap: str | None = Field(
        default=None, description="host:port list; unset in embedded mode = start the broker."
    )
    kafka_embedded_port: int = 19092
    embedded_broker_warn_mb: int = Field(
        default=2048,
        ge=0,
        description=(
            "Embedded broker: warn (log line, /readyz) once its resident memory exceeds this many"
            " MiB; it keeps every message in memory until `fk up` stops. 0 = never."
        ),
    )
    kafka_session_timeout_ms: int = Field(
        default=6000, description="Also bounds how long a group join takes on the embedded broker."
    )
    kafka_heartbeat_interval_ms: int = 1500
    kafka_replication_factor: int = Field(
        default=1,
        ge=1,
        description=(
            "Replicas of every topic `fk init` and `fk up` create (1 on the embedded broker;"
            " 3 on a production cluster). Existing topics are left as they are."
        ),
    )
    kafka_min_insync_replicas: int = Field(
        default=1,
        ge=1,
        description=(
            "`min.insync.replicas` of the topics created: with acks=all a write is acknowledged"
            " once this many replicas have it (2 with a replication factor of 3)."
        ),
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        description="How every producer, consumer and admin client talks to the brokers.",
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = Field(default=None, repr=False)
    kafka_ssl_ca_file: Path | None = Field(
        default=None,
        description="PEM file of the brokers' certificate authority; unset = the system's.",
    )
    kafka_ssl_cert_file: Path | None = Field(
        default=None, description="Client certificate (PEM) for brokers that require mutual TLS."
    )
    kafka_ssl_key_file: Path | None = Field(default=None, description="Its private key (PEM).")
    topic_prefix: str = Field(default="", description="Prepended to every topic name.")
    engagement_partitions: int = 4
    consumer_group: str = "fk-engagement"
    faust_app_id: str = "fk"

    # ClickHouse
    clickhouse_url: str | None = Field(
        default=None,
        description=(
            "chdb:///abs/path, http://host:8123 or, with TLS, https://host:8443 (also"
            " clickhouse+https://); default chDB in data_dir."
        ),
    )
    clickhouse_database: str = "fk"
    clickhouse_user: str = "default"
    clickhouse_password: str = Field(default="", repr=False)
    clickhouse_ca_file: Path | None = Field(
        default=None,
        description=(
            "https:// store URLs: PEM file of the server's certificate authority; unset = the"
            " system's."
        ),
    )
    clickhouse_verify: bool = Field(
        default=True, description="https:// store URLs: verify the server's certificate."
    )
    clickhouse_reader_user: str = Field(
        default="fk_reader",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$",
        description=(
            "The read-only ClickHouse user Grafana queries as; `fk init` creates it on a server"
            " (SELECT on the dashboards' tables, never a secret column). Not FK_CLICKHOUSE_USER."
        ),
    )
    clickhouse_reader_password: str = Field(
        default="",
        repr=False,
        description="Its password; empty = `fk init` provisions no reader.",
    )

    # Pipeline
    # Records per poll and rows per insert: a store insert has a fixed cost per part written
    # (measured: 20k-row inserts cost twice as much per row as 50k-row ones).
    sink_max_batch: int = 50_000
    sink_poll_timeout_ms: int = 100
    sink_min_insert_interval_ms: int = Field(
        default=200,
        ge=0,
        description="Under a steady stream, at least this long between the starts of two event"
        " inserts (each costs the store a part per table it feeds, whatever its size); an idle"
        " platform's first event is inserted at once.",
    )
    max_future_skew_seconds: int = 300
    default_org: str = Field(
        default="demo",
        min_length=1,
        max_length=100,
        description=(
            "The organisation of a Kafka message without an `fk-org` header, of `fk etl` loads"
            " and of events stored before events carried an organisation."
        ),
    )
    dedupe_window_days: int = Field(
        default=7,
        ge=1,
        description=(
            "The consumer keeps in memory the ids of this many days of event time (whole UTC"
            " days); an older event's id is checked against the store instead."
        ),
    )

    # API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    metrics_cache_ttl_seconds: float = Field(
        default=0.25, description="How long a metrics answer is served from memory as fresh."
    )
    metrics_cache_max_stale_seconds: float = Field(
        default=1.0,
        description="Past the TTL and up to this age an answer is still served while it reloads.",
    )
    max_events_per_request: int = 1000
    embedded_ack_after_store: bool = Field(
        default=True,
        description=(
            "Embedded platform: answer a write (POST /events, campaign commands) once its effects"
            " are stored, not just once the in-memory broker has it, so a kill -9 loses nothing"
            " that was acknowledged."
        ),
    )
    ack_store_timeout_seconds: float = Field(
        default=10.0, gt=0, description="How long such a write waits for the store (then 503)."
    )
    command_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How long a campaign command waits for the campaign agent's answer (then"
        " 503: the command may still be applied; a retry with its Idempotency-Key or If-Match"
        " is safe).",
    )
    command_fetch_wait_ms: int = Field(
        default=20,
        ge=1,
        le=500,
        description="How long the campaign agent's and the command clients' fetches wait for"
        " new messages (the embedded broker answers a fetch only when this ends; shorter waits"
        " answer commands sooner and cost the idle platform more CPU).",
    )
    top_performers_cache_ttl_seconds: float = Field(
        default=1.0, description="How long a scope's /top-performers scoring is served as fresh."
    )
    top_performers_cache_max_stale_seconds: float = Field(
        default=60.0, description="Up to this age a stale answer is served while it reloads."
    )
    top_performers_refresh_share: float = Field(
        default=0.25,
        gt=0,
        description="Share of one thread that re-scoring every top-performers scope read of late"
        " may take together while data keeps changing (each scope gets an equal turn).",
    )
    rate_limit_reads_per_minute: int = Field(
        default=12_000,
        ge=0,
        description=(
            "Authenticated reads (GET) per minute per token subject, in bursts of as many;"
            " 0 = no limit."
        ),
    )
    rate_limit_writes_per_minute: int = Field(
        default=600,
        ge=0,
        description="Writes (POST/PATCH/DELETE) per minute per token subject; 0 = no limit.",
    )
    rate_limit_events_per_minute: int = Field(
        default=60_000, ge=0, description="POST /events requests per minute per token subject."
    )
    rate_limit_briefs_per_minute: int = Field(
        default=120, ge=0, description="POST /generate-brief per minute per token subject."
    )

    # Batch ETL
    etl_max_upload_bytes: int = Field(
        default=200 * 1024 * 1024, description="Largest file POST /etl/uploads accepts (413)."
    )
    etl_max_reported_errors: int = Field(
        default=10_000, description="Errors listed in a load report (the rejected file has all)."
    )
    etl_max_waiting_uploads: int = Field(
        default=4,
        ge=0,
        description="Uploads that may wait while one loads (503 past it); one organisation holds"
        " at most half of the places, running one included (429 past it).",
    )
    etl_retention_days: float = Field(
        default=30,
        gt=0,
        description="Upload reports and rejected rows are removed this long after their load"
        " (swept at start and hourly; GET .../rejected answers 404 past it).",
    )
    etl_max_stored_mb_per_org: float = Field(
        default=500,
        gt=0,
        description="Reports and rejected rows kept per organisation; past it its oldest loads"
        " are removed first (the newest load is always kept).",
    )

    # Auth
    jwt_secret: str = Field(
        default=DEV_JWT_SECRET,
        repr=False,
        description=(
            f"HS256 key, at least {MIN_JWT_SECRET_BYTES} bytes; the default development secret is"
            " refused unless FK_ENV=dev."
        ),
    )
    jwt_issuer: str = "fk"
    secrets_key: str = Field(
        default=DEV_SECRETS_KEY,
        repr=False,
        description=(
            f"Seals webhook signing secrets in the store; at least {MIN_SECRETS_KEY_BYTES} bytes,"
            " the default development key is refused unless FK_ENV=dev. Changing it makes the"
            " stored secrets unreadable: their deliveries wait until the old key is back."
        ),
    )
    dev_token_ttl_hours: int = Field(
        default=12,
        ge=1,
        le=24,
        description=(
            "Lifetime of the token `fk up` prints (and of `fk token` without --ttl-hours);"
            " at most a day."
        ),
    )

    # Campaign orchestrator
    campaign_partitions: int = 4
    scheduler_interval_seconds: float = Field(
        default=1.0, description="How often due campaign transitions (start/end dates) are run."
    )

    # Webhooks (used by the orchestrator)
    webhook_allowed_hosts: str = Field(
        default="", description="Comma-separated hosts exempt from the private-address guard."
    )
    webhook_max_attempts: int = Field(default=3, ge=1, le=50)
    webhook_backoff_base_seconds: float = Field(
        default=1.0, description="Delay before the 2nd attempt; doubles per attempt, with jitter."
    )
    webhook_backoff_max_seconds: float = Field(
        default=6 * 3600.0, description="Cap on one retry delay (a multi-hour schedule is fine)."
    )
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    webhook_max_response_bytes: int = 64 * 1024
    webhook_max_endpoints_per_org: int = Field(
        default=20,
        ge=1,
        le=1000,
        description=(
            "Endpoints an organisation may register (enabled or not); the dispatcher loads at most"
            " this many per organisation, oldest first."
        ),
    )
    webhook_endpoint_concurrency: int = Field(
        default=8, ge=1, description="In-flight deliveries per endpoint (a slow one waits alone)."
    )
    webhook_org_concurrency: int = Field(
        default=32,
        ge=1,
        description=(
            "In-flight deliveries per organisation over all its endpoints: endpoints that never"
            " answer hold at most this many of the dispatcher's connections."
        ),
    )
    webhook_max_connections: int = Field(
        default=512,
        ge=1,
        description=(
            "In-flight deliveries (and open connections) per dispatcher; when all are taken,"
            " freed ones go to the organisations with waiting deliveries in turn."
        ),
    )
    webhook_max_replays_per_minute: int = Field(
        default=10,
        ge=0,
        description=(
            "Dead-letter replays (POST /webhooks/dlq/replay) per minute per organisation, in"
            " bursts of as many; each API replica counts its own. 0 = no limit."
        ),
    )
    webhook_sweep_seconds: float = Field(
        default=2.0, description="How often stored pending deliveries are checked for."
    )
    webhook_sweep_max_per_org: int = Field(
        default=1000,
        ge=1,
        description=(
            "Stored pending deliveries one sweep (and an assignment) loads per organisation, its"
            " soonest due; 10,000 in all, organisations in turn, so no organisation's backlog"
            " keeps another's deliveries waiting."
        ),
    )
    webhook_secret_grace_seconds: int = Field(
        default=24 * 3600, description="After a rotation the old secret also signs this long."
    )
    webhook_default_url: str | None = Field(
        default=None, description="An endpoint that receives every organisation's events."
    )
    webhook_default_secret: str | None = Field(
        default=None, description="whsec_... for it.", repr=False
    )
    slack_webhook_url: str | None = Field(
        default=None, description="Slack incoming-webhook URL for status updates.", repr=False
    )
    telegram_bot_token: str | None = Field(default=None, repr=False)
    telegram_chat_id: str | None = None
    telegram_api_base: str = "https://api.telegram.org"

    # LLM (used by the brief generator)
    llm_base_url: str | None = None
    llm_api_key: str | None = Field(default=None, repr=False)
    llm_model: str = "gpt-4o-mini"
    llm_timeout_seconds: float = Field(default=60.0, description="One model request, end to end.")
    llm_max_retries: int = Field(
        default=3,
        ge=0,
        description="The SDK's retries of a 408, 409, 429, 5xx, timeout or connection failure.",
    )
    llm_backoff_seconds: float = Field(
        default=0.5, description="First back-off; doubles per retry (with jitter)."
    )
    llm_backoff_max_seconds: float = Field(
        default=20.0, description="Longest single wait, also caps a server's Retry-After."
    )

    # Brief generator
    brief_cache_ttl_seconds: int = Field(
        default=24 * 3600, description="How long an identical brief request is answered from cache."
    )
    brief_max_turns: int = Field(
        default=8, description="Model requests per brief, repairs included."
    )
    brief_max_tool_calls: int = Field(default=12, description="Tool calls per brief.")
    brief_max_tokens: int = Field(
        default=60_000, description="Prompt + completion tokens per brief."
    )
    brief_deadline_seconds: float = Field(
        default=120.0,
        gt=0,
        le=3600,
        description=(
            "Overall time for one brief: model turns, retries and tool calls together; past it"
            " POST /generate-brief answers 504."
        ),
    )
    brief_embedder: Literal["auto", "lexical"] = Field(
        default="lexical",
        description=(
            "Similar briefs: lexical (word overlap, the default) or auto: the static embedding"
            " model of the opt-in `embeddings` extra when installed, else lexical."
        ),
    )

    @model_validator(mode="after")
    def _refuse_weak_secrets(self) -> "Settings":
        _refuse_weak(
            "FK_JWT_SECRET",
            "secret",
            self.jwt_secret,
            DEV_JWT_SECRET,
            MIN_JWT_SECRET_BYTES,
            self.env,
        )
        _refuse_weak(
            "FK_SECRETS_KEY",
            "key",
            self.secrets_key,
            DEV_SECRETS_KEY,
            MIN_SECRETS_KEY_BYTES,
            self.env,
        )
        return self

    @model_validator(mode="after")
    def _check_kafka_security(self) -> "Settings":
        if self.kafka_min_insync_replicas > self.kafka_replication_factor:
            raise ValueError(
                "FK_KAFKA_MIN_INSYNC_REPLICAS must not exceed FK_KAFKA_REPLICATION_FACTOR"
                " (no write with acks=all could ever succeed)"
            )
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"FK_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs"
                " FK_KAFKA_SASL_USERNAME and FK_KAFKA_SASL_PASSWORD"
            )
        if self.embedded_broker and (
            self.kafka_security_protocol != "PLAINTEXT" or self.kafka_replication_factor > 1
        ):
            raise ValueError(
                "the embedded broker (FK_KAFKA_BOOTSTRAP unset) is one plaintext node on"
                " 127.0.0.1: FK_KAFKA_SECURITY_PROTOCOL must be PLAINTEXT and"
                " FK_KAFKA_REPLICATION_FACTOR 1"
            )
        return self

    @property
    def embedded_broker(self) -> bool:
        return not self.kafka_bootstrap

    @property
    def bootstrap(self) -> str:
        """The broker address clients use (the embedded broker's when none is configured)."""
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_embedded_port}"

    @property
    def store_url(self) -> str:
        if self.clickhouse_url:
            return self.clickhouse_url
        return f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    @property
    def engagement_topic(self) -> str:
        return self.topic("engagement-events")

    @property
    def engagement_dlq_topic(self) -> str:
        return self.topic("engagement-events-dlq")

    @property
    def campaign_topic(self) -> str:
        return self.topic("campaign-events")

    @property
    def campaign_commands_topic(self) -> str:
        """Campaign commands, keyed by campaign id, to the agent that owns the campaign."""
        return self.topic("campaign-commands")

    @property
    def campaign_replies_topic(self) -> str:
        """The campaign agent's answers; every command client reads them all and keeps its own."""
        return self.topic("campaign-command-replies")

    @property
    def rollup_topic(self) -> str:
        """Per-minute engagement rollups per (organisation, campaign) and (organisation,
        creator), from the engagement consumer to the insights agent."""
        return self.topic("engagement-rollups")

    @property
    def webhook_commands_topic(self) -> str:
        return self.topic("webhook-commands")

    @property
    def webhook_dlq_topic(self) -> str:
        return self.topic("webhook-deliveries-dlq")

    @property
    def webhook_allowed(self) -> frozenset[str]:
        return frozenset(
            h.strip().lower() for h in self.webhook_allowed_hosts.split(",") if h.strip()
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def _refuse_weak(
    name: str, noun: str, value: str, development: str, min_bytes: int, env: str
) -> None:
    """A secret shorter than `min_bytes` is refused everywhere; the development one outside dev."""
    if len(value.encode()) < min_bytes:
        raise ValueError(
            f"{name} is shorter than {min_bytes} bytes; set a random one,"
            " e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
        )
    if env != "dev" and value == development:
        raise ValueError(
            f"{name} is the development {noun}, which only FK_ENV=dev accepts"
            f" (FK_ENV={env}); set a random one of at least {min_bytes} bytes"
        )

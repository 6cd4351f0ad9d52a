"""Real clusters: TLS and SASL settings reach every Kafka client the platform builds (aiokafka
producers, consumers and admin clients, and the Faust app's), topics get the configured
replication factor and min.insync.replicas, and an https:// store URL is verified as set."""

import ast
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import certifi
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

import core.clickhouse
import core.kafka
from api.main import create_app
from core.clickhouse import ServerTls, Store, StoreUnavailable, server_tls
from core.kafka import TopicSpec, client_security, ensure_topics
from core.ledger import CampaignLedger
from core.rollups import MinuteRollups
from core.settings import Settings
from streams.agents.campaigns import CampaignClock, CampaignConsumer
from streams.agents.commands import TABLE
from streams.agents.engagement import EngagementConsumer
from streams.agents.insights import InsightsDetector, RollupPublisher
from streams.agents.webhooks import Dispatcher
from streams.app import broker_credentials, create_faust_app
from streams.rebuild import rebuild
from streams.replay import Message, produce
from streams.topics import platform_topics
from tests.conftest import make_settings, topic_layout

REPO = Path(__file__).resolve().parents[2]
CLIENTS = {"AIOKafkaProducer", "AIOKafkaConsumer", "AIOKafkaAdminClient"}
PRODUCT = ["fk", "api", "core", "streams", "etl", "briefs", "insights", "scoring", "chaos"]


def cluster(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "kafka_bootstrap": "kafka-1:9093,kafka-2:9093",
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": "fk",
        "kafka_sasl_password": "s3cret",
        "kafka_ssl_ca_file": Path(certifi.where()),
        "kafka_replication_factor": 3,
        "kafka_min_insync_replicas": 2,
    }
    return make_settings(**(values | overrides))


def security_of(client: Any) -> tuple[str, str | None, str | None, bool]:
    c = client._client if hasattr(client, "_client") else client.client
    return (
        c._security_protocol,
        c._sasl_mechanism,
        c._sasl_plain_username,
        c._ssl_context is not None,
    )


async def test_clients_built_with_the_security_options_carry_them() -> None:
    settings = cluster()
    options = client_security(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, **options)
    consumer = AIOKafkaConsumer("t", bootstrap_servers=settings.bootstrap, **options)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap, **options)
    try:
        for client in (producer, consumer, admin):
            assert security_of(client) == ("SASL_SSL", "SCRAM-SHA-512", "fk", True)
    finally:
        await producer.stop()
        await consumer.stop()
        await admin.close()
    assert options["sasl_plain_password"] == "s3cret"
    assert options["ssl_context"].verify_mode.name == "CERT_REQUIRED"
    assert options["ssl_context"].check_hostname


async def test_plaintext_and_tls_only() -> None:
    assert client_security(make_settings()) == {"security_protocol": "PLAINTEXT"}
    tls = client_security(cluster(kafka_security_protocol="SSL"))
    assert set(tls) == {"security_protocol", "ssl_context"}
    assert tls["security_protocol"] == "SSL"


def test_the_faust_app_connects_like_every_other_client() -> None:
    for protocol in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
        settings = cluster(kafka_security_protocol=protocol)
        ours = client_security(settings)
        faust_side = dict(credentials_to_aiokafka_auth(broker_credentials(settings)))
        assert {k: v for k, v in faust_side.items() if v is not None and k != "ssl_context"} == {
            k: v for k, v in ours.items() if k != "ssl_context"
        }
        assert ("ssl_context" in ours) == (faust_side.get("ssl_context") is not None)
    app = create_faust_app(cluster(), store=None)  # type: ignore[arg-type]
    assert app.conf.broker_credentials is not None
    assert app.conf.broker_credentials.username == "fk"  # type: ignore[attr-defined]


def _calls_without_security(path: Path) -> list[str]:
    """Client constructions in `path` without `**client_security(...)` or `**(security ...)`,
    and Faust apps (a `broker=` argument) without `broker_credentials`."""
    tree = ast.parse(path.read_text())
    missing = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        splats = [k.value for k in node.keywords if k.arg is None]
        if name in CLIENTS:
            secured = any(
                "client_security" in ast.unparse(v) or "security" in ast.unparse(v) for v in splats
            )
        elif any(k.arg == "broker" for k in node.keywords):  # a Faust app
            secured = any(k.arg == "broker_credentials" for k in node.keywords)
        else:
            continue
        if not secured:
            missing.append(f"{path.relative_to(REPO)}:{node.lineno} {name}")
    return missing


def test_every_client_the_product_builds_takes_the_security_options() -> None:
    files = [
        f
        for entry in PRODUCT
        for f in ((REPO / entry).rglob("*.py") if (REPO / entry).is_dir() else [REPO / entry])
    ]
    missing = [m for f in files for m in _calls_without_security(f)]
    assert not missing, f"clients built without TLS/SASL options: {missing}"
    # The check finds what it looks for.
    assert _calls_without_security(REPO / "tests" / "conftest.py")


class RecordingAdmin:
    built: ClassVar[list[dict[str, Any]]] = []
    created: ClassVar[list[NewTopic]] = []

    def __init__(self, **options: Any) -> None:
        self.built.append(options)

    async def start(self) -> None:
        pass

    async def list_topics(self) -> list[str]:
        return []

    async def create_topics(self, topics: list[NewTopic]) -> None:
        self.created.extend(topics)

    async def close(self) -> None:
        pass


async def test_init_creates_replicated_topics_over_the_secured_admin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(core.kafka, "AIOKafkaAdminClient", RecordingAdmin)
    settings = cluster()
    await ensure_topics(
        settings.bootstrap, platform_topics(settings), security=client_security(settings)
    )
    (options,) = RecordingAdmin.built
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_plain_username"] == "fk"
    assert options["bootstrap_servers"] == "kafka-1:9093,kafka-2:9093"
    assert len(RecordingAdmin.created) == len(platform_topics(settings))
    for topic in RecordingAdmin.created:
        assert topic.replication_factor == 3
        assert topic.topic_configs["min.insync.replicas"] == "2"
    kept = {t.name: t.topic_configs.get("retention.ms") for t in RecordingAdmin.created}
    assert kept.pop(settings.campaign_topic) == "-1"  # `fk rebuild` replays it all
    assert set(kept.values()) == {None}  # the cluster's default


async def test_the_embedded_broker_takes_the_topic_settings(settings: Settings) -> None:
    """Replication 1, min.insync.replicas 1 (the defaults) and retention are accepted by Tansu."""
    await ensure_topics(
        settings.bootstrap, [TopicSpec(f"{settings.topic_prefix}r", 2, retention_ms=-1)]
    )


async def test_the_topics_faust_creates_are_replicated_as_the_platforms(
    settings: Settings, store: Store
) -> None:
    """The campaign table's changelog (and the assignor's leader topic) are created by Faust
    when the worker starts, not by `fk init`: they get the same replication factor and
    min.insync.replicas, read back from the embedded broker (which records what it is asked)."""
    app = create_faust_app(cluster(), store=None)  # type: ignore[arg-type]
    assert app.conf.topic_replication_factor == 3
    assert app.tables[TABLE].changelog_topic.config["min.insync.replicas"] == "2"

    app = create_faust_app(
        settings.model_copy(update={"kafka_replication_factor": 3, "kafka_min_insync_replicas": 2}),
        store,
    )
    changelog = app.tables[TABLE].changelog_topic
    try:
        await changelog.declare()
    finally:
        await app.producer.stop()
    ((name, (replicas, configs)),) = (
        await topic_layout(settings.bootstrap, [changelog.get_topic_name()])
    ).items()
    assert name.startswith(settings.faust_app_id)
    assert replicas == {3}
    assert configs["min.insync.replicas"] == "2"


@pytest.mark.parametrize(
    ("overrides", "refusal"),
    [
        ({"kafka_sasl_password": None}, "FK_KAFKA_SASL_PASSWORD"),
        ({"kafka_min_insync_replicas": 4}, "FK_KAFKA_MIN_INSYNC_REPLICAS"),
        ({"kafka_bootstrap": None}, "embedded broker"),
    ],
)
def test_inconsistent_cluster_settings_are_refused(overrides: dict[str, Any], refusal: str) -> None:
    with pytest.raises(ValueError, match=refusal):
        cluster(**overrides)


def test_https_store_urls_are_verified_as_set(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[dict[str, Any]] = []
    monkeypatch.setattr("clickhouse_connect.get_client", lambda **kw: built.append(kw))
    tls = server_tls(make_settings(clickhouse_ca_file=Path("/etc/fk/ca.pem")))
    assert tls == ServerTls("/etc/fk/ca.pem", True)
    core.clickhouse._connect("https://ch.example:8443", "fk", "fk", "pw", tls)
    core.clickhouse._connect("https://ch.example:8443", "fk", "fk", "pw", ServerTls(verify=False))
    core.clickhouse._connect("http://clickhouse:8123", "fk", "fk", "pw", tls)
    core.clickhouse._connect("clickhouse+https://ch.example:8443", "fk", "fk", "pw", tls)
    core.clickhouse._connect("clickhouses://ch.example", "fk", "fk", "pw", tls)
    # Port 8443 says TLS to the driver; the URL's scheme decides instead.
    core.clickhouse._connect("http://ch.example:8443", "fk", "fk", "pw", tls)
    https, unverified, plain, sqlalchemy_style, short, plain_8443 = built
    for secure in (https, sqlalchemy_style, short):
        assert secure["interface"] == "https"
        assert secure["secure"] is True
        assert secure["verify"] is True
        assert secure["ca_cert"] == "/etc/fk/ca.pem"
    assert unverified["verify"] is False
    assert "ca_cert" not in unverified
    for insecure in (plain, plain_8443):
        assert insecure["interface"] == "http"
        assert "secure" not in insecure
    with pytest.raises(StoreUnavailable, match="unknown scheme 'tcp'"):
        core.clickhouse._connect("tcp://ch.example:9000", "fk", "fk", "pw", tls)


def test_the_driver_reaches_an_https_store_over_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the driver makes of those options (it connects to nothing until queried)."""
    from clickhouse_connect.driver.httpclient import HttpClient

    seen: list[dict[str, Any]] = []

    def recording(self: Any, interface: str, host: str, port: int, *_: Any, **kw: Any) -> None:
        seen.append({"interface": interface, "port": port, **kw})
        raise StoreUnavailable("recorded")

    monkeypatch.setattr(HttpClient, "__init__", recording)
    for url in ("clickhouse+https://ch.example", "http://ch.example:8443"):
        with pytest.raises(StoreUnavailable):
            core.clickhouse._connect(url, "fk", "fk", "pw", ServerTls("/etc/fk/ca.pem"))
    tls, plain = seen
    assert (tls["interface"], tls["port"], tls["ca_cert"]) == ("https", 8443, "/etc/fk/ca.pem")
    assert (plain["interface"], plain["port"]) == ("http", 8443)


async def test_the_services_build_their_clients_with_the_security_options(
    settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every Kafka client the workers, the API, `fk init`, `fk replay` and `fk rebuild`
    construct, recorded as it is built through the product's own code; none connects (`start`
    refuses here)."""
    built: list[Any] = []

    class Refused(Exception):
        pass

    async def refuse(self: object) -> None:
        raise Refused

    for cls in (AIOKafkaProducer, AIOKafkaConsumer, AIOKafkaAdminClient):
        original = cls.__init__

        def recording(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> None:
            _original(self, *args, **kwargs)
            built.append(self)

        monkeypatch.setattr(cls, "__init__", recording)
        monkeypatch.setattr(cls, "start", refuse)
    secured = settings.model_copy(
        update={
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": "SCRAM-SHA-256",
            "kafka_sasl_username": "svc",
            "kafka_sasl_password": "pw",
        }
    )
    security = client_security(secured)
    dispatcher = Dispatcher(secured, store)
    app = create_app(secured, store=store)
    command_client = AIOKafkaProducer(bootstrap_servers=secured.bootstrap, **security)

    async def no_messages() -> AsyncIterator[Message]:
        return
        yield

    # What each builds: P a producer, C a consumer, A an admin client.
    starts = {
        "engagement consumer, dead-letter producer": (
            EngagementConsumer(secured, store).on_start(),
            "PC",
        ),
        "dispatcher producer, webhook-commands consumer": (dispatcher.on_start(), "PC"),
        "rollup publisher": (RollupPublisher(secured, MinuteRollups()).on_start(), "P"),
        "insight events producer": (InsightsDetector(secured, store).start(), "P"),
        "campaign projection": (CampaignConsumer(secured, store, dispatcher).on_start(), "C"),
        "campaign clock producer": (CampaignClock(secured, store, dispatcher).on_start(), "P"),
        "command client replies": (CampaignLedger(secured, store, command_client).start(), "C"),
        "fk replay": (
            produce(secured.bootstrap, secured.engagement_topic, no_messages(), security=security),
            "P",
        ),
        "fk rebuild": (rebuild(secured, store, timeout=1), "C"),
    }
    kind = {AIOKafkaProducer: "P", AIOKafkaConsumer: "C", AIOKafkaAdminClient: "A"}

    def built_since(before: int) -> str:
        return "".join(sorted(kind[type(client)] for client in built[before:]))

    try:
        for what, (starting, expected) in starts.items():
            before = len(built)
            with pytest.raises(Refused):
                await starting
            assert built_since(before) == "".join(sorted(expected)), what
        before = len(built)
        with pytest.raises(Refused):
            async with app.router.lifespan_context(app):  # the API's producer
                pass
        assert built_since(before) == "P"
        before = len(built)
        with pytest.raises(TimeoutError):  # `fk init` and `fk up`
            await ensure_topics(
                secured.bootstrap, platform_topics(secured), timeout=0, security=security
            )
        assert built_since(before) == "A"
        # The Faust app's producer and its worker consumer, as its transport builds them.
        faust_app = create_faust_app(secured, store)
        faust_clients = [
            faust_app.producer._new_producer(),
            faust_app.consumer._thread._create_worker_consumer(faust_app.transport),
        ]
        assert [type(c) for c in faust_clients] == [AIOKafkaProducer, AIOKafkaConsumer]
        for client in built + faust_clients:
            assert security_of(client) == ("SASL_SSL", "SCRAM-SHA-256", "svc", True)
    finally:
        for client in built:
            await (client.close() if isinstance(client, AIOKafkaAdminClient) else client.stop())
        if dispatcher.client is not None:
            await dispatcher.client.aclose()

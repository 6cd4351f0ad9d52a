"""End to end on the production images (testcontainers): Apache Kafka in KRaft mode and a
ClickHouse server, pinned as in docker-compose.yml, with `fk init`, `fk worker` and `fk api` run as
processes against them, and Grafana's queries sent as its read-only user. Skipped when no Docker
engine is reachable."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import clickhouse_connect
import httpx
import orjson
import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from core.auth import issue_token
from core.clickhouse import Store
from etl.loader import Outputs, load_file
from tests.conftest import free_port, wait_until
from tests.deploy.dashboards import expand_sql, queries
from tests.deploy.tools import COMPOSE_FILE
from tests.etl.test_loader_shapes import tricky_csv
from tests.factories import make_event
from tests.processes import REPO

pytestmark = [pytest.mark.docker, pytest.mark.slow]

COMPOSE = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
CLICKHOUSE_PASSWORD = "tc-secret"
READER_PASSWORD = "tc-reader-secret"
JWT_SECRET = "j" * 40
SECRETS_KEY = "k" * 40


def _image(service: str) -> str:
    image: str = COMPOSE[service]["image"]
    return image


def _unreachable(docker_host: str) -> str | None:
    """Why nothing answers at DOCKER_HOST, probed with a plain socket (docker-py leaks its socket
    when the connection fails, an unraisable ResourceWarning); None when something listens."""
    url = urlsplit(docker_host)
    try:
        if url.scheme == "unix":
            with socket.socket(socket.AF_UNIX) as probe:
                probe.settimeout(2)
                probe.connect(url.path)
        else:
            socket.create_connection((url.hostname or "localhost", url.port or 2375), 2).close()
    except OSError as exc:
        return f"{docker_host}: {exc.strerror or exc}"
    return None


@pytest.fixture(scope="module")
def engine() -> None:
    """Skip the module cleanly unless a Docker engine answers."""
    import docker
    from docker.errors import DockerException

    docker_host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    reason = _unreachable(docker_host)
    if reason:
        pytest.skip(f"no Docker engine reachable ({reason})")
    try:
        client = docker.from_env()  # asks the engine for its API version
    except DockerException as exc:
        pytest.skip(f"no Docker engine answers at {docker_host}: {type(exc).__name__}")
    try:
        client.ping()
    except (DockerException, OSError) as exc:
        pytest.skip(f"no Docker engine answers at {docker_host}: {type(exc).__name__}")
    finally:
        client.close()


@pytest.fixture(scope="module")
def kafka(engine: None) -> Iterator[tuple[Any, str]]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    port = free_port()  # advertised as is, so the host port must be known before the start
    container = (
        DockerContainer(_image("kafka"))
        .with_envs(
            CLUSTER_ID="nW3ahiStTPCdeevhB526-Q",
            KAFKA_NODE_ID="1",
            KAFKA_PROCESS_ROLES="broker,controller",
            KAFKA_CONTROLLER_QUORUM_VOTERS="1@localhost:9093",
            KAFKA_CONTROLLER_LISTENER_NAMES="CONTROLLER",
            KAFKA_LISTENERS="INTERNAL://:9092,CONTROLLER://:9093,HOST://:29092",
            KAFKA_ADVERTISED_LISTENERS=f"INTERNAL://localhost:9092,HOST://localhost:{port}",
            KAFKA_LISTENER_SECURITY_PROTOCOL_MAP=(
                "INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT,HOST:PLAINTEXT"
            ),
            KAFKA_INTER_BROKER_LISTENER_NAME="INTERNAL",
            KAFKA_AUTO_CREATE_TOPICS_ENABLE="false",
            KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR="1",
            KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR="1",
            KAFKA_TRANSACTION_STATE_LOG_MIN_ISR="1",
            KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS="0",
        )
        .with_bind_ports(29092, port)
        .waiting_for(LogMessageWaitStrategy("Kafka Server started").with_startup_timeout(180))
    )
    with container:
        yield container, f"localhost:{port}"


@pytest.fixture(scope="module")
def clickhouse(engine: None) -> Iterator[tuple[Any, str]]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import HttpWaitStrategy

    container = (
        DockerContainer(_image("clickhouse"))
        .with_envs(
            CLICKHOUSE_USER="fk",
            CLICKHOUSE_PASSWORD=CLICKHOUSE_PASSWORD,
            CLICKHOUSE_DEFAULT_ACCESS_MANAGEMENT="1",
        )
        .with_exposed_ports(8123)
        .waiting_for(HttpWaitStrategy(8123, "/ping").with_startup_timeout(180))
    )
    with container:
        host = container.get_container_host_ip()
        yield container, f"http://{host}:{container.get_exposed_port(8123)}"


@pytest.fixture
def env(kafka: tuple[Any, str], clickhouse: tuple[Any, str], tmp_path: Path) -> dict[str, str]:
    tag = uuid.uuid4().hex[:10]
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(REPO),
        "FK_ENV": "prod",
        "FK_JWT_SECRET": JWT_SECRET,
        "FK_SECRETS_KEY": SECRETS_KEY,
        "FK_KAFKA_BOOTSTRAP": kafka[1],
        "FK_CLICKHOUSE_URL": clickhouse[1],
        "FK_CLICKHOUSE_USER": "fk",
        "FK_CLICKHOUSE_PASSWORD": CLICKHOUSE_PASSWORD,
        "FK_CLICKHOUSE_DATABASE": f"tc_{tag}",
        "FK_CLICKHOUSE_READER_USER": f"reader_{tag}",
        "FK_CLICKHOUSE_READER_PASSWORD": READER_PASSWORD,
        "FK_TOPIC_PREFIX": f"tc{tag}-",
        "FK_CONSUMER_GROUP": f"g{tag}",
        "FK_FAUST_APP_ID": f"fk{tag}",
        "FK_KAFKA_SESSION_TIMEOUT_MS": "6000",
    }


def fk(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fk", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _healthcheck(service: str) -> list[str]:
    test: list[str] = COMPOSE[service]["healthcheck"]["test"]
    return ["sh", "-c", test[1]] if test[0] == "CMD-SHELL" else test[1:]


def test_the_compose_healthchecks_pass_on_the_real_images(
    kafka: tuple[Any, str], clickhouse: tuple[Any, str]
) -> None:
    for (container, _), service in ((kafka, "kafka"), (clickhouse, "clickhouse")):
        result = container.exec(_healthcheck(service))
        assert result.exit_code == 0, (service, result.output)


async def test_init_creates_topics_and_tables_on_kafka_and_clickhouse_servers(
    env: dict[str, str], tmp_path: Path
) -> None:
    env = {**env, "FK_ENGAGEMENT_PARTITIONS": "6"}
    result = fk(env, tmp_path, "init")
    assert result.returncode == 0, result.stderr
    consumer = AIOKafkaConsumer(bootstrap_servers=env["FK_KAFKA_BOOTSTRAP"])
    await consumer.start()
    try:
        await consumer.topics()
        topic = f"{env['FK_TOPIC_PREFIX']}engagement-events"
        assert consumer.partitions_for_topic(topic) == set(range(6))
    finally:
        await consumer.stop()
    client = clickhouse_connect.get_client(
        dsn=env["FK_CLICKHOUSE_URL"], username="fk", password=CLICKHOUSE_PASSWORD
    )
    try:
        rows = client.query(f"SHOW TABLES FROM {env['FK_CLICKHOUSE_DATABASE']}").result_rows
    finally:
        client.close()
    tables = {row[0] for row in rows}
    assert {"engagement_events", "campaigns", "schema_migrations"} <= tables
    assert "none pending" in fk(env, tmp_path, "init").stdout


def _as_grafana(env: dict[str, str], sql: str, password: str = READER_PASSWORD) -> httpx.Response:
    """A query as Grafana's ClickHouse data source sends it: over HTTP, as the reader, in the
    platform's database, with max_execution_time (the plugin's query timeout) set."""
    return httpx.post(
        env["FK_CLICKHOUSE_URL"],
        params={"database": env["FK_CLICKHOUSE_DATABASE"], "max_execution_time": "30"},
        headers={
            "X-ClickHouse-User": env["FK_CLICKHOUSE_READER_USER"],
            "X-ClickHouse-Key": password,
        },
        content=sql.encode(),
        timeout=30,
    )


def test_grafanas_reader_runs_every_dashboard_and_cannot_read_a_webhook_secret(
    env: dict[str, str], tmp_path: Path
) -> None:
    result = fk(env, tmp_path, "init")
    assert result.returncode == 0, result.stderr
    assert f"read-only user ready: {env['FK_CLICKHOUSE_READER_USER']}" in result.stdout
    platform = clickhouse_connect.get_client(
        dsn=env["FK_CLICKHOUSE_URL"],
        username="fk",
        password=CLICKHOUSE_PASSWORD,
        database=env["FK_CLICKHOUSE_DATABASE"],
    )
    try:
        platform.command(
            "INSERT INTO webhook_endpoints (id, org, url, secret, previous_secret)"
            " VALUES ('we_tc', 'acme', 'https://example.com/h', 'sealed-now', 'sealed-before')"
        )
    finally:
        platform.close()

    end = int(time.time()) + 60
    for query in queries("grafana-clickhouse-datasource"):
        answer = _as_grafana(env, expand_sql(query.text, start=end - 3600, end=end))
        assert answer.status_code == 200, (query.id, answer.text)

    refused = [
        "SELECT secret FROM webhook_endpoints",
        "SELECT previous_secret FROM webhook_endpoints",
        "SELECT * FROM webhook_endpoints",
        "INSERT INTO campaigns (id) VALUES ('cmp_reader')",
        "DROP TABLE engagement_events",
        f"ALTER USER {env['FK_CLICKHOUSE_READER_USER']} SETTINGS readonly = 0",
    ]
    for sql in refused:
        answer = _as_grafana(env, sql)
        assert answer.status_code != 200, sql
        assert "sealed-" not in answer.text, sql
    secret = _as_grafana(env, "SELECT secret FROM webhook_endpoints")
    assert "ACCESS_DENIED" in secret.text, secret.text

    # Idempotent, and a changed password takes effect on the next run.
    again = fk({**env, "FK_CLICKHOUSE_READER_PASSWORD": "tc-reader-rotated"}, tmp_path, "init")
    assert again.returncode == 0, again.stderr
    assert _as_grafana(env, "SELECT count() FROM campaigns").status_code != 200
    rotated = _as_grafana(env, "SELECT count() FROM campaigns", password="tc-reader-rotated")
    assert rotated.status_code == 200, rotated.text


def _metric(text: str, name: str, labels: str = "") -> float:
    pattern = re.compile(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", re.MULTILINE)
    match = pattern.search(text)
    return float(match.group(1)) if match else -1.0


async def test_events_flow_from_kafka_through_the_worker_into_clickhouse_and_the_api(
    env: dict[str, str], tmp_path: Path
) -> None:
    assert fk(env, tmp_path, "init").returncode == 0
    metrics_port, api_port = free_port(), free_port()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for name, args, extra in (
            (
                "worker",
                ["worker", "--metrics-port", str(metrics_port)],
                {"FK_API_HOST": "127.0.0.1"},
            ),
            ("api", ["api"], {"FK_API_PORT": str(api_port)}),
        ):
            with (tmp_path / f"{name}.log").open("wb") as log:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "fk", *args],
                        env={**env, **extra},
                        cwd=tmp_path,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )

        def worker_metrics() -> str:
            try:
                return httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).text
            except httpx.TransportError:
                return ""

        await wait_until(
            lambda: _metric(worker_metrics(), "fk_pipeline_assigned_partitions") > 0,
            timeout=120,
            interval=0.5,
        )
        now_ms = int(time.time() * 1000)
        events = [
            make_event(eventId=f"tc-{i}", campaignId="cmp_tc", timestamp=now_ms - 1000, views=10)
            for i in range(300)
        ]
        producer = AIOKafkaProducer(bootstrap_servers=env["FK_KAFKA_BOOTSTRAP"], acks="all")
        await producer.start()
        try:
            topic = f"{env['FK_TOPIC_PREFIX']}engagement-events"
            for event in [*events, *events[:50]]:  # 50 redeliveries
                await producer.send(topic, orjson.dumps(event), key=b"inf_a")
            await producer.send_and_wait(topic, b"not json")
        finally:
            await producer.stop()

        await wait_until(
            lambda: _metric(worker_metrics(), "fk_pipeline_events_stored_total") == 300,
            timeout=120,
            interval=0.5,
        )
        text = worker_metrics()
        assert _metric(text, "fk_pipeline_duplicates_total") == 50
        assert _metric(text, "fk_pipeline_dead_letters_total", '{reason="invalid_json"}') == 1

        token = issue_token(JWT_SECRET, org="acme")
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{api_port}", headers={"Authorization": f"Bearer {token}"}
        )

        def total() -> dict[str, Any] | None:
            try:
                response = api.get("/campaigns/cmp_tc/metrics")
            except httpx.TransportError:
                return None
            return response.json()["total"] if response.status_code == 200 else None

        body = await wait_until(total, timeout=120, interval=0.5)
        assert body["events"] == 300
        assert body["views"] == 3000
        api.close()
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def test_csv_loads_run_on_the_clickhouse_server_as_on_the_embedded_store(
    clickhouse: tuple[Any, str], store: Store, tmp_path: Path
) -> None:
    """The server parses the file sent as the body of one INSERT (`input()`): the same report,
    rejected rows and idempotency as the embedded store reading the file itself."""
    path = tmp_path / "performance.csv"
    path.write_text(tricky_csv(20_000))
    database = f"tc_{uuid.uuid4().hex[:10]}"
    server = Store.open(clickhouse[1], database, user="fk", password=CLICKHOUSE_PASSWORD)
    try:
        assert not server.embedded
        on_server = load_file(server, path, Outputs.beside(path, tmp_path / "server"), org="acme")
        embedded = load_file(store, path, Outputs.beside(path, tmp_path / "embedded"), org="acme")
        different = {"load_id", "seconds", "rejected_file"}
        assert on_server.model_dump(exclude=different) == embedded.model_dump(exclude=different)
        assert (tmp_path / "server" / "performance.rejected.csv").read_bytes() == (
            tmp_path / "embedded" / "performance.rejected.csv"
        ).read_bytes()
        again = load_file(server, path, Outputs.beside(path, tmp_path / "again"), org="acme")
        assert (again.inserted, again.duplicates) == (0, on_server.accepted)
        staging = (
            "SELECT count() FROM system.tables"
            " WHERE database = {db:String} AND startsWith(name, 'etl_stage_')"
        )
        assert server.query_rows_sync(staging, {"db": database}) == [(0,)]
    finally:
        server.command_sync(f"DROP DATABASE IF EXISTS `{database}`")
        server.close()

"""`fk init`, the one-shot service of the distributed deployment: topics, migrations and (on a
ClickHouse server only: tests/deploy/test_containers.py) the read-only user Grafana queries as."""

import os
import subprocess
import sys
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from core.clickhouse import MIGRATIONS_DIR, Store
from core.kafka import EmbeddedBroker
from core.settings import Settings
from fk.cli import initialise
from streams.topics import platform_topics
from tests.conftest import make_settings, topic_layout
from tests.processes import REPO


async def _partitions(bootstrap: str, topic: str) -> set[int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        await consumer.topics()  # refreshes the cluster metadata
        return set(consumer.partitions_for_topic(topic) or ())
    finally:
        await consumer.stop()


async def test_creates_topics_with_their_partitions_and_applies_migrations_once(
    settings: Settings, store: Store
) -> None:
    # A reader password set: the embedded store has no users, so it is skipped, not an error.
    settings = settings.model_copy(
        update={"engagement_partitions": 3, "clickhouse_reader_password": "r" * 32}
    )
    store.command_sync("DROP TABLE IF EXISTS schema_migrations")
    for table in ("engagement_events", "campaigns"):
        store.command_sync(f"DROP TABLE IF EXISTS {table}")

    topics, applied, reader = await initialise(settings)

    assert topics == [t.name for t in platform_topics(settings)]
    assert await _partitions(settings.bootstrap, settings.engagement_topic) == {0, 1, 2}
    assert await _partitions(settings.bootstrap, settings.engagement_dlq_topic) == {0}
    every_migration = sorted(p.name for p in MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql"))
    assert applied == every_migration
    tables = {row[0] for row in store.query_rows_sync("SHOW TABLES")}
    assert {"engagement_events", "campaigns", "schema_migrations"} <= tables
    assert reader is None

    again = await initialise(settings)
    assert again == (topics, [], None)


def _fk_init(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fk", "init", "--timeout", "5"],
        cwd=cwd,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_the_command_reports_what_it_did_and_is_idempotent(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    env = {
        "FK_KAFKA_BOOTSTRAP": broker.bootstrap,
        "FK_TOPIC_PREFIX": f"init-{tmp_path.name}-",
        "FK_CLICKHOUSE_URL": f"chdb://{tmp_path / 'store'}",
        # A real cluster's values: the embedded broker (one node) records the replication
        # factor it is asked for and reports it back, as it does min.insync.replicas.
        "FK_KAFKA_REPLICATION_FACTOR": "3",
        "FK_KAFKA_MIN_INSYNC_REPLICAS": "2",
    }
    first = _fk_init(env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"init-{tmp_path.name}-engagement-events" in first.stdout
    settings = make_settings(kafka_bootstrap=broker.bootstrap, topic_prefix=env["FK_TOPIC_PREFIX"])
    names = [t.name for t in platform_topics(settings)]
    layout = await topic_layout(broker.bootstrap, names)
    for name in names:
        replicas, configs = layout[name]
        assert replicas == {3}, name
        assert configs["min.insync.replicas"] == "2", name
    assert layout[settings.campaign_topic][1]["retention.ms"] == "-1"
    assert "retention.ms" not in layout[settings.engagement_topic][1]  # the cluster's default
    assert "0001_engagement_events.sql" in first.stdout
    assert "read-only user: none (the embedded store has no users)" in first.stdout
    second = _fk_init({**env, "FK_CLICKHOUSE_READER_PASSWORD": "r" * 32}, tmp_path)
    assert second.returncode == 0, second.stderr
    assert "migrations applied: none pending" in second.stdout
    assert "read-only user: none (the embedded store has no users)" in second.stdout


def test_refuses_a_reader_that_is_the_platforms_own_user(tmp_path: Path) -> None:
    result = _fk_init(
        {
            "FK_KAFKA_BOOTSTRAP": "127.0.0.1:9",
            "FK_CLICKHOUSE_URL": f"chdb://{tmp_path / 'store'}",
            "FK_CLICKHOUSE_USER": "fk",
            "FK_CLICKHOUSE_READER_USER": "fk",
            "FK_CLICKHOUSE_READER_PASSWORD": "r" * 32,
        },
        tmp_path,
    )
    assert result.returncode == 2
    assert "FK_CLICKHOUSE_READER_USER must not be FK_CLICKHOUSE_USER" in result.stderr
    assert "r" * 32 not in result.stderr


def test_refuses_to_run_without_a_kafka_cluster(tmp_path: Path) -> None:
    result = _fk_init({"FK_CLICKHOUSE_URL": f"chdb://{tmp_path / 'store'}"}, tmp_path)
    assert result.returncode == 2
    assert "FK_KAFKA_BOOTSTRAP" in result.stderr


def test_an_unreachable_broker_is_one_clear_line(tmp_path: Path) -> None:
    from tests.conftest import free_port

    result = _fk_init(
        {
            "FK_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
            "FK_CLICKHOUSE_URL": f"chdb://{tmp_path / 'store'}",
        },
        tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("fk: cannot start:")

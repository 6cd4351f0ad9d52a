"""Grafana: provisioned data sources with fixed uids, dashboards generated from grafana/build.py,
every panel bound to a provisioned data source, and every SQL panel run against chDB with the
real migrations (PromQL panels are run against a real Prometheus in test_prometheus.py)."""

import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from core.clickhouse import Store
from core.reader import (
    READER_TABLES,
    SECRET_COLUMNS,
    readable_columns,
    reader_grant,
    reader_user_statements,
    table_columns,
)
from streams.transforms import EVENT_COLUMNS
from tests.deploy.dashboards import Query, dashboards, datasources, expand_sql, panels, queries
from tests.deploy.tools import GRAFANA_DIR, REPO

CLICKHOUSE_PLUGIN = "grafana-clickhouse-datasource"
SQL_QUERIES = queries(CLICKHOUSE_PLUGIN)


def test_committed_dashboards_are_what_the_generator_writes() -> None:
    result = subprocess.run(
        [sys.executable, str(GRAFANA_DIR / "build.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_datasources_have_fixed_uids_for_prometheus_and_clickhouse() -> None:
    assert datasources() == {"fk-prometheus": "prometheus", "fk-clickhouse": CLICKHOUSE_PLUGIN}


def test_grafana_reads_clickhouse_as_the_read_only_user_and_knows_no_other() -> None:
    path = GRAFANA_DIR / "provisioning" / "datasources" / "datasources.yaml"
    clickhouse = next(
        s for s in yaml.safe_load(path.read_text())["datasources"] if s["uid"] == "fk-clickhouse"
    )
    assert clickhouse["jsonData"]["username"] == "$FK_CLICKHOUSE_READER_USER"
    assert clickhouse["secureJsonData"]["password"] == "$FK_CLICKHOUSE_READER_PASSWORD", "from env"
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    passed = {k for k in compose["grafana"]["environment"] if k.startswith("FK_")}
    assert passed == {
        "FK_CLICKHOUSE_DATABASE",
        "FK_CLICKHOUSE_READER_USER",
        "FK_CLICKHOUSE_READER_PASSWORD",
    }, "Grafana gets the reader's credentials only, never the platform's"
    assert "FK_CLICKHOUSE_READER_PASSWORD" in compose["init"]["environment"], "init creates it"
    assert compose["grafana"]["depends_on"]["init"] == {
        "condition": "service_completed_successfully"
    }


def test_dashboard_provider_points_where_compose_mounts_the_dashboards() -> None:
    provider = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yaml").read_text()
    )["providers"][0]
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts


def test_every_panel_uses_a_provisioned_datasource() -> None:
    uids = set(datasources())
    boards = dashboards()
    assert {"pipeline-health", "business"} <= set(boards)
    assert len({b["uid"] for b in boards.values()}) == len(boards)
    for name, board in boards.items():
        for item in panels(board):
            assert item["datasource"]["uid"] in uids, (name, item["title"])
            assert item["targets"], (name, item["title"])
            for target in item["targets"]:
                assert target["datasource"]["uid"] in uids, (name, item["title"])
            ids = [p["id"] for p in board["panels"]]
            assert len(ids) == len(set(ids))


def test_the_business_dashboard_covers_what_brands_ask_for() -> None:
    titles = " | ".join(p["title"] for p in panels(dashboards()["business"])).lower()
    for topic in ("per campaign", "top creators", "trending hashtags", "attempts by result"):
        assert topic in titles


def _seed(store: Store, now: datetime) -> None:
    rows: list[tuple[Any, ...]] = []
    for i in range(60):
        rows.append(
            (
                f"ev-{i}",
                now - timedelta(minutes=i),
                f"inf_{i % 4}",
                f"cmp_{i % 3}" if i % 5 else "",
                ("instagram", "tiktok", "youtube")[i % 3],
                f"post_{i}",
                100 + i,
                10,
                2,
                1,
                3,
                None if i % 2 else 5000,
                ["#Diwali", "festive"] if i % 2 else ["diwali"],
                "stream",
                i % 4,
                i,
                "acme",
            )
        )
    store.insert_sync("engagement_events", list(zip(*rows, strict=True)), EVENT_COLUMNS)
    store.insert_sync(
        "campaigns",
        [["cmp_0", "cmp_1"], ["acme", "acme"], ["A", "B"], ["", ""], ["active", "draft"],
         [1, 1], ["{}", "{}"], [now, now], [now, now]],
        ["id", "org", "name", "brand", "status", "version", "body", "created_at", "updated_at"],
    )  # fmt: skip


def test_there_are_sql_panels() -> None:
    assert len(SQL_QUERIES) >= 8


@pytest.mark.parametrize("query", SQL_QUERIES, ids=lambda q: q.id)
def test_sql_panel_runs_against_the_migrated_store(store: Store, query: Query) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    _seed(store, now)
    end = int(time.time()) + 60
    sql = expand_sql(query.text, start=end - 6 * 3600, end=end)
    rows = store.query_rows_sync(sql)
    assert rows, f"{query.id} returned nothing on seeded data"


def test_trending_hashtags_are_normalised(store: Store) -> None:
    _seed(store, datetime.now(UTC))
    query = next(q for q in SQL_QUERIES if q.panel == "Trending hashtags")
    end = int(time.time()) + 60
    rows = store.query_rows_sync(expand_sql(query.text, start=end - 3600 * 6, end=end))
    assert rows[0][0] == "diwali"
    assert rows[0][1] == 60, "'#Diwali' and 'diwali' are one hashtag"


# Table names after FROM or JOIN (not ARRAY JOIN, whose operand is a column).
_READ_TABLE = re.compile(r"(?<!ARRAY )\b(?:FROM|JOIN)\s+([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE)


def _tables_read(sql: str, tables: set[str]) -> set[str]:
    return {name for name in _READ_TABLE.findall(sql) if name in tables}


def test_the_reader_is_granted_every_column_of_every_table_the_dashboards_query(
    store: Store,
) -> None:
    tables = {row[0] for row in store.query_rows_sync("SHOW TABLES")}
    queried: set[str] = set()
    for query in SQL_QUERIES:
        queried |= _tables_read(query.text, tables)
    assert {"engagement_events", "campaigns"} <= queried, "the table finder finds the tables"
    assert queried <= set(READER_TABLES), f"dashboards read more: {sorted(queried)}"
    granted = {t: readable_columns(t, c) for t, c in table_columns(store, READER_TABLES).items()}
    statement = reader_grant("fk_reader", store.database, granted)
    for table in queried:
        every = store.query_rows_sync(
            "SELECT name FROM system.columns WHERE database = {d:String} AND table = {t:String}",
            {"d": store.database, "t": table},
        )
        assert {row[0] for row in every} <= set(_granted_columns(statement, table)), table


def _granted_columns(statement: str, table: str) -> list[str]:
    match = re.search(rf"SELECT\(([^)]*)\) ON `[^`]+`\.`{table}`", statement)
    return [c.strip().strip("`") for c in match.group(1).split(",")] if match else []


def test_the_reader_is_never_granted_a_secret_column_of_any_table(store: Store) -> None:
    every_table = sorted(row[0] for row in store.query_rows_sync("SHOW TABLES"))
    assert set(SECRET_COLUMNS) <= set(every_table)
    # Even a reader granted the whole database, table by table, gets no secret column.
    statement = reader_grant("fk_reader", store.database, table_columns(store, every_table))
    endpoints = _granted_columns(statement, "webhook_endpoints")
    assert "url" in endpoints
    assert not {"secret", "previous_secret"} & set(endpoints)
    for table, secret in SECRET_COLUMNS.items():
        assert not secret & set(_granted_columns(statement, table)), table
    # What `fk init` grants: the dashboards' tables, none of which holds a secret column.
    assert not set(READER_TABLES) & set(SECRET_COLUMNS)


def test_the_reader_statements_are_clickhouse_sql(store: Store) -> None:
    """The statements `fk init` sends, read by ClickHouse's own parser (chDB runs no access
    control, but its `formatQuery` parses them as a server would)."""
    columns = table_columns(store, READER_TABLES)
    statements = [
        *reader_user_statements("fk_reader", "a pass'word\\", store.database),
        reader_grant("fk_reader", store.database, columns),
    ]
    for statement in statements:
        formatted = store.query_rows_sync("SELECT formatQuery({q:String})", {"q": statement})
        assert formatted[0][0].split()[0] in ("CREATE", "ALTER", "GRANT"), formatted
    assert "pass" not in " ".join(statements), "only the password's hash is sent"
    assert "WITH REPLACE OPTION" in statements[-1], "a run takes back what is no longer granted"
    assert "readonly = 1" in statements[1]


def test_identifiers_that_are_not_plain_names_are_refused() -> None:
    with pytest.raises(ValueError, match="identifier"):
        reader_grant("fk_reader", "fk", {"engagement_events": ["views`, secret"]})
    with pytest.raises(ValueError, match="identifier"):
        reader_user_statements("reader` SETTINGS readonly = 0 --", "pw", "fk")
    with pytest.raises(ValueError, match="password"):
        reader_user_statements("fk_reader", "", "fk")
    with pytest.raises(ValueError, match="no readable column"):
        reader_grant("fk_reader", "fk", {"webhook_endpoints": ["secret", "previous_secret"]})

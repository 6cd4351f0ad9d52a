"""Grafana: provisioned data sources with fixed uids, dashboards generated from grafana/build.py,
every panel bound to a provisioned data source, and every SQL panel run against chDB with the
real migrations (PromQL panels are run against a real Prometheus in test_prometheus.py)."""

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from core.clickhouse import Store
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
    path = GRAFANA_DIR / "provisioning" / "datasources" / "datasources.yaml"
    clickhouse = next(
        s for s in yaml.safe_load(path.read_text())["datasources"] if s["uid"] == "fk-clickhouse"
    )
    assert clickhouse["secureJsonData"]["password"] == "$FK_CLICKHOUSE_PASSWORD", "from env"


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

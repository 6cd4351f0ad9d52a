"""Reading the provisioned Grafana files: data sources, dashboards, and their queries with
Grafana's macros expanded the way Grafana and the ClickHouse plugin expand them."""

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.tools import GRAFANA_DIR, PROMETHEUS_DIR


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    datasource_uid: str
    text: str

    @property
    def id(self) -> str:
        return f"{self.dashboard}:{self.panel}"


def datasources() -> dict[str, str]:
    """uid → plugin type of every provisioned data source."""
    found = {}
    for path in sorted((GRAFANA_DIR / "provisioning" / "datasources").glob("*.yaml")):
        for source in yaml.safe_load(path.read_text())["datasources"]:
            found[source["uid"]] = source["type"]
    return found


def dashboards() -> dict[str, dict[str, Any]]:
    return {
        path.stem: json.loads(path.read_text())
        for path in sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
    }


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for item in board["panels"]:
        out.append(item)
        out.extend(item.get("panels", []))  # panels inside a collapsed row
    return [p for p in out if p["type"] != "row"]


def queries(kind: str) -> list[Query]:
    """Every target of one data source type ("prometheus" or the ClickHouse plugin's)."""
    types = datasources()
    found = []
    for name, board in dashboards().items():
        for item in panels(board):
            for target in item["targets"]:
                uid = (target.get("datasource") or item["datasource"])["uid"]
                if types.get(uid) == kind:
                    text = target["expr"] if kind == "prometheus" else target["rawSql"]
                    found.append(Query(name, item["title"], uid, text))
    return found


def alert_expressions() -> list[Query]:
    rules = yaml.safe_load((PROMETHEUS_DIR / "rules.yml").read_text())
    return [
        Query("rules", rule["alert"], "prometheus", rule["expr"])
        for group in rules["groups"]
        for rule in group["rules"]
    ]


_PROMQL_VARIABLES = {"$__rate_interval": "1m", "$__interval": "30s", "$__range": "1h"}


def expand_promql(expr: str) -> str:
    for variable, value in _PROMQL_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unexpanded variable in {expr}"
    return expr


def expand_sql(sql: str, start: int, end: int, interval_seconds: int = 60) -> str:
    """The ClickHouse plugin's macros, for a time range of unix seconds [start, end]."""
    sql = re.sub(
        r"\$__timeFilter\(([^)]+)\)",
        rf"\1 >= toDateTime({start}) AND \1 <= toDateTime({end})",
        sql,
    )
    sql = re.sub(
        r"\$__timeInterval\(([^)]+)\)",
        rf"toStartOfInterval(toDateTime(\1), INTERVAL {interval_seconds} second)",
        sql,
    )
    sql = sql.replace("$__fromTime", f"toDateTime({start})").replace(
        "$__toTime", f"toDateTime({end})"
    )
    sql = sql.replace("$__interval_s", str(interval_seconds))
    assert "$" not in sql, f"unexpanded macro in {sql}"
    return sql


def referenced_metrics(expr: str) -> set[str]:
    names = set(re.findall(r"\bfk_[a-z0-9_]+", expr))
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


def prometheus_config(path: Path) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    return config

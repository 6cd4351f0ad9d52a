"""Dashboards as code: writes grafana/dashboards/*.json, which Grafana provisions from files.

    python grafana/build.py          # regenerate the JSON files
    python grafana/build.py --check  # exit 1 when a committed file differs (CI runs this)

Panels refer to data sources by the fixed uids of grafana/provisioning/datasources.
"""

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"

PROMETHEUS = {"type": "prometheus", "uid": "fk-prometheus"}
CLICKHOUSE = {"type": "grafana-clickhouse-datasource", "uid": "fk-clickhouse"}

# grafana-clickhouse-datasource query formats.
_CH_TIMESERIES = 0
_CH_TABLE = 1

Panel = dict[str, Any]


def prom(expr: str, legend: str = "", ref: str = "A") -> dict[str, Any]:
    return {"refId": ref, "datasource": PROMETHEUS, "expr": expr, "legendFormat": legend}


def sql(query: str, *, table: bool = False, ref: str = "A") -> dict[str, Any]:
    return {
        "refId": ref,
        "datasource": CLICKHOUSE,
        "editorType": "sql",
        "queryType": "table" if table else "timeseries",
        "format": _CH_TABLE if table else _CH_TIMESERIES,
        "rawSql": " ".join(query.split()),
    }


def panel(
    kind: str,
    title: str,
    targets: list[dict[str, Any]],
    *,
    unit: str = "short",
    width: int = 12,
    height: int = 8,
    description: str = "",
    options: dict[str, Any] | None = None,
) -> Panel:
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": targets[0]["datasource"],
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": options or {},
        "gridPos": {"w": width, "h": height},
    }


def row(title: str) -> Panel:
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "gridPos": {"w": 24}}


def _layout(panels: list[Panel]) -> Iterator[Panel]:
    """Give every panel an id and a position: left to right, wrapping at Grafana's 24 columns."""
    x = y = line_height = 0
    for number, item in enumerate(panels, start=1):
        grid = item["gridPos"]
        w, h = grid["w"], grid.get("h", 1)
        if item["type"] == "row" or x + w > 24:
            x, y, line_height = 0, y + line_height, 0
        yield {**item, "id": number, "gridPos": {"x": x, "y": y, "w": w, "h": h}}
        x += w
        line_height = max(line_height, h)
        if item["type"] == "row":
            x, y, line_height = 0, y + h, 0


def dashboard(uid: str, title: str, description: str, panels: list[Panel]) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["fk"],
        "timezone": "utc",
        "editable": False,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "links": [],
        "panels": list(_layout(panels)),
    }


RATE = "$__rate_interval"


def _quantiles(metric: str, by: str = "") -> list[dict[str, Any]]:
    group = f"le{', ' + by if by else ''}"
    legend_suffix = f" {{{{{by}}}}}" if by else ""
    return [
        prom(
            f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket[{RATE}])))",
            f"p{int(q * 100)}{legend_suffix}",
            ref,
        )
        for q, ref in ((0.5, "A"), (0.95, "B"), (0.99, "C"))
    ]


def pipeline_health() -> dict[str, Any]:
    panels: list[Panel] = [
        row("Pipeline: engagement-events → worker → ClickHouse"),
        panel("stat", "Targets up", [prom('sum(up{job=~"fk-.*"})')], width=6, height=4),
        panel(
            "stat",
            "Events in /s",
            [prom(f"sum(rate(fk_pipeline_events_in_total[{RATE}]))")],
            unit="ops",
            width=6,
            height=4,
        ),
        panel(
            "stat",
            "Consumer lag (messages)",
            [prom("sum(fk_pipeline_consumer_lag_messages)")],
            width=6,
            height=4,
        ),
        panel(
            "stat",
            "Freshness p95",
            [
                prom(
                    "histogram_quantile(0.95, sum by (le) "
                    f"(rate(fk_pipeline_freshness_seconds_bucket[{RATE}])))"
                )
            ],
            unit="s",
            width=6,
            height=4,
        ),
        panel(
            "timeseries",
            "Events in, stored, duplicates",
            [
                prom(f"sum(rate(fk_pipeline_events_in_total[{RATE}]))", "in", "A"),
                prom(f"sum(rate(fk_pipeline_events_stored_total[{RATE}]))", "stored", "B"),
                prom(f"sum(rate(fk_pipeline_duplicates_total[{RATE}]))", "duplicates", "C"),
            ],
            unit="ops",
        ),
        panel(
            "timeseries",
            "Dead letters by reason",
            [
                prom(
                    f"sum by (reason) (rate(fk_pipeline_dead_letters_total[{RATE}]))",
                    "{{reason}}",
                )
            ],
            unit="ops",
        ),
        panel(
            "timeseries",
            "Consumer lag per partition",
            [prom("max by (partition) (fk_pipeline_consumer_lag_messages)", "p{{partition}}")],
            description="High-water mark minus position; each partition is owned by one worker.",
        ),
        panel(
            "timeseries",
            "Partitions owned per worker",
            [prom('fk_pipeline_assigned_partitions{job="fk-worker"}', "{{instance}}")],
            description="After a rebalance every worker owns some; a worker with 0 is idle "
            "(more workers than partitions).",
        ),
        panel(
            "timeseries",
            "Freshness: broker timestamp → queryable",
            _quantiles("fk_pipeline_freshness_seconds"),
            unit="s",
        ),
        panel(
            "timeseries",
            "Sink insert latency",
            _quantiles("fk_sink_insert_seconds"),
            unit="s",
        ),
        panel(
            "timeseries",
            "Sink batch size (rows per insert)",
            [
                prom(
                    f"sum(rate(fk_sink_batch_rows_sum[{RATE}])) / "
                    f"sum(rate(fk_sink_batch_rows_count[{RATE}]))",
                    "mean",
                    "A",
                ),
                prom(
                    "histogram_quantile(0.95, sum by (le) "
                    f"(rate(fk_sink_batch_rows_bucket[{RATE}])))",
                    "p95",
                    "B",
                ),
            ],
        ),
        panel(
            "timeseries",
            "Sink failures (retried)",
            [prom(f"sum(increase(fk_sink_failures_total[{RATE}]))", "failures")],
        ),
        panel(
            "timeseries",
            "Rows stored per minute by source (ClickHouse)",
            [
                sql(
                    """
                    SELECT $__timeInterval(ingested_at) AS time, source, count() AS rows
                    FROM engagement_events
                    WHERE $__timeFilter(ingested_at)
                    GROUP BY time, source
                    ORDER BY time
                    LIMIT 10000
                    """
                )
            ],
            width=24,
            description="What actually landed in the store: stream vs batch loads.",
        ),
        row("API"),
        panel(
            "timeseries",
            "Requests by route",
            [
                prom(
                    f"sum by (route) (rate(fk_api_requests_total[{RATE}]))",
                    "{{route}}",
                )
            ],
            unit="reqps",
        ),
        panel(
            "timeseries",
            "Error ratio (5xx) by route",
            [
                prom(
                    'sum by (route) (rate(fk_api_requests_total{status=~"5.."}'
                    f"[{RATE}])) / sum by (route) (rate(fk_api_requests_total[{RATE}]))",
                    "{{route}}",
                )
            ],
            unit="percentunit",
        ),
        panel(
            "timeseries",
            "Latency p95 by route",
            [
                prom(
                    "histogram_quantile(0.95, sum by (le, route) "
                    f"(rate(fk_api_request_seconds_bucket[{RATE}])))",
                    "{{route}}",
                )
            ],
            unit="s",
        ),
        panel(
            "timeseries",
            "Metrics cache hit ratio",
            [
                prom(
                    f'sum(rate(fk_api_cache_total{{result="hit"}}[{RATE}])) / '
                    f"sum(rate(fk_api_cache_total[{RATE}]))",
                    "hit ratio",
                )
            ],
            unit="percentunit",
        ),
        row("LLM (briefs)"),
        panel(
            "timeseries",
            "LLM calls by outcome",
            [
                prom(
                    f"sum by (outcome) (rate(fk_llm_calls_total[{RATE}]))",
                    "{{outcome}}",
                )
            ],
            unit="ops",
            width=6,
        ),
        panel(
            "timeseries",
            "LLM tokens by kind",
            [prom(f"sum by (kind) (rate(fk_llm_tokens_total[{RATE}]))", "{{kind}}")],
            width=6,
        ),
        panel(
            "timeseries",
            "LLM latency",
            _quantiles("fk_llm_latency_seconds"),
            unit="s",
            width=6,
        ),
        panel(
            "timeseries",
            "LLM cache hit ratio",
            [
                prom(
                    f'sum(rate(fk_llm_cache_total{{result="hit"}}[{RATE}])) / '
                    f"sum(rate(fk_llm_cache_total[{RATE}]))",
                    "hit ratio",
                )
            ],
            unit="percentunit",
            width=6,
        ),
    ]
    return dashboard(
        "fk-pipeline-health",
        "Pipeline health",
        "Throughput, dead letters, lag, freshness and sink of the stream worker; API and LLM.",
        panels,
    )


_ENGAGEMENTS = "likes + comments + shares"


def business() -> dict[str, Any]:
    stat = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
    panels: list[Panel] = [
        row("Engagement"),
        panel(
            "stat",
            "Views",
            [
                sql(
                    "SELECT sum(views) AS total_views FROM engagement_events "
                    "WHERE $__timeFilter(event_time)",
                    table=True,
                )
            ],
            width=6,
            height=4,
            options=stat,
        ),
        panel(
            "stat",
            "Engagements",
            [
                sql(
                    f"SELECT sum({_ENGAGEMENTS}) AS total_engagements FROM engagement_events "
                    "WHERE $__timeFilter(event_time)",
                    table=True,
                )
            ],
            width=6,
            height=4,
            options=stat,
        ),
        panel(
            "stat",
            "Engagement rate",
            [
                sql(
                    f"SELECT if(sum(views) = 0, 0, sum({_ENGAGEMENTS}) / sum(views) * 100) "
                    "AS engagement_rate FROM engagement_events WHERE $__timeFilter(event_time)",
                    table=True,
                )
            ],
            unit="percent",
            width=6,
            height=4,
            options=stat,
            description="(likes + comments + shares) / views * 100, a ratio of sums.",
        ),
        panel(
            "stat",
            "Active creators",
            [
                sql(
                    "SELECT uniqExact(influencer_id) AS creators FROM engagement_events "
                    "WHERE $__timeFilter(event_time)",
                    table=True,
                )
            ],
            width=6,
            height=4,
            options=stat,
        ),
        panel(
            "timeseries",
            "Engagements over time per campaign (top 10 in range)",
            [
                sql(
                    f"""
                    SELECT $__timeInterval(event_time) AS time, campaign_id,
                           sum({_ENGAGEMENTS}) AS engagements
                    FROM engagement_events
                    WHERE $__timeFilter(event_time)
                      AND campaign_id IN (
                        SELECT campaign_id FROM engagement_events
                        WHERE $__timeFilter(event_time) AND campaign_id != ''
                        GROUP BY campaign_id
                        ORDER BY sum({_ENGAGEMENTS}) DESC
                        LIMIT 10)
                    GROUP BY time, campaign_id
                    ORDER BY time
                    LIMIT 20000
                    """
                )
            ],
            width=24,
            height=9,
        ),
        panel(
            "table",
            "Top creators",
            [
                sql(
                    f"""
                    SELECT influencer_id AS creator,
                           arrayStringConcat(groupUniqArray(3)(platform), ', ') AS platforms,
                           sum(views) AS total_views,
                           sum({_ENGAGEMENTS}) AS total_engagements,
                           round(if(total_views = 0, 0, total_engagements / total_views * 100), 2)
                             AS engagement_rate,
                           count() AS events
                    FROM engagement_events
                    WHERE $__timeFilter(event_time)
                    GROUP BY influencer_id
                    ORDER BY total_engagements DESC
                    LIMIT 20
                    """,
                    table=True,
                )
            ],
            height=10,
        ),
        panel(
            "table",
            "Trending hashtags",
            [
                sql(
                    f"""
                    SELECT lower(replaceRegexpOne(tag, '^#', '')) AS hashtag,
                           count() AS mentions,
                           countIf(toUnixTimestamp(event_time) >=
                             intDiv(toUnixTimestamp($__fromTime) + toUnixTimestamp($__toTime), 2))
                             AS recent_half,
                           round(recent_half / greatest(mentions - recent_half, 1), 2) AS momentum,
                           sum({_ENGAGEMENTS}) AS engagements
                    FROM engagement_events ARRAY JOIN hashtags AS tag
                    WHERE $__timeFilter(event_time) AND tag != ''
                    GROUP BY hashtag
                    ORDER BY recent_half DESC, mentions DESC
                    LIMIT 20
                    """,
                    table=True,
                )
            ],
            height=10,
            description="momentum = mentions in the second half of the range / in the first half.",
        ),
        panel(
            "timeseries",
            "Engagements by platform",
            [
                sql(
                    f"""
                    SELECT $__timeInterval(event_time) AS time, platform,
                           sum({_ENGAGEMENTS}) AS engagements
                    FROM engagement_events
                    WHERE $__timeFilter(event_time)
                    GROUP BY time, platform
                    ORDER BY time
                    LIMIT 10000
                    """
                )
            ],
        ),
        panel(
            "piechart",
            "Campaigns by status",
            [
                sql(
                    """
                    SELECT status, count() AS campaigns
                    FROM campaigns FINAL
                    GROUP BY status
                    ORDER BY campaigns DESC
                    LIMIT 20
                    """,
                    table=True,
                )
            ],
        ),
        row("Webhook delivery"),
        panel(
            "timeseries",
            "Delivery attempts by result",
            [
                prom(
                    f"sum by (status) (rate(fk_webhook_attempts_total[{RATE}]))",
                    "{{status}}",
                )
            ],
            unit="ops",
        ),
        panel(
            "stat",
            "Deliveries held (queued, in flight or waiting to retry)",
            [prom("sum(fk_webhook_deliveries_held)")],
            width=6,
        ),
        panel(
            "stat",
            "Dead-letter queue (awaiting replay)",
            [prom("sum(fk_webhook_dlq_size)")],
            width=6,
            description="Replay them with the /webhooks dead-letter endpoints.",
        ),
    ]
    return dashboard(
        "fk-business",
        "Campaigns and creators",
        "Engagement per campaign, top creators, trending hashtags and webhook delivery health.",
        panels,
    )


DASHBOARDS = {"pipeline-health.json": pipeline_health, "business.json": business}


def render(build: Any) -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when a file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for name, build in DASHBOARDS.items():
        path, text = OUT / name, render(build)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        sys.stderr.write(f"out of date (run python grafana/build.py): {', '.join(stale)}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

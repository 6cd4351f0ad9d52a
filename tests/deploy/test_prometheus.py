"""Prometheus: the compose config and alert rules pass promtool, and every PromQL expression of
the dashboards and rules is accepted by a real Prometheus (Debian's) scraping a running `fk up`."""

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import free_port
from tests.deploy.dashboards import (
    Query,
    alert_expressions,
    expand_promql,
    queries,
    referenced_metrics,
)
from tests.deploy.tools import PROMETHEUS_DIR, require_tool
from tests.processes import PlatformProcess

PROMQL = [*queries("prometheus"), *alert_expressions()]

# Labelled series appear only once something happened (a delivery attempt, a model call): these
# are defined in core/metrics.py but may be absent from a freshly started platform's /metrics.
ANNOUNCED = {
    "fk_webhook_attempts_total",
    "fk_llm_calls_total",
    "fk_llm_tokens_total",
    "fk_llm_latency_seconds",
    "fk_llm_cache_total",
}


def test_promtool_accepts_the_config_and_its_rules() -> None:
    promtool = require_tool("promtool")
    for args in (
        ["check", "config", str(PROMETHEUS_DIR / "prometheus.yml")],
        ["check", "rules", str(PROMETHEUS_DIR / "rules.yml")],
    ):
        result = subprocess.run(
            [promtool, *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_scrape_jobs_find_every_worker_and_api_replica() -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["fk-worker"]["dns_sd_configs"][0] == {
        "names": ["worker"],
        "type": "A",
        "port": 9100,
        "refresh_interval": "15s",
    }
    assert jobs["fk-api"]["dns_sd_configs"][0]["names"] == ["api"]


class NotReady(Exception):
    """Prometheus answered 503 (it does so, in plain text, until its TSDB is open)."""


class PrometheusAPI:
    """The query API of a Prometheus at `base_url`; `alive` says whether its process still runs."""

    def __init__(self, base_url: str, alive: Callable[[], bool] = lambda: True) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=10)
        self.alive = alive

    def query(self, expr: str) -> dict[str, object]:
        response = self.http.get("/api/v1/query", params={"query": expr})
        if response.status_code == 503:
            raise NotReady(response.text)
        try:
            body: dict[str, object] = response.json()
        except ValueError:
            raise AssertionError(
                f"prometheus answered {response.status_code} {response.text[:200]!r}"
            ) from None
        return body

    def wait_until(self, condition: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.alive(), "prometheus exited"
            try:
                body = self.query(condition)
                if body.get("status") == "success" and body["data"]["result"]:  # type: ignore[index]
                    return
            except (httpx.TransportError, NotReady):
                pass
            time.sleep(0.2)
        raise AssertionError(f"{condition} not true within {timeout}s")


class Prometheus(PrometheusAPI):
    def __init__(self, binary: str, workdir: Path, target: str) -> None:
        self.port = free_port()
        config = workdir / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "scrape_configs": [
                        {"job_name": "fk-api", "static_configs": [{"targets": [target]}]}
                    ],
                }
            )
        )
        self.log = (workdir / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        super().__init__(f"http://127.0.0.1:{self.port}", alive=lambda: self.process.poll() is None)

    def stop(self) -> None:
        self.http.close()
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.log.close()


def test_waiting_for_prometheus_outlasts_its_plain_text_503_while_it_starts() -> None:
    """Until its TSDB is open Prometheus answers 503 "Service Unavailable" as text, not JSON."""
    answers = [(503, b"Service Unavailable")] * 3 + [
        (200, b'{"status":"success","data":{"resultType":"vector","result":[{"value":[0,"1"]}]}}')
    ]
    seen: list[str] = []

    class Starting(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            status, body = answers[min(len(seen), len(answers)) - 1]
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Starting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    api = PrometheusAPI(f"http://127.0.0.1:{server.server_address[1]}")
    try:
        api.wait_until("up == 1", timeout=10)
        assert len(seen) == 4
        answers.append((500, b"oops"))
        seen.extend(["filler"] * 10)
        with pytest.raises(AssertionError, match="answered 500 'oops'"):
            api.query("up")
    finally:
        api.http.close()
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def scraping(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Prometheus, str]]:
    """A real Prometheus scraping a real `fk up` (embedded); yields it and the scraped text."""
    binary = require_tool("prometheus")
    workdir = tmp_path_factory.mktemp("prometheus")
    with PlatformProcess(workdir / "platform", FK_KAFKA_EMBEDDED_PORT=str(free_port())) as fk:
        fk.start("--demo")
        prometheus = Prometheus(binary, workdir, f"127.0.0.1:{fk.port}")
        try:
            prometheus.wait_until('up{job="fk-api"} == 1')
            prometheus.wait_until("fk_pipeline_events_in_total > 0")
            yield prometheus, fk.http.get("/metrics").text
        finally:
            prometheus.stop()


def test_there_are_promql_panels_and_rules() -> None:
    assert len(PROMQL) >= 25


@pytest.mark.slow
@pytest.mark.parametrize("query", PROMQL, ids=lambda q: q.id)
def test_promql_is_accepted_by_prometheus(scraping: tuple[Prometheus, str], query: Query) -> None:
    prometheus, _ = scraping
    expr = expand_promql(query.text)
    body = prometheus.query(expr)
    assert body["status"] == "success", body
    assert not body.get("warnings"), body


@pytest.mark.slow
def test_every_metric_a_panel_shows_is_exported_or_announced(
    scraping: tuple[Prometheus, str],
) -> None:
    _, exported_text = scraping
    exported = {
        line.split()[2] for line in exported_text.splitlines() if line.startswith("# TYPE ")
    }
    exported = {name.removesuffix("_total") for name in exported} | exported
    used = set().union(*(referenced_metrics(q.text) for q in PROMQL))
    unknown = sorted(n for n in used if n not in exported and n not in ANNOUNCED)
    assert not unknown, f"panels or rules use metrics nobody exports: {unknown}"


@pytest.mark.slow
def test_the_pipeline_panels_show_data_from_the_running_platform(
    scraping: tuple[Prometheus, str],
) -> None:
    prometheus, _ = scraping
    body = prometheus.query("sum(fk_pipeline_events_stored_total)")
    assert float(body["data"]["result"][0]["value"][1]) > 0  # type: ignore[index]

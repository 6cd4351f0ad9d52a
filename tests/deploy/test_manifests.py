"""Cloud Run and Render manifests: they run `fk` subcommands that exist, set only real settings,
take every secret from the platform's secret store, and size the worker by the partitions."""

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.main import create_app
from core.settings import Settings
from fk.cli import build_parser
from tests.conftest import make_settings
from tests.processes import REPO

CLOUDRUN = REPO / "deploy" / "cloudrun"
RENDER = REPO / "render.yaml"
SECRETS = {
    "FK_KAFKA_BOOTSTRAP",
    "FK_CLICKHOUSE_URL",
    "FK_CLICKHOUSE_USER",
    "FK_CLICKHOUSE_PASSWORD",
    "FK_JWT_SECRET",
    "FK_SECRETS_KEY",
    "FK_LLM_API_KEY",
}
SETTINGS = {f"FK_{name.upper()}" for name in Settings.model_fields}
# The unauthenticated routes a probe may call, as far as the app really serves them.
ROUTES = {"/healthz", "/readyz"} & set(create_app(make_settings()).openapi()["paths"])


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def subcommand(argv: list[str]) -> str:
    command: str = build_parser().parse_args(argv).command
    return command


def check_environment(env: dict[str, dict[str, Any]]) -> None:
    """`env`: name → its entry. Only settings; secrets never inline; prod needs the JWT secret."""
    fk = {name for name in env if name.startswith("FK_")}
    assert fk <= SETTINGS, f"not settings: {sorted(fk - SETTINGS)}"
    for name in fk & SECRETS:
        assert "value" not in env[name], f"{name} must come from the secret store"
    assert env["FK_ENV"]["value"] == "prod"
    assert {"FK_JWT_SECRET", "FK_SECRETS_KEY", "FK_KAFKA_BOOTSTRAP", "FK_CLICKHOUSE_URL"} <= fk


def cloudrun_container(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    service = load(CLOUDRUN / f"{name}.yaml")
    assert service["apiVersion"] == "serving.knative.dev/v1"
    assert service["kind"] == "Service"
    template = service["spec"]["template"]
    (container,) = template["spec"]["containers"]
    return template["metadata"]["annotations"], container


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container["env"]}


def test_cloudrun_api_serves_the_api_on_its_port_with_real_probes() -> None:
    annotations, container = cloudrun_container("api")
    assert subcommand(container["args"]) == "api"
    env = env_of(container)
    check_environment(env)
    port = container["ports"][0]["containerPort"]
    assert int(env["FK_API_PORT"]["value"]) == port
    assert env["FK_API_HOST"]["value"] == "0.0.0.0"
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] in ROUTES
        assert container[probe]["httpGet"]["port"] == port
    assert int(annotations["autoscaling.knative.dev/minScale"]) >= 1


def test_cloudrun_worker_has_always_on_cpu_and_a_fixed_count_within_the_partitions() -> None:
    annotations, container = cloudrun_container("worker")
    args = container["args"]
    assert subcommand(args) == "worker"
    env = env_of(container)
    check_environment(env)
    assert annotations["run.googleapis.com/cpu-throttling"] == "false"
    low = int(annotations["autoscaling.knative.dev/minScale"])
    high = int(annotations["autoscaling.knative.dev/maxScale"])
    assert 1 <= low == high <= int(env["FK_ENGAGEMENT_PARTITIONS"]["value"])
    metrics_port = int(args[args.index("--metrics-port") + 1])
    assert container["ports"][0]["containerPort"] == metrics_port
    assert container["startupProbe"]["httpGet"]["port"] == metrics_port


def test_cloudrun_init_job_runs_fk_init_with_the_workers_partitions() -> None:
    job = load(CLOUDRUN / "init-job.yaml")
    assert job["kind"] == "Job"
    (container,) = job["spec"]["template"]["spec"]["template"]["spec"]["containers"]
    assert subcommand(container["args"]) == "init"
    env = env_of(container)
    check_environment(env)
    _, worker = cloudrun_container("worker")
    partitions = env_of(worker)["FK_ENGAGEMENT_PARTITIONS"]["value"]
    assert env["FK_ENGAGEMENT_PARTITIONS"]["value"] == partitions


@pytest.fixture(scope="module")
def render() -> dict[str, Any]:
    return load(RENDER)


def render_env(blueprint: dict[str, Any], service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    groups = {g["name"]: g["envVars"] for g in blueprint.get("envVarGroups", [])}
    env: dict[str, dict[str, Any]] = {}
    for entry in service["envVars"]:
        for item in groups[entry["fromGroup"]] if "fromGroup" in entry else [entry]:
            env[item["key"]] = item
    return env


def test_render_runs_the_api_as_a_web_service_and_init_before_each_deploy(
    render: dict[str, Any],
) -> None:
    services = {s["name"]: s for s in render["services"]}
    api = services["fk-api"]
    assert api["type"] == "web"
    argv = shlex.split(api["dockerCommand"])
    assert argv[0] == "fk"
    assert subcommand(argv[1:]) == "api"
    pre = shlex.split(api["preDeployCommand"])
    assert subcommand(pre[1:]) == "init"
    assert api["healthCheckPath"] in ROUTES
    assert (REPO / api["dockerfilePath"]).is_file()
    env = render_env(render, api)
    check_environment(env)
    assert env["PORT"]["value"] == env["FK_API_PORT"]["value"]
    for name in SECRETS & set(env):
        assert env[name].get("sync") is False or env[name].get("generateValue") is True, name


def test_render_runs_the_worker_as_a_background_worker(render: dict[str, Any]) -> None:
    worker = next(s for s in render["services"] if s["name"] == "fk-worker")
    assert worker["type"] == "worker"
    argv = shlex.split(worker["dockerCommand"])
    assert subcommand(argv[1:]) == "worker"
    env = render_env(render, worker)
    check_environment(env)
    assert 1 <= worker["numInstances"] <= int(env["FK_ENGAGEMENT_PARTITIONS"]["value"])


TOPIC_SETTINGS = {
    "FK_ENGAGEMENT_PARTITIONS": "12",
    "FK_KAFKA_REPLICATION_FACTOR": "3",
    "FK_KAFKA_MIN_INSYNC_REPLICAS": "2",
    "FK_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
}


def test_every_process_that_may_create_topics_creates_them_alike(render: dict[str, Any]) -> None:
    """`fk init`, `fk api` and `fk worker` each create missing topics (and the worker Faust's
    own): whichever starts first, a managed cluster gets three replicas, acks=all waiting for
    two, over SASL_SSL, and the workers' partitions."""
    job = load(CLOUDRUN / "init-job.yaml")
    (init,) = job["spec"]["template"]["spec"]["template"]["spec"]["containers"]
    environments = {
        "cloudrun init": env_of(init),
        "cloudrun api": env_of(cloudrun_container("api")[1]),
        "cloudrun worker": env_of(cloudrun_container("worker")[1]),
        **{f"render {s['name']}": render_env(render, s) for s in render["services"]},
    }
    for where, env in environments.items():
        assert {name: env[name].get("value") for name in TOPIC_SETTINGS} == TOPIC_SETTINGS, where

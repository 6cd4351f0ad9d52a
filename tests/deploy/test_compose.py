"""docker-compose.yml: valid for Compose, and consistent with the code it runs: every command is an
`fk` subcommand, every variable is documented in .env.example and every FK_ one is a setting."""

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.settings import Settings
from fk.cli import build_parser
from tests.deploy.tools import COMPOSE_FILE, DOCKERFILE, ENV_EXAMPLE, docker_compose

# The secrets compose refuses to start without (`${VAR:?}`).
REQUIRED = {
    "FK_CLICKHOUSE_PASSWORD",
    "FK_CLICKHOUSE_READER_PASSWORD",
    "FK_JWT_SECRET",
    "FK_SECRETS_KEY",
    "GRAFANA_ADMIN_PASSWORD",
}
ONE_SHOT = {"init"}
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def example_variables() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def write_env(path: Path, **overrides: str) -> Path:
    values = {**example_variables(), **overrides}
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


def compose(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [docker_compose(), "-f", str(COMPOSE_FILE), "--env-file", str(env_file), *args],
        capture_output=True,
        text=True,
        timeout=120,
        # Only the env file may feed the interpolation, not the test runner's environment.
        env={"PATH": "/usr/bin:/bin"},
        check=False,
    )


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The compose file as Compose itself resolves it, with the required secrets set."""
    env = write_env(
        tmp_path_factory.mktemp("compose") / ".env",
        FK_CLICKHOUSE_PASSWORD="ch-secret",
        FK_CLICKHOUSE_READER_PASSWORD="reader-secret",
        FK_JWT_SECRET="j" * 40,
        FK_SECRETS_KEY="k" * 40,
        GRAFANA_ADMIN_PASSWORD="gf-secret",
    )
    check = compose(env, "config", "-q")
    assert check.returncode == 0, check.stderr
    result = compose(env, "config")
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def raw() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return config


def test_compose_validates_the_file(resolved: dict[str, Any]) -> None:
    assert {"kafka", "clickhouse", "init", "worker", "api", "prometheus", "grafana"} <= set(
        resolved["services"]
    )


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_refuses_to_start_without_each_required_secret(tmp_path: Path, missing: str) -> None:
    secrets = {
        "FK_CLICKHOUSE_PASSWORD": "c",
        "FK_CLICKHOUSE_READER_PASSWORD": "r",
        "FK_JWT_SECRET": "j" * 40,
        "FK_SECRETS_KEY": "k" * 40,
        "GRAFANA_ADMIN_PASSWORD": "g",
    }
    secrets[missing] = ""
    result = compose(write_env(tmp_path / ".env", **secrets), "config", "-q")
    assert result.returncode != 0
    assert missing in result.stderr


def test_the_example_env_leaves_the_required_secrets_to_the_operator(tmp_path: Path) -> None:
    example = example_variables()
    assert not example["FK_CLICKHOUSE_PASSWORD"]
    assert not example["FK_CLICKHOUSE_READER_PASSWORD"]
    assert not example["GRAFANA_ADMIN_PASSWORD"]
    result = compose(write_env(tmp_path / ".env"), "config", "-q")
    assert result.returncode != 0


def test_grafana_gets_the_readers_credentials_and_only_init_gets_them_too(
    resolved: dict[str, Any],
) -> None:
    services = resolved["services"]
    grafana = services["grafana"]["environment"]
    assert grafana["FK_CLICKHOUSE_READER_USER"] == "fk_reader"
    assert grafana["FK_CLICKHOUSE_READER_PASSWORD"] == "reader-secret"
    assert "ch-secret" not in grafana.values(), "never the platform's password"
    init = services["init"]["environment"]
    assert init["FK_CLICKHOUSE_READER_USER"] == "fk_reader"
    assert init["FK_CLICKHOUSE_READER_PASSWORD"] == "reader-secret"
    assert init["FK_CLICKHOUSE_PASSWORD"] == "ch-secret", "init still has the platform's settings"
    for name in ("worker", "api"):
        assert "reader-secret" not in services[name]["environment"].values(), name


def test_every_platform_command_is_an_fk_subcommand(resolved: dict[str, Any]) -> None:
    assert re.search(r'^ENTRYPOINT \["fk"\]$', DOCKERFILE.read_text(), re.MULTILINE)
    parser = build_parser()
    platform = {n: s for n, s in resolved["services"].items() if "build" in s}
    assert set(platform) == {"init", "worker", "api"}
    for name, service in platform.items():
        args = parser.parse_args(service["command"])
        assert args.command == name, (name, service["command"])


def test_every_variable_is_documented_and_every_fk_variable_is_a_setting() -> None:
    text = COMPOSE_FILE.read_text()
    used = {m.group(1) for m in _VARIABLE.finditer(text)}
    assert used, "expected ${VAR} references"
    documented = set(example_variables())
    assert used <= documented, f"not in .env.example: {sorted(used - documented)}"
    fields = {f"FK_{name.upper()}" for name in Settings.model_fields}
    environment_keys = {
        key
        for service in raw()["services"].values()
        for key in (service.get("environment") or {})
        if key.startswith("FK_")
    }
    fk_names = {n for n in used | documented | environment_keys if n.startswith("FK_")}
    assert fk_names <= fields, f"FK_ names that are no setting: {sorted(fk_names - fields)}"
    assert fields <= documented, (
        f"settings missing from .env.example: {sorted(fields - documented)}"
    )


def test_required_secrets_have_no_default_in_compose() -> None:
    text = COMPOSE_FILE.read_text()
    for match in _VARIABLE.finditer(text):
        name, operator = match.group(1), match.group(2)
        if name in REQUIRED:
            assert operator == ":?", f"{match.group(0)} must be ${{{name}:?...}}"
    assert "env_file" not in raw()["services"]["api"], "settings are passed explicitly"


def test_every_service_is_healthchecked_and_started_in_order(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service["restart"] == "no"
            continue
        check = service.get("healthcheck", {})
        assert check.get("test"), f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name} disables its healthcheck"
        for dependency, condition in (service.get("depends_on") or {}).items():
            want = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            assert condition == {"condition": want}, (name, dependency, condition)
    for name in ("worker", "api"):
        assert "init" in services[name]["depends_on"]


def test_images_are_pinned_and_state_is_in_named_volumes(resolved: dict[str, Any]) -> None:
    for name, service in resolved["services"].items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository, f"{name}: {image} has no tag"
        assert tag not in ("", "latest"), f"{name}: {image} is not pinned"
        for source, _, mode in map(_mount, service.get("volumes", [])):
            if source.startswith("/"):
                assert mode == "ro", f"{name}: bind mount {source} must be read-only"
            else:
                assert source in resolved["volumes"], f"{name}: {source} is no named volume"
    for name in ("kafka", "clickhouse", "prometheus", "grafana"):
        mounts = [_mount(v) for v in resolved["services"][name]["volumes"]]
        assert any(not source.startswith("/") for source, _, _ in mounts), name


def _mount(volume: str | dict[str, Any]) -> tuple[str, str, str]:
    """(source, target, mode) of a volume in the short syntax Compose 1.29 prints, or the long."""
    if isinstance(volume, dict):
        return volume["source"], volume["target"], "ro" if volume.get("read_only") else "rw"
    source, target, *mode = volume.split(":")
    return source, target, mode[0] if mode else "rw"


def test_the_worker_scales(resolved: dict[str, Any]) -> None:
    worker = resolved["services"]["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker, "fixed host ports would collide with --scale worker=N"


def test_no_sleep_anywhere() -> None:
    assert not re.search(r"\bsleep\b", COMPOSE_FILE.read_text())


def test_dockerfile_is_multi_stage_pinned_and_runs_as_a_user() -> None:
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base, "the base image is one pinned ARG"
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base.group(1))
    stages = re.findall(r"^FROM \S+ AS (\w+)$", text, re.MULTILINE)
    assert stages == ["builder", "runtime"]
    runtime = text.split("AS runtime", 1)[1]
    user = re.findall(r"^USER (\S+)$", runtime, re.MULTILINE)
    assert user, "the runtime sets its USER"
    assert not user[-1].startswith(("root", "0")), "the runtime runs as a non-root user"
    assert "constraints.txt" in text.split("AS runtime", 1)[0], "installs with the constraints"
    assert "COPY --from=builder" in runtime


def test_the_image_carries_every_package_the_project_installs() -> None:
    """Each top-level package of pyproject's `packages.find` is copied into the image and not
    excluded by .dockerignore (the API imports all of them at start-up)."""
    import tomllib

    repo = DOCKERFILE.parents[1]
    include = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    packages = sorted(p.rstrip("*") for p in include)
    dockerfile = DOCKERFILE.read_text()
    ignore = (repo / ".dockerignore").read_text().splitlines()
    for package in packages:
        assert f"COPY {package} {package}" in dockerfile, package
        assert f"!{package}/" in ignore, package

"""External tools the deployment checks run (docker-compose, prometheus, promtool).

CI installs them (`make deploy-tools`, called by .ci/run): there a missing tool is a failure. On a
developer machine without them the checks skip with the command that installs them.
"""

import os
import shutil
from pathlib import Path

import pytest

from tests.processes import REPO

COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
GRAFANA_DIR = REPO / "grafana"

_INSTALL_HINT = "run `make deploy-tools` (root: apt-get install prometheus; a docker-compose venv)"


def require_tool(name: str, *candidates: Path) -> str:
    """The path of a tool, from `candidates` first, then PATH; fail in CI, skip elsewhere."""
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail(f"{name} is not installed in CI: .ci/run must {_INSTALL_HINT}")
    pytest.skip(f"{name} is not installed: {_INSTALL_HINT}")


def docker_compose() -> str:
    return require_tool("docker-compose", REPO / ".venv-compose" / "bin" / "docker-compose")

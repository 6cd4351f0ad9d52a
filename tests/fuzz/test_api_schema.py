"""Schemathesis (its CLI, with tests/fuzz/schemathesis.toml and tests/fuzz/hooks.py) against the
live OpenAPI document of the embedded platform: `fk up` in a child process, the LLM faked on
127.0.0.1. Every operation with a valid token (examples, coverage, fuzzing, then stateful
sequences along the document's links) and without one. A fixed seed and budget keep it
reproducible; on a failure the output names each case with a curl line to replay it.

Checks: no 5xx; every error is problem details; status codes, content types, headers and bodies
are those the document declares; requests the document calls invalid are refused; operations that
need a token answer 401 without one."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.briefs.fake_llm import FakeLLM, well_behaved
from tests.conftest import JWT_SECRET, SECRETS_KEY, free_port
from tests.processes import REPO, PlatformProcess

pytestmark = pytest.mark.slow

CONFIG = Path(__file__).with_name("schemathesis.toml")
ST = Path(sys.executable).with_name("st")
# A closed local port: every webhook delivery attempt fails at once and never leaves the machine.
DEAD_END = f"http://127.0.0.1:{free_port()}/hook"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcess]:
    llm = FakeLLM(fallback=well_behaved)
    llm.start()
    env = {
        "FK_KAFKA_EMBEDDED_PORT": str(free_port()),
        "FK_ENV": "test",
        "FK_JWT_SECRET": JWT_SECRET,
        "FK_SECRETS_KEY": SECRETS_KEY,
        "FK_LLM_BASE_URL": llm.base_url,
        "FK_LLM_API_KEY": "test-key",
        "FK_LLM_MODEL": "fake-model",
        "FK_LLM_TIMEOUT_SECONDS": "5",
        "FK_LLM_MAX_RETRIES": "0",
        "FK_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        "FK_WEBHOOK_MAX_ATTEMPTS": "1",
    }
    try:
        with PlatformProcess(tmp_path_factory.mktemp("fuzz"), **env) as running:
            running.start()
            yield running
            assert running.process is not None
            assert running.process.poll() is None, running.log()
    finally:
        llm.stop()


def schemathesis_run(platform: PlatformProcess, tmp_path: Path, *args: str) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FK_")},
        "PYTHONPATH": str(REPO),
        "FUZZ_WEBHOOK_URL": DEAD_END,
    }
    command = [
        str(ST),
        "--config-file",
        str(CONFIG),
        "run",
        f"http://127.0.0.1:{platform.port}/openapi.json",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
        *args,
    ]
    result = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-20000:] + "\n--- platform log ---\n" + platform.log()


def test_every_operation_with_a_valid_token(platform: PlatformProcess, tmp_path: Path) -> None:
    schemathesis_run(platform, tmp_path, "--header", f"Authorization: Bearer {platform.token}")


def test_every_operation_without_a_token(platform: PlatformProcess, tmp_path: Path) -> None:
    schemathesis_run(
        platform,
        tmp_path,
        "--phases",
        "examples,coverage,fuzzing",
        "--generation-with-security-parameters",
        "false",
    )

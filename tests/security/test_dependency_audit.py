"""API8/API10 supply chain: `make audit` (.ci/audit.py) against a small fake index on 127.0.0.1
that serves only per-project JSON, like the network CI runs on: a known-vulnerable pin, a pin it
cannot audit (with `--strict`) and an unreachable index fail the run; clean pins pass."""

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port

SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "audit.py"
PROJECTS: dict[str, dict[str, Any]] = {
    "safe": {"info": {"version": "1.0"}, "vulnerabilities": []},
    "leaky": {
        "info": {"version": "2.0"},
        "vulnerabilities": [
            {"id": "PYSEC-2099-1", "fixed_in": ["2.0.1"], "withdrawn": None},
            {"id": "PYSEC-2099-2", "fixed_in": [], "withdrawn": "2099-01-01T00:00:00"},
        ],
    },
    "old": {"info": {"version": "9.0"}, "vulnerabilities": []},
}


class _Index(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        parts = self.path.strip("/").split("/")  # pypi/NAME/json; pypi/NAME/VERSION/json is 404
        project = PROJECTS.get(parts[1]) if len(parts) == 3 else None
        body = json.dumps(project).encode() if project else b""
        self.send_response(200 if project else 404)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def index() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Index)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def audit(
    tmp_path: Path, index: str, *pins: str, strict: bool = False
) -> subprocess.CompletedProcess[str]:
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("\n".join(pins) + "\n")
    flags = ["--strict"] if strict else []
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(constraints), "--index", index, "--timeout", "5", *flags],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_clean_latest_pins_pass(tmp_path: Path, index: str) -> None:
    result = audit(tmp_path, index, "safe==1.0")
    assert result.returncode == 0, result.stderr
    assert "1 of 1 pins audited" in result.stdout


def test_a_known_vulnerable_pin_fails(tmp_path: Path, index: str) -> None:
    result = audit(tmp_path, index, "safe==1.0", "leaky==2.0")
    assert result.returncode == 1
    assert "VULNERABLE: leaky==2.0: PYSEC-2099-1 (fixed in 2.0.1)" in result.stderr
    assert "PYSEC-2099-2" not in result.stderr, "withdrawn advisories do not count"


@pytest.mark.parametrize("pin", ["old==8.0", "missing==1.0"])
def test_a_pin_that_cannot_be_audited_is_named_and_fails_only_strict(
    tmp_path: Path, index: str, pin: str
) -> None:
    # By default a new upstream release (which makes a pin unauditable here) must not turn CI red.
    result = audit(tmp_path, index, "safe==1.0", pin)
    assert result.returncode == 0, result.stderr
    assert f"NOT AUDITED: {pin}" in result.stderr
    strict = audit(tmp_path, index, "safe==1.0", pin, strict=True)
    assert strict.returncode == 1
    assert f"NOT AUDITED: {pin}" in strict.stderr


def test_an_unreachable_index_fails_loudly(tmp_path: Path) -> None:
    result = audit(tmp_path, f"http://127.0.0.1:{free_port()}", "safe==1.0")
    assert result.returncode == 2
    assert "cannot read vulnerability data" in result.stderr
    assert "nothing was audited" in result.stderr


def test_a_loose_requirement_is_refused(tmp_path: Path, index: str) -> None:
    result = audit(tmp_path, index, "safe>=1.0")
    assert result.returncode != 0
    assert "not an exact pin" in result.stderr

"""`fk etl` and `fk generate` as a user runs them: straight into a store of its own when no
platform runs, and through the running platform's API (which owns the chDB path) when one does."""

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from core.auth import issue_token
from core.settings import DEV_JWT_SECRET
from tests.conftest import free_port
from tests.processes import REPO, PlatformProcess

SAMPLE = Path(__file__).parent / "performance.sample.csv"


def fk(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fk", *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=cwd,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(REPO),
            "FK_API_PORT": str(free_port()),
            **(env or {}),
        },
        check=False,
    )


def report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    body: dict[str, Any] = orjson.loads(result.stdout)
    return body


def test_generate_then_load_directly_twice(tmp_path: Path) -> None:
    sample = tmp_path / "performance.csv"
    assert (
        fk("generate", "2000", str(sample), "--invalid-rate", "0.02", cwd=tmp_path).returncode == 0
    )
    env = {"FK_DATA_DIR": str(tmp_path / "data")}
    first = report(fk("etl", str(sample), cwd=tmp_path, env=env))
    assert first["rows"] == 2000
    assert first["rejected"] > 0
    assert first["accepted"] + first["rejected"] == 2000
    assert first["inserted"] == first["accepted"]
    assert (tmp_path / "performance.report.json").exists()
    rejected = (tmp_path / "performance.rejected.csv").read_text().splitlines()
    assert len(rejected) == first["rejected"] + 1
    second = report(fk("etl", str(sample), cwd=tmp_path, env=env))
    assert (second["inserted"], second["duplicates"]) == (0, first["accepted"])


def test_refusals_exit_2_with_a_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("campaignId,influencerId\nc,i\n")
    env = {"FK_DATA_DIR": str(tmp_path / "data")}
    result = fk("etl", str(bad), cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "platform, views, likes, comments, shares" in result.stderr
    missing = fk("etl", str(tmp_path / "nope.csv"), cwd=tmp_path, env=env)
    assert (missing.returncode, "no such file" in missing.stderr) == (2, True)


@pytest.mark.slow
def test_load_goes_through_a_running_platform(tmp_path: Path) -> None:
    sample = tmp_path / SAMPLE.name
    sample.write_bytes(SAMPLE.read_bytes())
    with PlatformProcess(tmp_path / "platform") as platform:
        platform.start()
        out = tmp_path / "reports"
        out.mkdir()
        result = fk(
            "etl",
            str(sample),
            "--org",
            "acme",
            "--out",
            str(out),
            cwd=tmp_path,
            env={"FK_API_PORT": str(platform.port), "FK_DATA_DIR": str(tmp_path / "elsewhere")},
        )
        loaded = report(result)
        assert "through the running platform" in result.stderr
        assert (loaded["rows"], loaded["accepted"], loaded["rejected"]) == (6, 6, 0)
        assert (out / "performance.sample.report.json").exists()
        # The platform's own store has the rows: the CLI did not open a store of its own.
        assert not (tmp_path / "elsewhere").exists()
        acme = {"Authorization": f"Bearer {issue_token(DEV_JWT_SECRET, org='acme')}"}
        top = platform.http.get(
            "/top-performers", params={"campaignId": "cmp_diwali_24"}, headers=acme
        )
        assert top.status_code == 200, top.text
        assert {i["influencerId"] for i in top.json()["items"]} >= {"inf_aarav", "inf_meera"}


def test_generate_without_a_path_writes_under_the_data_directory(tmp_path: Path) -> None:
    assert fk("generate", "20", cwd=tmp_path).returncode == 0
    assert len((tmp_path / "data" / "performance.csv").read_text().splitlines()) == 21
    elsewhere = tmp_path / "elsewhere"
    assert fk("generate", "5", cwd=tmp_path, env={"FK_DATA_DIR": str(elsewhere)}).returncode == 0
    assert (elsewhere / "performance.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "elsewhere"]  # nothing in cwd

"""`fk` commands run as a user would run them."""

import asyncio
import gc
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from types import SimpleNamespace

import jwt
import orjson
import pytest
from fastapi import FastAPI

from core.auth import verify_token
from core.settings import DEV_JWT_SECRET, Settings
from fk.cli import _freeze_once_started
from streams.agents.engagement import EngagementConsumer
from tests.conftest import wait_until
from tests.factories import make_event
from tests.processes import REPO, PlatformProcess


def fk(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "fk", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd or REPO,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **(env or {})},
        check=True,
    )
    return result.stdout


def test_token_prints_just_a_verifiable_jwt_for_the_organisation(tmp_path: Path) -> None:
    out = fk("token", "--org", "brand-co", cwd=tmp_path)
    token = out.strip()
    assert "\n" not in token
    assert verify_token(DEV_JWT_SECRET, token).org == "brand-co"


def _replay_env(settings: Settings) -> dict[str, str]:
    return {"FK_KAFKA_BOOTSTRAP": settings.bootstrap, "FK_TOPIC_PREFIX": settings.topic_prefix}


async def test_replay_jsonl_and_csv_lands_events(
    settings: Settings, pipeline: EngagementConsumer, tmp_path: Path
) -> None:
    now = int(time.time() * 1000)
    jsonl = tmp_path / "events.jsonl"
    lines = [
        orjson.dumps(
            make_event(eventId=f"j{i}", campaignId="cmp_replay", views=10, timestamp=now - 1000)
        )
        for i in range(50)
    ]
    jsonl.write_bytes(b"\n".join([*lines, b"not json"]) + b"\n")
    csv = tmp_path / "performance.csv"
    posted = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    csv.write_text(
        "\ufeffcampaign_id,influencer_id,platform,post_id,posted_at,views,likes,comments,shares\r\n"
        f"cmp_replay,inf_x,tiktok,tt_1,{posted},100,9,1,0\r\n"
    )
    out = fk("replay", str(jsonl), "--rate", "500", env=_replay_env(settings), cwd=tmp_path)
    assert "sent 51 messages" in out
    fk("replay", str(csv), env=_replay_env(settings), cwd=tmp_path)
    fk("replay", str(csv), env=_replay_env(settings), cwd=tmp_path)  # same row again: counted once

    async def landed() -> bool:
        rows = await pipeline.sink.store.query_rows(
            "SELECT count(), sum(views) FROM engagement_events WHERE campaign_id = 'cmp_replay'"
        )
        return rows[0] == (51, 600)

    await wait_until(landed, timeout=30)


def test_replay_refuses_a_missing_file(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fk", "replay", str(tmp_path / "nope.jsonl")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO)},
        check=False,
    )
    assert result.returncode == 2
    assert "no such file" in result.stderr


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"FK_JWT_SECRET": "short-but-secret"}, "FK_JWT_SECRET is shorter than 32 bytes"),
        ({"FK_ENV": "test"}, "FK_JWT_SECRET is the development secret, which only FK_ENV=dev"),
        ({"FK_ENV": "prod"}, "FK_JWT_SECRET is the development secret, which only FK_ENV=dev"),
        (
            {"FK_ENV": "prod", "FK_JWT_SECRET": "j" * 40},
            "FK_SECRETS_KEY is the development key, which only FK_ENV=dev",
        ),
        ({"FK_SECRETS_KEY": "short-but-secret"}, "FK_SECRETS_KEY is shorter than 32 bytes"),
    ],
)
def test_up_refuses_to_start_with_a_weak_jwt_secret(
    env: dict[str, str], reason: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fk", "up"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **env},
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert reason in result.stderr
    assert "Traceback" not in result.stderr
    assert "short-but-secret" not in result.stderr
    assert not (tmp_path / "data").exists()  # refused before anything started


def _banner(platform: PlatformProcess) -> str:
    """`fk up`'s banner, once printed (it waits for `/readyz`, so it may follow readiness)."""
    deadline = time.monotonic() + 30
    while "Try it" not in platform.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    return (platform.workdir / f"fk-up-{platform.starts}.log").read_text()


def test_up_from_a_fresh_checkout_prints_a_token_that_expires_within_a_day(
    demo_platform: PlatformProcess,
) -> None:
    log = _banner(demo_platform)
    printed = re.search(r"^Token +(\S+)$", log, re.M)
    assert printed is not None, log
    token = printed[1]
    assert demo_platform.http.get(
        "/campaigns/cmp_diwali_24/metrics", headers={"Authorization": f"Bearer {token}"}
    ).status_code in (200, 404)
    claims = jwt.decode(token, DEV_JWT_SECRET, algorithms=["HS256"], issuer="fk")
    assert claims["org"] == "demo"
    assert 0 < claims["exp"] - claims["iat"] <= 24 * 3600
    assert claims["exp"] <= time.time() + 24 * 3600


def test_up_prints_where_it_listens_once_ready_and_lines_that_work_when_pasted(
    demo_platform: PlatformProcess,
) -> None:
    log = _banner(demo_platform)
    base = f"http://127.0.0.1:{demo_platform.port}"
    # The API line comes only once the API answers: after the log line that says it started.
    assert log.index("api.started") < log.index(f"API      {base}"), log
    kafka = demo_platform.env["FK_KAFKA_EMBEDDED_PORT"]
    assert re.search(rf"^Kafka +127\.0\.0\.1:{kafka} \(embedded\)$", log, re.M), log
    assert re.search(r"^Store +chdb://", log, re.M), log
    pasted = [line.strip() for line in log.split("Try it", 1)[1].splitlines()[1:] if line.strip()]
    assert pasted[0].startswith("export TOKEN=")
    assert (
        pasted[1]
        == f'curl -H "Authorization: Bearer $TOKEN" {base}/campaigns/cmp_diwali_24/metrics'
    )
    result = subprocess.run(
        ["bash", "-euc", "\n".join(pasted[:2])], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout)["total"]["events"] > 0


def test_the_platform_runs_on_uvloop() -> None:
    """The platform's single event loop serves HTTP, Kafka and the store's threads: it runs on
    uvloop, installed with uvicorn[standard] (the standard loop spent a sixth of its time in
    socket writes under the mix)."""
    import uvloop

    from fk.cli import _loop_factory

    factory = _loop_factory()
    assert factory is not None
    loop = factory()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_the_command_line_is_the_fk_package_and_no_top_level_cli_module() -> None:
    """The console script and `python -m fk` run `fk.cli.main`; the distribution installs its
    packages only, no top-level module `cli` (a name any other distribution could claim)."""
    from setuptools import find_packages

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"] == {"fk": "fk.cli:main"}
    setuptools = pyproject["tool"]["setuptools"]
    assert "py-modules" not in setuptools
    installed = find_packages(REPO, include=setuptools["packages"]["find"]["include"])
    assert "fk" in installed
    assert "cli" not in {name.split(".")[0] for name in installed}
    assert not (REPO / "cli.py").exists()
    out = fk("--help")
    assert out.startswith("usage: fk ")
    commands = ("up", "init", "worker", "api", "replay", "etl", "rebuild", "generate", "token")
    for command in commands:
        assert re.search(rf"^\s+{command}\s", out, re.MULTILINE), command


async def test_fk_up_freezes_what_the_starts_scoring_of_rankings_left_alive() -> None:
    """`fk up` exempts the objects alive once started from garbage collection, and again
    those its start's scoring of rankings left (at 10M events ~640,000, which a full collection
    walked for 0.4-0.8 s)."""
    release = asyncio.Event()
    kept: list[list[int]] = []

    async def scoring() -> None:
        await release.wait()
        kept.extend([n] for n in range(1_000))  # what a scoring leaves alive

    api = FastAPI()
    api.state.warming = asyncio.create_task(scoring())
    server = SimpleNamespace(started=True)
    frozen = asyncio.create_task(_freeze_once_started(server, api))  # type: ignore[arg-type]
    try:
        await wait_until(lambda: gc.get_freeze_count() > 0, timeout=5)
        first = gc.get_freeze_count()
        release.set()
        await asyncio.wait_for(frozen, 5)
        assert gc.get_freeze_count() >= first + len(kept)
    finally:
        frozen.cancel()
        gc.unfreeze()

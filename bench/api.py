"""API read latency under load: `GET /campaigns/{id}/metrics` on 1M events / 10k campaigns beside
`GET /healthz` (the floor of a FastAPI route on this machine), both at 500 requests/s from 50
clients with Debian's `hey`, alternated, in the same run; and the first request after a restart."""

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench import seed
from bench.common import environment, free_port, have_hey, median, platform_env
from core.auth import issue_token
from core.settings import DEV_JWT_SECRET

REPO = Path(__file__).resolve().parents[1]


def hey(url: str, token: str | None, seconds: int) -> dict[str, float]:
    args = ["hey", "-z", f"{seconds}s", "-c", "50", "-q", "10"]
    if token:
        args += ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    p99 = re.search(r"99%% in ([\d.]+) secs".replace("%%", "%"), out)
    p50 = re.search(r"50% in ([\d.]+) secs", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    codes = dict(re.findall(r"\[(\d{3})\]\s+(\d+) responses", out))
    if not (p99 and p50 and rps):
        raise RuntimeError(f"unexpected hey output:\n{out}")
    if set(codes) != {"200"}:
        raise RuntimeError(f"non-200 answers under load: {codes}")
    return {
        "p50_ms": float(p50.group(1)) * 1000,
        "p99_ms": float(p99.group(1)) * 1000,
        "rps": float(rps.group(1)),
    }


class Platform:
    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir, self.env = workdir, env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self.workdir / "fk.log").open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "fk", "up"],
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(2)
            self.process.wait(60)


def wait_ready(base: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise TimeoutError("platform not ready")


@contextmanager
def seeded_platform(
    events: int, campaigns: int, posts: int = 0, ready_timeout: float = 120
) -> Iterator[tuple[str, float]]:
    """`fk up` (worker, API and chDB in one process, on a benchmark broker) on a store seeded with
    `events` events over `campaigns` campaigns (`posts` per creator, see `bench.seed`); yields its
    base URL and the seconds it took to answer `/readyz`, and stops it afterwards."""
    with environment() as (bootstrap, tmp):
        port = free_port()
        env = platform_env(
            bootstrap,
            tmp / "data",
            port,
            FK_DEFAULT_ORG=seed.ORG,
            # One token stands for every client of the load generator.
            FK_RATE_LIMIT_READS_PER_MINUTE="0",
        )
        url = f"chdb://{(tmp / 'data' / 'clickhouse').resolve()}"
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "bench.seed", url, "fk", str(events), str(campaigns)]
            + ([str(posts)] if posts else []),
            check=True,
            env=env,
            cwd=REPO,
        )
        print(
            f"  seeded {events:,} events over {campaigns:,} campaigns in "
            f"{time.perf_counter() - started:.1f}s",
            flush=True,
        )
        base = f"http://127.0.0.1:{port}"
        platform = Platform(tmp, env)
        started = time.perf_counter()
        platform.start()
        try:
            wait_ready(base, ready_timeout)
            yield base, time.perf_counter() - started
        finally:
            platform.stop()


def run(
    events: int = 1_000_000,
    campaigns: int = 10_000,
    seconds: int = 15,
    rounds: int = 2,
    *,
    smoke: bool = False,
) -> dict[str, float]:
    """`smoke`: without `hey`, only the first request is measured."""
    if not have_hey(required=not smoke):
        rounds = 0
    token = issue_token(DEV_JWT_SECRET, org=seed.ORG)
    with seeded_platform(events, campaigns) as (base, _):
        # The first request after a restart: nothing cached, a cold store.
        t = time.perf_counter()
        first = httpx.get(
            f"{base}/campaigns/cmp_42/metrics",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        first_ms = (time.perf_counter() - t) * 1000
        assert first.status_code == 200, first.text
        print(f"  first /campaigns/cmp_42/metrics after start: {first_ms:.1f} ms")
        health, metric = [], []
        for r in range(rounds):
            health.append(hey(f"{base}/healthz", None, seconds))
            metric.append(hey(f"{base}/campaigns/cmp_{r + 7}/metrics", token, seconds))
            print(
                f"  round {r + 1}: healthz p99 {health[-1]['p99_ms']:.1f} ms "
                f"({health[-1]['rps']:.0f} rps), metrics p99 {metric[-1]['p99_ms']:.1f} ms "
                f"({metric[-1]['rps']:.0f} rps)"
            )
    if not rounds:
        return {"first_ms": first_ms}
    h99 = median([h["p99_ms"] for h in health])
    m99 = median([m["p99_ms"] for m in metric])
    print(
        f"API latency at 500 req/s, 50 clients: /healthz p99 {h99:.1f} ms, "
        f"/campaigns/{{id}}/metrics p99 {m99:.1f} ms, ratio {m99 / h99:.2f} (medians); "
        f"first request after start {first_ms:.0f} ms"
    )
    return {
        "healthz_p99_ms": h99,
        "metrics_p99_ms": m99,
        "ratio": m99 / h99,
        "first_ms": first_ms,
    }


if __name__ == "__main__":
    run()

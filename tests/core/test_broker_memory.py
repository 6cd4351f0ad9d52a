"""The embedded broker's memory: read from /proc, exported as fk_embedded_broker_resident_bytes,
and warned about once per crossing of FK_EMBEDDED_BROKER_WARN_MB."""

import os
import subprocess
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from core.kafka import (
    MEMORY_SAMPLE_SECONDS,
    MIB,
    EmbeddedBroker,
    MemoryAlarm,
    process_resident_bytes,
    running_broker,
)
from tests.conftest import wait_until


def vm_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def test_reads_the_resident_memory_of_a_process() -> None:
    before = process_resident_bytes(os.getpid())
    assert before == pytest.approx(vm_rss(os.getpid()), rel=0.05)
    held = b"x" * (64 * MIB)  # every byte written, so resident
    after = process_resident_bytes(os.getpid())
    assert before is not None
    assert after is not None
    assert after - before >= 60 * MIB
    del held


def test_a_process_that_is_gone_reads_none() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert process_resident_bytes(gone.pid) is None


def test_the_gauge_exports_the_running_brokers_memory(broker: EmbeddedBroker) -> None:
    assert running_broker(broker.port) is broker
    assert broker.process is not None
    exported = REGISTRY.get_sample_value("fk_embedded_broker_resident_bytes")
    assert exported is not None
    assert exported > MIB
    # The latest sample (at most MEMORY_SAMPLE_SECONDS old) of an idle broker.
    assert exported == pytest.approx(vm_rss(broker.process.pid), rel=0.2)


def test_the_alarm_warns_once_per_crossing() -> None:
    alarm = MemoryAlarm(100 * MIB)
    with capture_logs() as logs:
        for resident_mib in (50, 100, 101, 150, 200, 95, 120, 89, 99, 120, 130):
            alarm.observe(resident_mib * MIB, pid=7)
    assert [(e["event"], e["resident_mib"]) for e in logs] == [
        ("broker.memory_high", 101),
        ("broker.memory_normal", 89),  # below 90 % of the threshold: may warn again
        ("broker.memory_high", 120),
    ]
    assert logs[0]["log_level"] == "warning"
    assert logs[0]["warn_mib"] == 100


def test_a_zero_threshold_never_warns() -> None:
    alarm = MemoryAlarm(0)
    with capture_logs() as logs:
        alarm.observe(2**40, pid=7)
    assert logs == []
    assert not alarm.above(2**40)


async def test_the_running_broker_logs_when_its_memory_crosses_the_threshold(
    broker: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert broker.process is not None
    monkeypatch.setattr(broker, "memory_alarm", MemoryAlarm(MIB))
    with capture_logs() as logs:
        await wait_until(
            lambda: [e for e in logs if e["event"] == "broker.memory_high"],
            timeout=3 * MEMORY_SAMPLE_SECONDS,
        )
    [high] = [e for e in logs if e["event"] == "broker.memory_high"]
    assert high["pid"] == broker.process.pid
    assert high["resident_mib"] >= 1
    assert "Apache Kafka" in high["advice"]

"""`fk up` end to end: FK_EMBEDDED_BROKER_WARN_MB reaches its broker, whose memory is exported
on /metrics, warned about once in the log and in /readyz (which stays 200)."""

from pathlib import Path

import pytest

from core.kafka import MEMORY_SAMPLE_SECONDS
from soak.processes import children, metric_values
from tests.conftest import free_port, wait_until
from tests.processes import PlatformProcess


@pytest.mark.slow
async def test_fk_up_warns_about_its_brokers_memory_above_the_setting(tmp_path: Path) -> None:
    env = {"FK_KAFKA_EMBEDDED_PORT": str(free_port()), "FK_EMBEDDED_BROKER_WARN_MB": "1"}
    with PlatformProcess(tmp_path / "p", **env) as platform:
        platform.start()
        assert platform.process is not None
        [broker_pid] = children(platform.process.pid)
        response = platform.http.get("/readyz")
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ready"
        [warning] = body["warnings"]
        assert warning["name"] == "broker"
        assert "FK_EMBEDDED_BROKER_WARN_MB=1:" in warning["message"]
        [resident] = metric_values(
            platform.http.get("/metrics").text, "fk_embedded_broker_resident_bytes"
        )
        assert resident > 2**20
        # Logged once, maybe early: later lines can push it out of the log's tail.
        await wait_until(
            lambda: "broker.memory_high" in platform.log(tail=None),
            timeout=3 * MEMORY_SAMPLE_SECONDS,
        )
        [high] = [
            line for line in platform.log(tail=None).splitlines() if "broker.memory_high" in line
        ]
        assert f"pid={broker_pid} " in high

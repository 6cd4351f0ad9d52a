"""With `FK_LOG_FORMAT=json` every log line is one JSON object, whichever library wrote it: a
child process sets logging up as the CLI does, then a real uvicorn server refuses a request
that is not HTTP, a real aiokafka producer fails to reach a closed port, faust and mode log
(an exception among them) after the worker of `fk worker` has set logging up."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROGRAM = r"""
import asyncio
import logging
import socket

import faust
import structlog
import uvicorn
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from fk.cli import faust_worker
from core.logging import configure_logging


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def nothing(scope, receive, send):
    pass


async def libraries() -> None:
    config = uvicorn.Config(
        nothing, host="127.0.0.1", port=free_port(), log_level="warning", log_config=None,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    reader, writer = await asyncio.open_connection("127.0.0.1", config.port)
    writer.write(b"NOT HTTP\r\n\r\n")
    await writer.drain()
    await reader.read()
    writer.close()
    server.should_exit = True
    await serving
    producer = AIOKafkaProducer(
        bootstrap_servers=f"127.0.0.1:{free_port()}", request_timeout_ms=500
    )
    try:
        await producer.start()
    except KafkaConnectionError:
        pass
    finally:
        await producer.stop()


configure_logging("json", "INFO")
structlog.get_logger("fk").info("ours.event", count=1)
asyncio.run(libraries())
app = faust.App("logging-test", broker="kafka://127.0.0.1:1")
faust_worker(app, "json")._setup_logging()  # what `fk worker` does when it starts
logging.getLogger("faust.transport.consumer").warning("Heartbeat failed: %s", "group g1")
try:
    {}["missing"]
except KeyError:
    logging.getLogger("mode.services").exception("Crashed: %r", "reason")
logging.getLogger("faust").info("below the libraries' level: not written")
"""


def test_every_log_line_is_one_json_object_whichever_library_wrote_it() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line]
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line: {line!r}\n{done.stderr}") from None
    by_logger = {r.get("logger", "(ours)"): r for r in records}
    assert by_logger["(ours)"]["event"] == "ours.event"
    assert by_logger["uvicorn.error"]["event"] == "Invalid HTTP request received."
    assert by_logger["uvicorn.error"]["level"] == "warning"
    assert "127.0.0.1" in by_logger["aiokafka"]["event"]
    assert by_logger["faust.transport.consumer"]["event"] == "Heartbeat failed: group g1"
    crashed = by_logger["mode.services"]
    assert crashed["event"] == "Crashed: 'reason'"
    assert crashed["level"] == "error"
    assert "KeyError: 'missing'" in crashed["exception"], "the traceback, inside the line"
    assert all("timestamp" in r for r in records)
    assert not any("below the libraries' level" in line for line in lines)

"""The embedded broker's start-up against a port that a previous broker still holds (found by
`make chaos`: `fk up` restarted right after a kill -9 declared its broker started while the dying
one still listened, then exited with "broker unreachable")."""

import contextlib
import socket
from concurrent.futures import ThreadPoolExecutor

from core.kafka import EmbeddedBroker, TopicSpec, ensure_topics
from tests.conftest import free_port, wait_until


async def test_start_waits_for_the_previous_broker_to_release_its_port() -> None:
    port = free_port()
    previous = socket.socket()  # stands in for the dying broker of the killed platform
    previous.bind(("127.0.0.1", port))
    previous.listen()
    previous.setblocking(False)
    probes: list[socket.socket] = []

    def probed() -> bool:
        with contextlib.suppress(BlockingIOError):
            probes.append(previous.accept()[0])
        return bool(probes)

    broker = EmbeddedBroker(port)
    with ThreadPoolExecutor(1) as pool:
        starting = pool.submit(broker.start, 30.0)
        try:
            # start() either keeps probing the held port (it waits) or returns at once.
            await wait_until(lambda: starting.done() or (probed() and len(probes) >= 2))
            if starting.done():
                # It declared success while the port was not its broker's: hold the port until
                # the broker it spawned has failed to bind.
                await wait_until(
                    lambda: broker.process is not None and broker.process.poll() is not None
                )
            for probe in probes:
                probe.close()
            previous.close()
            starting.result(timeout=30)
            assert broker.process is not None
            assert broker.process.poll() is None, "the started broker is running"
            await ensure_topics(broker.bootstrap, [TopicSpec("after-restart", 1)], timeout=5)
        finally:
            for probe in probes:
                probe.close()
            previous.close()
            broker.stop()

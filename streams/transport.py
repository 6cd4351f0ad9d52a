"""Faust's Kafka transport with a configurable fetch wait.

Faust's worker consumer asks the broker to hold every fetch for up to 1.5 s (fixed in its
aiokafka driver). Apache Kafka answers such a fetch as soon as data arrives; the embedded broker
answers only when the wait ends, so every command to the campaign agent would wait ~0.75 s on
average. `FkApp` builds its consumer with `fetch_wait_ms` instead.
"""

from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as driver
from faust.types import TransportT


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    fetch_wait_ms = 1500

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.fetch_wait_ms
        return consumer


class FkApp(faust.App):
    """A Faust app whose worker consumer's fetches wait at most `fetch_wait_ms`."""

    def __init__(self, *args: Any, fetch_wait_ms: int = 1500, **kwargs: Any) -> None:
        self.fetch_wait_ms = fetch_wait_ms
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> TransportT:
        fetch_wait_ms = self.fetch_wait_ms

        class Thread(_ConsumerThread):
            pass

        Thread.fetch_wait_ms = fetch_wait_ms

        class Consumer(driver.Consumer):
            def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
                return Thread(self, loop=self.loop, beacon=self.beacon)

        class Transport(driver.Transport):
            pass

        Transport.Consumer = Consumer
        return Transport(self.conf.broker_consumer, self)

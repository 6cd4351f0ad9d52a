"""Faust's Kafka transport with a configurable fetch wait, and a table manager that starts at once.

Faust's worker consumer asks the broker to hold every fetch for up to 1.5 s (fixed in its
aiokafka driver). Apache Kafka answers such a fetch as soon as data arrives; the embedded broker
answers only when the wait ends, so every command to the campaign agent would wait ~0.75 s on
average. `FkApp` builds its consumer with `fetch_wait_ms` instead.

Faust starts the app's own services (`@app.service`) one after another once its tables have
recovered. Each of this platform's services joins a consumer group, and the embedded broker holds
a new group's first join for half the session timeout (3 s by default), so a worker took one such
wait per service on top of Faust's own. `FkApp` starts them together, while the tables recover.

Faust's table manager pauses one second before it registers its tables' changelogs (and so
before the worker subscribes to anything). Every table of this platform is declared before its
app starts, so `FkApp`'s manager does not wait.
"""

import asyncio
from typing import Any

import aiokafka
import faust
from faust.tables import TableManager
from faust.transport.drivers import aiokafka as driver
from faust.types import TransportT


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    fetch_wait_ms = 1500

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.fetch_wait_ms
        return consumer


class _TableManager(TableManager):
    async def on_start(self) -> None:
        # Faust's sleeps one second first.
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


class FkApp(faust.App):
    """A Faust app whose worker consumer's fetches wait at most `fetch_wait_ms`, whose tables
    are registered as soon as it starts (all of them are declared before), and whose services
    start together, while the tables recover."""

    def __init__(self, *args: Any, fetch_wait_ms: int = 1500, **kwargs: Any) -> None:
        self.fetch_wait_ms = fetch_wait_ms
        kwargs.setdefault("TableManager", _TableManager)
        super().__init__(*args, **kwargs)

    async def on_started(self) -> None:
        """As Faust's (`faust.App.on_started`), but the app's services start at once, together,
        and while the tables recover; the app has started when both are done."""
        services = asyncio.ensure_future(self.on_started_init_extra_services())
        try:
            stopped = await self._wait_for_table_recovery_completed()
            if not stopped:
                await self.on_started_init_extra_tasks()
                await self.on_started_init_web_server()
        except BaseException:
            services.cancel()
            raise
        await services
        if not stopped and self.on_startup_finished:
            await self.on_startup_finished()

    async def on_started_init_extra_services(self) -> None:
        if self._extra_service_instances is None:
            started = await asyncio.gather(
                *(self.on_init_extra_service(service) for service in self._extra_services)
            )
            self._extra_service_instances = list(started)

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

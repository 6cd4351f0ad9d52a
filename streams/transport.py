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
from collections.abc import Iterable
from typing import Any

import aiokafka
import faust
from faust.tables import TableManager
from faust.tables.recovery import Recovery
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, TransportT


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    fetch_wait_ms = 1500

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.fetch_wait_ms
        return consumer

    async def stop_fetching(self, tps: Iterable[TP]) -> None:
        """Pause `tps` in aiokafka itself, so their records are not fetched at all, until the
        next rebalance (which gives every partition a fresh state)."""
        partitions = [aiokafka.TopicPartition(tp.topic, tp.partition) for tp in tps]
        await self.call_thread(self._pause, partitions)

    async def _pause(self, partitions: list[aiokafka.TopicPartition]) -> None:
        self._ensure_consumer().pause(*partitions)

    def verify_event_path(self, now: float, tp: TP) -> None:
        """Faust's check that each assigned partition is fetched and processed; the partitions
        paused here on purpose are not fetched, which is no fault (Faust logged an error for each
        recovered changelog partition every few seconds once the worker had run five minutes)."""
        if not self._stopped_fetching(tp):
            super().verify_event_path(now, tp)

    def verify_recovery_event_path(self, now: float, tp: TP) -> None:
        if not self._stopped_fetching(tp):
            super().verify_recovery_event_path(now, tp)

    def _stopped_fetching(self, tp: TP) -> bool:
        consumer = self._consumer
        return (
            consumer is not None
            and aiokafka.TopicPartition(tp.topic, tp.partition) in consumer.paused()
        )


class _Recovery(Recovery):
    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        # The changelog partitions of the worker's active tables are not read once recovered
        # (their records are the worker's own writes). Faust's pause leaves them out of what it
        # takes from its consumer, but aiokafka still fetched them, and not after a first start
        # (nothing to recover) at all. Their records then sat unconsumed, and aiokafka holds a
        # node's next fetch up to 100 ms while any partition's records wait: each campaign
        # command behind it waited too. Standby partitions are read on (they keep standby
        # tables up to date).
        unread = {
            tp
            for tp in self.active_tps - self.standby_tps
            if self.tp_to_table[tp].recovery_buffer_size != 1
        }
        self.app.consumer.pause_partitions(unread)
        thread = getattr(self.app.consumer, "_thread", None)
        if unread and isinstance(thread, _ConsumerThread):
            await thread.stop_fetching(unread)
        await super().on_recovery_completed(generation_id)


class _TableManager(TableManager):
    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = _Recovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery

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

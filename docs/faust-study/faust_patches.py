"""Monkeypatches for Faust's per-message hot path (no fork). Enable via PATCH=drain[,monitor]."""
import asyncio
from typing import cast

def patch_drain():
    """Replace Consumer._drain_messages: await callback(message) directly instead of
    Service.wait_first(callback(message), suspend_flow.wait()) which creates 4 tasks +
    asyncio.wait per message. Falls back to wait_first only while suspend_flow is set.
    Semantic difference: an in-flight callback is no longer cancelled if suspend_flow
    gets set *during* it (it is still checked before every message)."""
    from faust.transport.consumer import Consumer
    from mode import Service

    async def _drain_messages(self, fetcher):
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        suspend_flow = self.suspend_flow
        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                ait = getmany(timeout=1.0)
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0
                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            if gap > 1 and r_offset:
                                if acks_enabled_for(message.topic):
                                    await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None and self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                            if suspend_flow.is_set():
                                await self.wait_first(callback(message), suspend_flow.wait())
                            else:
                                await callback(message)
                            set_read_offset(tp, offset)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
    Consumer._drain_messages = _drain_messages

def patch_idle_sleep(seconds: float = 0.005):
    """Consumer._wait_next_records sleeps a full 1 s when every assigned partition has been
    removed from the active set by stream-buffer back-pressure (on_buffer_full). The
    partitions are re-activated as soon as the agent drains the buffer, but the fetch loop
    stays asleep for the rest of that second. Shorten that sleep."""
    from faust.transport.consumer import Consumer

    async def _wait_next_records(self, timeout):
        if not self.flow_active:
            await self.wait(self.can_resume_flow)
        try:
            self.not_waiting_next_records.set()
            is_client_only = self.app.client_only
            if is_client_only:
                active_partitions = None
            else:
                active_partitions = self._get_active_partitions()
            records = {}
            if is_client_only or active_partitions:
                records = await self._getmany(active_partitions=active_partitions, timeout=timeout)
            else:
                await self.sleep(seconds)
            return records, active_partitions
        finally:
            self.not_waiting_next_records.set()
    Consumer._wait_next_records = _wait_next_records

def apply(spec: str):
    for p in filter(None, (s.strip() for s in spec.split(","))):
        if p == "drain":
            patch_drain()
        elif p == "idlesleep":
            patch_idle_sleep()
        else:
            raise SystemExit(f"unknown patch {p}")

"""The dedupe window (`FK_DEDUPE_WINDOW_DAYS`): ids of the window's days of event time are held
in memory and older events are checked against the store by id, so an event counts once at any
age while the held ids stay bounded by the window, not by history."""

import asyncio
import time
from typing import Any

import numpy as np
import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from pydantic import ValidationError

from core.clickhouse import Store, StoreUnavailable
from core.settings import Settings
from streams.agents.engagement import EngagementConsumer
from streams.sinks import DAY_MS, EngagementSink, Key, SeenIds, _chunks, key_hashes
from streams.transforms import EventBatch, Row
from tests.conftest import make_settings, wait_until
from tests.factories import encode, make_event

HOUR_MS = 3_600_000


class FakeClock:
    """A settable "now" (seconds since the epoch) for the consumer: time passes without sleeping."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def now_ms() -> int:
    return int(time.time() * 1000)


def holds(seen: SeenIds, *event_ids: str, org: str = "acme") -> bool:
    """Whether the window holds every one of these ids of `org` (the tests' default one)."""
    keys: list[Key] = [(org, i) for i in event_ids]
    return bool(seen.holds(key_hashes(keys, len(keys))).all())


def holds_any(seen: SeenIds, *event_ids: str, org: str = "acme") -> bool:
    keys: list[Key] = [(org, i) for i in event_ids]
    return bool(seen.holds(key_hashes(keys, len(keys))).any())


def duplicates() -> float:
    return REGISTRY.get_sample_value("fk_pipeline_duplicates_total") or 0.0


def inserts() -> float:
    return REGISTRY.get_sample_value("fk_sink_batch_rows_count") or 0.0


async def send(producer: AIOKafkaProducer, settings: Settings, *events: dict[str, Any]) -> None:
    """Publish in order, all with one key (so one partition keeps their order)."""
    for event in events:
        await producer.send(settings.engagement_topic, encode(event), key=b"inf_a")
    await producer.flush()


async def copies(store: Store, event_id: str) -> int:
    rows = await store.query_rows(
        "SELECT count() FROM engagement_events WHERE event_id = {id:String}", {"id": event_id}
    )
    return int(rows[0][0])


async def landed(store: Store, event: dict[str, Any]) -> None:
    """Wait until `event` is stored: everything sent before it on its partition has landed."""

    async def stored() -> bool:
        return await copies(store, event["eventId"]) == 1

    await wait_until(stored)


async def test_a_repeat_inside_the_window_counts_once(
    settings: Settings, pipeline: EngagementConsumer, producer: AIOKafkaProducer, store: Store
) -> None:
    event = make_event(timestamp=now_ms() - 2 * DAY_MS)
    await send(producer, settings, event)
    await landed(store, event)
    assert holds(pipeline.sink.seen, event["eventId"])

    before = duplicates()
    sentinel = make_event()
    await send(producer, settings, {**event, "views": 999_999}, event, sentinel)
    await landed(store, sentinel)
    assert await copies(store, event["eventId"]) == 1
    await wait_until(lambda: duplicates() - before == 2)


async def test_a_repeat_inside_the_window_counts_once_after_a_restart(
    settings: Settings, store: Store, topics: None, producer: AIOKafkaProducer
) -> None:
    event = make_event(timestamp=now_ms() - 6 * DAY_MS)
    first = EngagementConsumer(settings, store)
    await first.start()
    try:
        await send(producer, settings, event)
        await landed(store, event)
    finally:
        await first.stop()

    second = EngagementConsumer(settings, store)
    await second.start()
    try:
        # Loaded from the store on assignment: the window's ids, this one among them.
        await wait_until(lambda: holds(second.sink.seen, event["eventId"]))
        before = duplicates()
        sentinel = make_event()
        await send(producer, settings, event, sentinel)
        await landed(store, sentinel)
        assert await copies(store, event["eventId"]) == 1
        await wait_until(lambda: duplicates() - before == 1)
    finally:
        await second.stop()


async def test_an_event_older_than_the_window_counts_once_also_after_a_restart(
    settings: Settings, store: Store, topics: None, producer: AIOKafkaProducer
) -> None:
    assert settings.dedupe_window_days == 7
    old = make_event(timestamp=now_ms() - 30 * DAY_MS)
    before = duplicates()
    first = EngagementConsumer(settings, store)
    await first.start()
    try:
        await send(producer, settings, old)
        await landed(store, old)
        assert not holds_any(first.sink.seen, old["eventId"]), "memory holds the window only"
        sentinel = make_event()
        await send(producer, settings, old, sentinel)
        await landed(store, sentinel)
        assert await copies(store, old["eventId"]) == 1
    finally:
        await first.stop()

    second = EngagementConsumer(settings, store)
    await second.start()
    try:
        sentinel = make_event()
        await send(producer, settings, {**old, "views": 999_999}, sentinel)
        await landed(store, sentinel)
        # Not served from memory: nothing older than the window is loaded into it.
        assert not holds_any(second.sink.seen, old["eventId"])
        assert await copies(store, old["eventId"]) == 1
        await wait_until(lambda: duplicates() - before == 2)
    finally:
        await second.stop()


async def test_two_copies_of_an_old_id_in_one_batch_count_once(
    settings: Settings, store: Store, topics: None, producer: AIOKafkaProducer
) -> None:
    old = make_event(timestamp=now_ms() - 30 * DAY_MS)
    sentinel = make_event()
    # Published before the consumer starts, so its first poll reads all three.
    await send(producer, settings, old, {**old, "views": 999_999}, sentinel)
    before, inserts_before = duplicates(), inserts()
    consumer = EngagementConsumer(settings, store)
    await consumer.start()
    try:
        await landed(store, sentinel)
        assert await copies(store, old["eventId"]) == 1
        await wait_until(lambda: duplicates() - before == 1)
        assert inserts() - inserts_before == 1, "the copies were not in one batch"
    finally:
        await consumer.stop()
    rows = await store.query_rows(
        "SELECT views FROM engagement_events WHERE event_id = {id:String}", {"id": old["eventId"]}
    )
    assert rows == [(old["views"],)], "the first copy is the one counted"


async def test_an_old_id_in_a_batch_not_stored_yet_is_a_duplicate(
    settings: Settings,
    store: Store,
    topics: None,
    producer: AIOKafkaProducer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The store refuses inserts: the first batch stays in flight while the next poll is decoded,
    # so the old id's copy is found neither in memory nor in the store.
    insert_arrow = store.insert_arrow
    store_back = asyncio.Event()
    refused = 0

    async def refusing_insert(table: str, data: Any, settings: Any = None) -> None:
        nonlocal refused
        if not store_back.is_set():
            refused += 1
            raise StoreUnavailable("store down for the test")
        await insert_arrow(table, data, settings)

    monkeypatch.setattr(store, "insert_arrow", refusing_insert)
    old = make_event(timestamp=now_ms() - 30 * DAY_MS)
    consumer = EngagementConsumer(settings, store)
    await consumer.start()
    try:
        await send(producer, settings, old)
        await wait_until(lambda: refused > 0)
        before = duplicates()
        await send(producer, settings, {**old, "views": 999_999})
        # The next poll is decoded while the first batch is retried (and then waits for it).
        decoded = await wait_until(lambda: consumer._pending)
        assert decoded.duplicates == 1
        assert not decoded.events
        store_back.set()
        sentinel = make_event()
        await send(producer, settings, sentinel)
        await landed(store, sentinel)
        assert await copies(store, old["eventId"]) == 1
        await wait_until(lambda: duplicates() - before == 1)
    finally:
        store_back.set()
        await consumer.stop()


async def test_the_held_ids_stay_within_the_window_while_ids_keep_arriving(
    settings: Settings, store: Store, topics: None, producer: AIOKafkaProducer
) -> None:
    """Ten days of a one-day window: each day brings new ids spread over two days of event
    time and repeats all of the day before's (some now older than the window)."""
    settings = settings.model_copy(update={"dedupe_window_days": 1})
    clock = FakeClock(time.time() - 12 * 86_400)
    consumer = EngagementConsumer(settings, store, clock=clock)
    times: dict[str, int] = {}
    yesterday: list[dict[str, Any]] = []
    before = duplicates()
    await consumer.start()
    try:
        for day in range(10):
            today_ms = int(clock.now * 1000)
            fresh = [
                make_event(eventId=f"d{day}-{i}", timestamp=today_ms - i * 3 * HOUR_MS)
                for i in range(16)
            ]
            await send(producer, settings, *yesterday, *fresh)
            for event in fresh:
                await landed(store, event)
            times.update((e["eventId"], e["timestamp"]) for e in fresh)

            seen = consumer.sink.seen
            assert seen.start_ms == (today_ms - DAY_MS) // DAY_MS * DAY_MS
            inside = [i for i, t in times.items() if t >= seen.start_ms]
            outside = [i for i, t in times.items() if t < seen.start_ms]
            assert holds(seen, *inside)
            assert not holds_any(seen, *outside)
            assert len(seen) <= 2 * len(fresh), "ids of two days of event time at most"
            assert seen.nbytes == 8 * len(seen), "8 bytes per held id"
            counted = await store.query_rows("SELECT count() FROM engagement_events")
            assert counted == [(16 * (day + 1),)]
            yesterday = fresh
            clock.now += 86_400  # a day passes: the next claim forgets the day that left
        await wait_until(lambda: duplicates() - before == 16 * 9)
    finally:
        await consumer.stop()


async def test_ids_claimed_while_the_window_loads_stay_known(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The consumer fetches and claims batches while its assignment callback loads the window
    # from the store: the load must add to what was claimed meanwhile, not replace it.
    sink = EngagementSink(store)
    await sink.write(_batch([("stored", now_ms() - HOUR_MS)]))
    query_columns = store.query_columns
    querying, answer = asyncio.Event(), asyncio.Event()

    async def held_query(sql: str, parameters: dict[str, Any] | None = None) -> Any:
        querying.set()
        await answer.wait()
        return await query_columns(sql, parameters)

    monkeypatch.setattr(store, "query_columns", held_query)
    loading = asyncio.ensure_future(sink.load_seen())
    await wait_until(querying.is_set)
    sink.claim(_batch([("claimed", now_ms() - HOUR_MS)]))
    answer.set()
    assert await loading == 2
    assert holds(sink.seen, "stored", "claimed")


async def test_the_store_check_of_old_ids_waits_for_the_store_and_gives_up_only_when_stopping(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = EngagementSink(store, max_backoff=0.2)
    old_ms = now_ms() - 30 * DAY_MS
    await sink.write(_batch([("old-stored", old_ms)]))
    query_columns = store.query_columns
    failures = 2

    async def failing_query(sql: str, parameters: dict[str, Any] | None = None) -> Any:
        nonlocal failures
        if failures:
            failures -= 1
            raise StoreUnavailable("store down for the test")
        return await query_columns(sql, parameters)

    monkeypatch.setattr(store, "query_columns", failing_query)
    keys = [("acme", "old-stored"), ("acme", "old-new"), ("other", "old-stored")]
    assert await sink.stored_keys(keys, before_ms=sink.seen.start_ms) == {("acme", "old-stored")}
    assert failures == 0

    failures, stopping = 1, asyncio.Event()
    stopping.set()
    with pytest.raises(StoreUnavailable):
        await sink.stored_keys(keys, before_ms=sink.seen.start_ms, stopping=stopping)


def test_the_store_check_splits_long_id_lists_and_keeps_every_id() -> None:
    ids = [f"id-{i:04}" for i in range(1000)]  # 7 characters + 3 of quoting each
    chunks = list(_chunks(ids, 1000))
    assert [len(c) for c in chunks] == [100] * 10
    assert [i for c in chunks for i in c] == ids
    assert list(_chunks(["x" * 50], 10)) == [["x" * 50]], "an id longer than the budget alone"
    assert list(_chunks([], 10)) == []


# -- SeenIds on its own (pure) ---------------------------------------------------------------


def _batch(events: list[tuple[str, int]], org: str = "acme") -> EventBatch:
    batch = EventBatch()
    for event_id, at in events:
        row: Row = (event_id, at, "inf", "", "x", "", 0, 0, 0, 0, 0, None, ())
        batch.add_row(row, partition=0, offset=0, org=org)
    return batch


def _claim(seen: SeenIds, events: list[tuple[str, int]], org: str = "acme") -> None:
    keys: list[Key] = [(org, i) for i, _ in events]
    times = np.array([t for _, t in events], dtype=np.int64)
    seen.add(times, key_hashes(keys, len(keys)))


_NOW = 20_000 * DAY_MS + 12 * HOUR_MS
_ages = st.integers(min_value=0, max_value=6 * DAY_MS)


@settings(max_examples=200, deadline=None)
@given(
    window_days=st.integers(min_value=1, max_value=3),
    steps=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=2 * DAY_MS),  # time passing before the step
            st.lists(_ages, max_size=20),  # event ages of the batch claimed at the step
        ),
        max_size=12,
    ),
)
def test_seen_ids_hold_exactly_the_ids_from_the_window_start_on(
    window_days: int, steps: list[tuple[int, list[int]]]
) -> None:
    now = _NOW
    seen = SeenIds(window_days, now)
    times: dict[str, int] = {}
    for step, (elapsed, ages) in enumerate(steps):
        now += elapsed
        seen.expire(now)
        events = [(f"s{step}-{i}", now - age) for i, age in enumerate(ages)]
        _claim(seen, events)
        times.update(events)
        assert seen.start_ms == (now - window_days * DAY_MS) // DAY_MS * DAY_MS
        inside = [i for i, t in times.items() if t >= seen.start_ms]
        assert holds(seen, *inside)
        assert not holds_any(seen, *(i for i in times if i not in inside))
        assert len(seen) == len(inside), "each held id once, nothing else"
        assert not holds_any(seen, *inside, org="another"), "keys are per organisation"
        for day, runs in seen.days.items():
            assert day >= seen.start_ms // DAY_MS
            assert all((run[1:] >= run[:-1]).all() for run in runs), "runs stay sorted"


def test_expiry_forgets_whole_days_and_never_moves_the_start_back() -> None:
    seen = SeenIds(1, _NOW)
    _claim(seen, [("today", _NOW), ("yesterday", _NOW - DAY_MS), ("late", _NOW - 3 * DAY_MS)])
    assert holds(seen, "today", "yesterday")
    assert not holds_any(seen, "late")
    assert seen.expire(_NOW + DAY_MS) == 1
    assert holds(seen, "today")
    assert not holds_any(seen, "yesterday")
    assert seen.expire(_NOW - 5 * DAY_MS) == 0, "a clock set back does not widen the window"
    assert seen.start_ms == (_NOW // DAY_MS) * DAY_MS
    assert seen.expire(_NOW + 2 * DAY_MS) == 1
    assert len(seen) == 0
    assert not seen.days


def test_a_window_of_less_than_a_day_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one day"):
        SeenIds(0, _NOW)


def test_the_setting_defaults_to_a_week_and_refuses_less_than_a_day() -> None:
    assert make_settings().dedupe_window_days == 7
    with pytest.raises(ValidationError):
        make_settings(dedupe_window_days=0)


def test_a_day_holds_few_sorted_runs_however_many_batches_it_claims() -> None:
    seen = SeenIds(7, _NOW)
    for b in range(500):
        _claim(seen, [(f"b{b}-{i}", _NOW - i) for i in range(40)])
    assert len(seen) == 20_000
    runs = seen.days[_NOW // DAY_MS]
    assert len(runs) <= 15, "similar runs are merged: about log2 of the batches"
    assert sum(len(r) for r in runs) == 20_000
    assert holds(seen, "b0-0", "b250-17", "b499-39")
    assert not holds_any(seen, "b500-0")

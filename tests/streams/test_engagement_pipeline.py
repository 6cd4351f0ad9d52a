"""The engagement pipeline end to end on the real broker and chDB: exact windowed aggregates,
dead letters, and nothing valid lost around bad input."""

import asyncio
import gc
import random
import time
import weakref
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import structlog
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY

from core.clickhouse import Store
from core.settings import Settings
from schemas.events import MAX_EVENT_BYTES, REQUEST_ID_KAFKA_HEADER
from streams.agents.engagement import _COLLECTOR, EngagementConsumer, _Collector
from streams.transforms import EVENT_COLUMNS, Rejection, decode_rows
from tests.conftest import read_dead_letters, wait_until
from tests.factories import encode, make_event, reference_metrics

HOUR = 3_600_000


def stream_with_duplicates_late_and_out_of_order(now_ms: int) -> list[dict[str, Any]]:
    rng = random.Random(42)
    events = []
    ages = [5 * 60_000, 30 * 60_000, 2 * HOUR, 20 * HOUR, 30 * HOUR, 80 * HOUR]
    for i in range(600):
        events.append(
            make_event(
                eventId=f"e{i}",
                timestamp=now_ms - rng.choice(ages) - rng.randint(0, 60_000),
                influencerId=rng.choice(["inf_a", "inf_b", "inf_c"]),
                campaignId=rng.choice(["cmp_1", "cmp_2", None]),
                platform=rng.choice(["instagram", "tiktok"]),
                views=rng.randint(0, 5000),
                likes=rng.randint(0, 300),
                comments=rng.randint(0, 40),
                shares=rng.randint(0, 20),
                saves=rng.randint(0, 10),
            )
        )
    duplicates = [dict(e) for e in rng.sample(events, 120)]
    # A duplicate id with different counts must still be counted once (first seen wins).
    duplicates[0]["views"] += 1_000_000
    stream = events + duplicates
    rng.shuffle(stream)
    for e in events[:5]:  # exact duplicates sent back to back too
        stream.append(dict(e))
    return stream


async def send_all(
    producer: AIOKafkaProducer, topic: str, values: list[bytes], keys: list[bytes | None]
) -> None:
    futures = [
        await producer.send(topic, value=v, key=k) for v, k in zip(values, keys, strict=True)
    ]
    for f in futures:
        await f


async def test_windowed_metrics_match_an_independent_reference(
    settings: Settings,
    pipeline: EngagementConsumer,
    producer: AIOKafkaProducer,
    client: httpx.AsyncClient,
    store: Store,
) -> None:
    now_ms = int(time.time() * 1000)
    stream = stream_with_duplicates_late_and_out_of_order(now_ms)
    # The first occurrence in *stream order* is the one the reference keeps; events with the same
    # key keep their order in a partition, and duplicates share the key (influencerId), so the
    # pipeline sees the same first occurrence.
    await send_all(
        producer,
        settings.engagement_topic,
        [encode(e) for e in stream],
        [e["influencerId"].encode() for e in stream],
    )
    distinct = len({e["eventId"] for e in stream})

    async def stored() -> bool:
        rows = await store.query_rows("SELECT count() FROM engagement_events")
        return rows[0][0] == distinct

    await wait_until(stored)
    for key, path, entities in (
        ("campaignId", "campaigns", ["cmp_1", "cmp_2"]),
        ("influencerId", "influencers", ["inf_a", "inf_b", "inf_c"]),
    ):
        for entity in entities:
            expected = reference_metrics(stream, key=key, entity=entity, now_ms=now_ms)
            response = await client.get(f"/{path}/{entity}/metrics")
            assert response.status_code == 200, response.text
            assert response.json() == expected, (path, entity)
    # Nothing double counted in the store either.
    rows = await store.query_rows("SELECT count(), uniqExact(event_id) FROM engagement_events")
    assert rows[0] == (distinct, distinct)


async def test_bad_messages_go_to_the_dead_letter_topic_and_valid_ones_around_them_land(
    settings: Settings,
    pipeline: EngagementConsumer,
    producer: AIOKafkaProducer,
    client: httpx.AsyncClient,
) -> None:
    now_ms = int(time.time() * 1000)
    bad = {
        b"{not json": "invalid_json",
        encode(make_event(views="many")): "invalid_event",
        encode(make_event(likes=-3)): "invalid_event",
        encode(make_event(platform="orkut")): "invalid_event",
        encode({"timestamp": now_ms, "platform": "x"}): "invalid_event",
        encode(make_event(timestamp=now_ms + 3_600_000)): "future_timestamp",
        b'{"eventId":"big","pad":"' + b"x" * (1024 * 1024) + b'"}': "too_large",
    }
    before = {
        r: REGISTRY.get_sample_value("fk_pipeline_dead_letters_total", {"reason": r}) or 0.0
        for r in set(bad.values())
    }
    good = [
        make_event(campaignId="cmp_dlq", eventId=f"good-{i}", views=10, likes=1)
        for i in range(len(bad) + 1)
    ]
    values: list[bytes] = []
    for g, b in zip(good, [*bad, None], strict=True):
        values.append(encode(g))
        if b is not None:
            values.append(b)
    await send_all(producer, settings.engagement_topic, values, [b"inf_a"] * len(values))

    async def all_good_counted() -> bool:
        r = await client.get("/campaigns/cmp_dlq/metrics")
        return r.status_code == 200 and r.json()["total"]["events"] == len(good)

    await wait_until(all_good_counted)

    got = await read_dead_letters(settings, len(bad))
    assert set(got) == set(bad), "every bad message reaches the DLQ with its raw bytes unchanged"
    for raw, reason in bad.items():
        headers = got[raw]
        assert headers["fk-dlq-reason"].decode() == reason
        assert headers["fk-dlq-error"], "a human-readable error travels with the reason"
        assert headers["fk-source-topic"].decode() == settings.engagement_topic
    for reason in set(bad.values()):
        after = REGISTRY.get_sample_value("fk_pipeline_dead_letters_total", {"reason": reason})
        expected = sum(1 for r in bad.values() if r == reason)
        assert after == before[reason] + expected


async def test_the_consumer_answers_each_message_as_decode_rows_does(
    settings: Settings, pipeline: EngagementConsumer, producer: AIOKafkaProducer, store: Store
) -> None:
    """What the consumer stores or dead-letters for each message is exactly what
    `decode_rows` (the function the property tests hold to the model) answers for it: the same
    row, or the same reason and error. Cases where a copy of the decoder would drift: the fast
    path, a date to complete, nulls, spellings only the model accepts, a float or a bool count,
    the future horizon, the size limit, no value at all."""
    now_ms = int(time.time() * 1000)
    minute_ago = now_ms - 60_000
    snake = make_event(timestamp=minute_ago)
    snake["event_id"] = snake.pop("eventId") + "-snake"
    in_india = datetime.fromtimestamp(minute_ago / 1000, timezone(timedelta(hours=5, minutes=30)))
    values: list[bytes | None] = [
        encode(make_event(eventId="plain", timestamp=minute_ago, hashtags=["#a", "#b"])),
        encode(make_event(eventId="dated", timestamp=in_india.isoformat())),
        encode(make_event(eventId="nulls", timestamp=minute_ago, campaignId=None, postId=None)),
        encode(snake),
        encode(make_event(eventId="float", timestamp=minute_ago, views=5.0)),
        encode(make_event(eventId="bool", timestamp=minute_ago, likes=True)),
        encode(make_event(eventId="future", timestamp=now_ms + 3_600_000)),
        encode(make_event(eventId="negative", timestamp=minute_ago, likes=-3)),
        b"{not json",
        b'{"eventId":"big","pad":"' + b"x" * MAX_EVENT_BYTES + b'"}',
        None,
    ]
    expected = decode_rows(
        values, now_ms=now_ms, max_future_ms=settings.max_future_skew_seconds * 1000
    )
    rows = [answer for answer in expected if not isinstance(answer, Rejection)]
    rejected = {
        value: answer
        for value, answer in zip(values, expected, strict=True)
        if isinstance(answer, Rejection)
    }
    # Both kinds of answer are exercised: the row of each valid spelling, a reason for the rest.
    assert {row[0] for row in rows} == {"plain", "dated", "nulls", snake["event_id"]}
    assert len(rejected) == len(values) - len(rows)
    for value in values:
        await producer.send_and_wait(settings.engagement_topic, value=value, key=b"inf_a")

    async def stored() -> bool:
        found = await store.query_rows("SELECT count() FROM engagement_events")
        return bool(found[0][0] == len(rows))

    await wait_until(stored)
    landed = await store.query_rows(
        f"SELECT {EVENT_COLUMNS[0]}, toUnixTimestamp64Milli(event_time), "
        f"{', '.join(EVENT_COLUMNS[2:13])} FROM engagement_events"
    )
    assert sorted((*r[:12], tuple(r[12])) for r in landed) == sorted(rows)
    got = await read_dead_letters(settings, len(rejected))
    assert set(got) == set(rejected)
    for value, rejection in rejected.items():
        assert got[value]["fk-dlq-reason"].decode() == rejection.reason.value, value
        assert got[value]["fk-dlq-error"] == rejection.error.encode()[:1024], value


async def test_events_older_than_a_day_count_in_total_only(
    settings: Settings,
    pipeline: EngagementConsumer,
    producer: AIOKafkaProducer,
    client: httpx.AsyncClient,
) -> None:
    now_ms = int(time.time() * 1000)
    old = make_event(campaignId="cmp_old", timestamp=now_ms - 25 * HOUR, views=7, likes=1)
    await send_all(producer, settings.engagement_topic, [encode(old)], [b"inf_a"])

    async def counted() -> Any:
        r = await client.get("/campaigns/cmp_old/metrics")
        return r.status_code == 200 and r.json()

    body = await wait_until(counted)
    assert body["total"]["views"] == 7
    assert body["window24h"]["events"] == 0
    assert body["window1h"]["events"] == 0


async def test_events_from_librdkafka_producers_land(
    settings: Settings, pipeline: EngagementConsumer, client: httpx.AsyncClient
) -> None:
    """confluent-kafka (librdkafka 2.x) is a supported producer against the embedded broker."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": settings.bootstrap, "enable.idempotence": False})
    for i in range(20):
        producer.produce(
            settings.engagement_topic,
            encode(make_event(eventId=f"rd-{i}", campaignId="cmp_rdkafka", views=3)),
            key=b"inf_a",
        )
    assert producer.flush(10) == 0

    async def counted() -> bool:
        r = await client.get("/campaigns/cmp_rdkafka/metrics")
        return r.status_code == 200 and r.json()["total"]["views"] == 60

    await wait_until(counted)


async def test_dead_letter_log_lines_name_the_publishing_request(
    settings: Settings, pipeline: EngagementConsumer, producer: AIOKafkaProducer
) -> None:
    with structlog.testing.capture_logs() as logs:
        await producer.send_and_wait(
            settings.engagement_topic, b"{broken", headers=[(REQUEST_ID_KAFKA_HEADER, b"req-dlq-1")]
        )

        def logged() -> list[dict[str, object]]:
            return [e for e in logs if e["event"] == "engagement.dead_letter"]

        found = await wait_until(logged)
    assert found[0]["request_id"] == "req-dlq-1"
    assert found[0]["reason"] == "invalid_json"


class _Node:
    me: "_Node | None" = None


async def test_the_collector_still_frees_cycles_while_the_consumer_polls(
    pipeline: EngagementConsumer,
) -> None:
    # The consumer pauses the cyclic collector while it reads a poll; the rest of the process
    # (the embedded API shares its loop) must still get its reference cycles freed.
    def garbage_cycle() -> weakref.ref[_Node]:
        node = _Node()
        node.me = node
        return weakref.ref(node)

    await wait_until(lambda: pipeline.consumer is not None and pipeline.consumer.assignment())
    cycles = [garbage_cycle() for _ in range(100)]
    await wait_until(lambda: all(ref() is None for ref in cycles))


def test_the_collector_runs_at_most_once_a_second_between_polls() -> None:
    collector = _Collector()
    assert gc.isenabled()
    try:
        with collector.paused():
            assert not gc.isenabled()
        assert not gc.isenabled(), "collected less than a second ago: stays off"
        assert collector.deferred
        with collector.paused():
            pass
        assert not gc.isenabled()
        collector.collected -= 1.0
        with collector.paused():
            pass
        assert gc.isenabled(), "a second since the last run: back on"
        assert not collector.deferred
    finally:
        gc.enable()


def test_the_collector_leaves_alone_a_collector_someone_else_turned_off() -> None:
    collector = _Collector()
    collector.collected -= 1.0
    gc.disable()
    try:
        with collector.paused():
            pass
        assert not gc.isenabled()
        assert not collector.deferred
    finally:
        gc.enable()


async def test_stopping_the_consumer_turns_a_deferred_collector_back_on(
    settings: Settings, store: Store
) -> None:
    consumer = EngagementConsumer(settings, store)
    await consumer.start()
    try:
        await wait_until(lambda: consumer.consumer is not None and consumer.consumer.assignment())
        _COLLECTOR.collected = time.monotonic() + 3600  # never due while it runs
        await wait_until(lambda: _COLLECTOR.deferred)
        assert not gc.isenabled()
    finally:
        await consumer.stop()
        _COLLECTOR.collected = time.monotonic()
    assert gc.isenabled()


async def test_a_backlog_lands_in_inserts_of_at_most_the_batch_limit(
    settings: Settings, store: Store, topics: None
) -> None:
    limit, n = 5000, 12_345
    settings = settings.model_copy(update={"sink_max_batch": limit})
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, linger_ms=20)
    await producer.start()
    try:
        events = [make_event(campaignId="cmp_backlog", views=1) for _ in range(n)]
        await send_all(
            producer,
            settings.engagement_topic,
            [encode(e) for e in events],
            [e["influencerId"].encode() for e in events],
        )
    finally:
        await producer.stop()

    def inserts() -> tuple[float, float, float]:
        def sample(suffix: str, labels: dict[str, str] | None = None) -> float:
            return REGISTRY.get_sample_value(f"fk_sink_batch_rows_{suffix}", labels) or 0.0

        return sample("count"), sample("sum"), sample("bucket", {"le": str(float(limit))})

    count0, rows0, within0 = inserts()
    consumer = EngagementConsumer(settings, store)
    await consumer.start()
    try:
        await wait_until(lambda: consumer.sink.stored >= n, timeout=60)
    finally:
        await consumer.stop()
    count, rows, within = inserts()
    assert rows - rows0 == n
    assert within - within0 == count - count0, "an insert was larger than FK_SINK_MAX_BATCH"
    # The backlog is read in full polls, gathered up to the limit: no insert smaller than it
    # but the last.
    assert count - count0 == -(-n // limit)
    total = await store.query_rows(
        "SELECT sum(views), count() FROM engagement_events WHERE campaign_id = 'cmp_backlog'"
    )
    assert total[0] == (n, n)


async def test_a_steady_stream_is_inserted_at_most_every_min_insert_interval(
    settings: Settings, store: Store, topics: None, producer: AIOKafkaProducer
) -> None:
    """Each insert costs the store a part per table it feeds: under a steady stream (here 200
    events/s for 3 s, sent in small bursts) the sink gathers polls so that inserts start at
    least `FK_SINK_MIN_INSERT_INTERVAL_MS` apart, and every event lands."""

    def inserts() -> float:
        return REGISTRY.get_sample_value("fk_sink_batch_rows_count") or 0.0

    consumer = EngagementConsumer(
        settings.model_copy(update={"sink_min_insert_interval_ms": 500}), store
    )
    await consumer.start()
    try:
        await wait_until(lambda: consumer.consumer is not None and consumer.consumer.assignment())
        before = inserts()
        started = time.monotonic()
        for burst in range(60):
            await send_all(
                producer,
                settings.engagement_topic,
                [encode(make_event(eventId=f"steady-{burst}-{i}")) for i in range(10)],
                [b"inf_a"] * 10,
            )
            await asyncio.sleep(max(0.0, started + (burst + 1) * 0.05 - time.monotonic()))
        await wait_until(lambda: consumer.sink.stored == 600)
        elapsed = time.monotonic() - started
        made = inserts() - before
    finally:
        await consumer.stop()
    assert made <= elapsed / 0.5 + 2, f"{made:.0f} inserts in {elapsed:.1f} s"

"""What the README says about consuming from the embedded broker: a consumer without a group gets
its partitions at once; one that subscribes with a group gets them only after the broker has held
the group's first JoinGroup for half the session timeout, which a shorter rebalance timeout does
not shorten. Should a broker upgrade change either, this fails and the README's advice with it."""

import asyncio
import time
import uuid

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from core.kafka import TopicSpec, ensure_topics
from core.settings import Settings

ASSIGNMENT_DEADLINE_SECONDS = 30.0


async def seconds_to_first_partitions(bootstrap: str, topic: str, **config: object) -> float:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, **config)  # type: ignore[arg-type]
    started = time.monotonic()
    await consumer.start()
    try:
        while not consumer.assignment():
            assert time.monotonic() - started < ASSIGNMENT_DEADLINE_SECONDS, "never assigned"
            await consumer.getmany(timeout_ms=50)
        assert consumer.assignment() == {TopicPartition(topic, 0)}
        return time.monotonic() - started
    finally:
        await consumer.stop()


async def test_a_group_waits_half_its_session_timeout_and_no_group_waits_not(
    settings: Settings,
) -> None:
    topic = f"{settings.topic_prefix}groups"
    await ensure_topics(settings.bootstrap, [TopicSpec(topic, 1)])
    session_ms = 4000

    without_group = await seconds_to_first_partitions(settings.bootstrap, topic, group_id=None)
    grouped = [
        seconds_to_first_partitions(
            settings.bootstrap,
            topic,
            group_id=f"{settings.consumer_group}-{uuid.uuid4().hex[:6]}",
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=1000,
            **rebalance,
        )
        for rebalance in ({}, {"rebalance_timeout_ms": 1000})
    ]
    with_group = await asyncio.gather(*grouped)

    assert without_group < 1.0, without_group
    for waited in with_group:
        # The hold, not the client: the group-less consumer took well under it.
        assert waited >= 0.9 * session_ms / 2 / 1000, with_group

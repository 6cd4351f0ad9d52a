"""The trending-hashtags view the store keeps as events land: exact under redelivery."""

import time

from aiokafka import AIOKafkaProducer

from core.clickhouse import Store
from core.settings import Settings
from streams.agents.engagement import EngagementConsumer
from tests.conftest import wait_until
from tests.factories import encode, make_event


async def test_hashtag_minutes_count_each_event_once_as_the_stream_lands(
    settings: Settings, pipeline: EngagementConsumer, producer: AIOKafkaProducer, store: Store
) -> None:
    now = int(time.time() * 1000)
    events = [
        make_event(
            eventId=f"h{i}",
            platform="tiktok",
            timestamp=now - i * 60_000,
            views=100,
            likes=10,
            hashtags=["#a", "#b"] if i % 2 else ["#a"],
        )
        for i in range(10)
    ]
    for e in [*events, *events[:4]]:  # the first four redelivered
        await producer.send_and_wait(settings.engagement_topic, encode(e), key=b"inf_a")

    # The sink's count moves once an insert has returned, views included (a reader on another
    # store thread can see the events' part before the view's part of the same insert).
    await wait_until(lambda: pipeline.sink.stored == len(events))
    rows = await store.query_rows(
        "SELECT tag, sum(events), sum(views), sum(likes) FROM hashtag_minute "
        "WHERE platform = 'tiktok' GROUP BY tag ORDER BY tag"
    )
    assert rows == [("#a", 10, 1000, 100), ("#b", 5, 500, 50)]
    # The view agrees with the events it summarises.
    direct = await store.query_rows(
        "SELECT tag, count(), sum(views), sum(likes) FROM engagement_events "
        "ARRAY JOIN hashtags AS tag WHERE platform = 'tiktok' GROUP BY tag ORDER BY tag"
    )
    assert rows == direct

"""Input the store refuses never stalls ingestion: what a retry cannot cure goes to the
dead-letter topic with the reason, and the events around it land."""

from datetime import UTC, datetime

import httpx
from aiokafka import AIOKafkaProducer

from core.clickhouse import Store
from core.settings import Settings
from streams.agents.engagement import EngagementConsumer
from tests.conftest import read_dead_letters, wait_until
from tests.factories import encode, make_event


def _month_starts(count: int) -> list[int]:
    """Epoch ms of the 15th of `count` consecutive months ending last month."""
    now = datetime.now(UTC)
    year, month = now.year, now.month
    starts = []
    for _ in range(count):
        month -= 1
        if month == 0:
            year, month = year - 1, 12
        starts.append(int(datetime(year, month, 15, tzinfo=UTC).timestamp() * 1000))
    return starts


async def test_one_request_with_events_in_101_months_lands_and_ingestion_goes_on(
    settings: Settings, pipeline: EngagementConsumer, client: httpx.AsyncClient
) -> None:
    spread = [
        make_event(campaignId="cmp_months", eventId=f"month-{i}", timestamp=ts, views=1)
        for i, ts in enumerate(_month_starts(101))
    ]
    assert (await client.post("/events", json=spread)).status_code == 202
    later = make_event(campaignId="cmp_after", eventId="after-months", views=5)
    assert (await client.post("/events", json=later)).status_code == 202

    async def landed() -> bool:
        a = await client.get("/campaigns/cmp_months/metrics")
        b = await client.get("/campaigns/cmp_after/metrics")
        return (
            a.status_code == 200
            and a.json()["total"]["events"] == 101
            and b.status_code == 200
            and b.json()["total"]["events"] == 1
        )

    await wait_until(landed)


async def test_events_the_store_refuses_go_to_the_dead_letter_topic_and_their_neighbours_land(
    settings: Settings,
    store: Store,
    pipeline: EngagementConsumer,
    producer: AIOKafkaProducer,
    client: httpx.AsyncClient,
) -> None:
    # A rule of the store itself (not of our decoder) that refuses some valid events.
    store.command_sync("ALTER TABLE engagement_events ADD CONSTRAINT no_666 CHECK views != 666")
    good = [make_event(campaignId="cmp_refused", eventId=f"ok-{i}", views=10) for i in range(40)]
    refused = [
        make_event(campaignId="cmp_refused", eventId=f"refused-{i}", views=666) for i in range(2)
    ]
    values = [encode(e) for e in good[:13] + refused[:1] + good[13:30] + refused[1:] + good[30:]]
    futures = [await producer.send(settings.engagement_topic, value=v, key=b"k") for v in values]
    for f in futures:
        await f

    async def good_landed() -> bool:
        r = await client.get("/campaigns/cmp_refused/metrics")
        return r.status_code == 200 and r.json()["total"]["events"] == len(good)

    await wait_until(good_landed)
    got = await read_dead_letters(settings, len(refused))
    assert set(got) == {encode(e) for e in refused}, "only the refused events are dead-lettered"
    for headers in got.values():
        assert headers["fk-dlq-reason"] == b"store_rejected"
        assert (
            b"VIOLATED_CONSTRAINT" in headers["fk-dlq-error"]
            or b"no_666" in headers["fk-dlq-error"]
        )
    # And the stream goes on.
    assert (await client.post("/events", json=make_event(campaignId="cmp_next"))).status_code == 202

    async def next_landed() -> bool:
        r = await client.get("/campaigns/cmp_next/metrics")
        return r.status_code == 200 and r.json()["total"]["events"] == 1

    await wait_until(next_landed)

"""Events belong to an organisation: `POST /events` stamps the caller's, a Kafka message names
its own in the `fk-org` header (else `FK_DEFAULT_ORG`), and a duplicate is the same organisation
sending the same `eventId` again, so no organisation can suppress another's events."""

from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from core.clickhouse import Store
from core.settings import Settings
from streams.agents.engagement import EngagementConsumer
from tests.conftest import wait_until
from tests.factories import encode, make_event
from tests.security.conftest import ORG_A, ORG_B, api_client, bearer


async def _orgs_of(store: Store, event_id: str) -> list[str]:
    rows = await store.query_rows(
        "SELECT org FROM engagement_events WHERE event_id = {id:String} ORDER BY org",
        {"id": event_id},
    )
    return [str(r[0]) for r in rows]


async def test_an_event_id_sent_first_by_another_organisation_does_not_suppress_yours(
    settings: Settings, store: Store, topics: None, pipeline: EngagementConsumer
) -> None:
    async with api_client(settings, store) as client:
        theirs = make_event(eventId="shared-1", campaignId="cmp_theirs", views=5)
        r = await client.post("/events", json=theirs, headers=bearer(settings, ORG_B))
        assert r.status_code == 202
        await wait_until(lambda: _orgs_of(store, "shared-1"))
        mine = make_event(eventId="shared-1", campaignId="cmp_mine", views=7)
        r = await client.post("/events", json=mine, headers=bearer(settings, ORG_A))
        assert r.status_code == 202

        async def both_stored() -> bool:
            return await _orgs_of(store, "shared-1") == sorted([ORG_A, ORG_B])

        await wait_until(both_stored)
        # Still one per organisation: a repeat by either is a duplicate of its own.
        r = await client.post("/events", json=mine, headers=bearer(settings, ORG_A))
        assert r.status_code == 202
        sentinel = make_event(campaignId="cmp_mine")
        r = await client.post("/events", json=sentinel, headers=bearer(settings, ORG_A))
        assert r.status_code == 202
        await wait_until(lambda: _orgs_of(store, sentinel["eventId"]))
        assert await _orgs_of(store, "shared-1") == sorted([ORG_A, ORG_B])


async def test_a_kafka_message_belongs_to_its_fk_org_header_else_to_the_default_organisation(
    settings: Settings,
    store: Store,
    pipeline: EngagementConsumer,
    producer: AIOKafkaProducer,
) -> None:
    named = make_event(eventId="with-header")
    unnamed = make_event(eventId="without-header")
    await producer.send(settings.engagement_topic, encode(named), headers=[("fk-org", b"globex")])
    await producer.send(settings.engagement_topic, encode(unnamed))
    await producer.flush()
    await wait_until(lambda: _orgs_of(store, "without-header"))
    await wait_until(lambda: _orgs_of(store, "with-header"))
    assert await _orgs_of(store, "with-header") == ["globex"]
    assert await _orgs_of(store, "without-header") == [settings.default_org]


async def test_a_csv_load_belongs_to_the_uploader_and_dedupes_within_it_only(
    settings: Settings, store: Store, topics: None
) -> None:
    csv = (
        b"campaignId,influencerId,platform,postId,postedAt,views,likes,comments,shares,saves\n"
        b"cmp_csv,inf_csv,tiktok,p1,2026-11-01T10:00:00Z,100,5,1,1,0\n"
    )
    async with api_client(settings, store) as client:
        reports = []
        for org in (ORG_A, ORG_B, ORG_A):
            r = await client.post(
                "/etl/uploads",
                files={"file": ("perf.csv", csv, "text/csv")},
                headers=bearer(settings, org),
            )
            assert r.status_code in (200, 201), r.text
            reports.append(r.json())
    assert [rep["inserted"] for rep in reports] == [1, 1, 0], "the same rows, once per organisation"
    rows = await store.query_rows(
        "SELECT org, count() FROM engagement_events WHERE campaign_id = 'cmp_csv' GROUP BY org"
        " ORDER BY org"
    )
    assert [tuple(r) for r in rows] == [(ORG_A, 1), (ORG_B, 1)]


async def test_events_posted_through_the_api_are_stored_under_the_callers_organisation(
    settings: Settings, store: Store, topics: None, pipeline: EngagementConsumer
) -> None:
    async with api_client(settings, store) as client:
        event = make_event(eventId="posted-by-b")
        r = await client.post("/events", json=[event], headers=bearer(settings, ORG_B))
        assert r.status_code == 202
    await wait_until(lambda: _orgs_of(store, "posted-by-b"))
    assert await _orgs_of(store, "posted-by-b") == [ORG_B]


@pytest.mark.usefixtures("campaign_agent")  # it commands campaigns
async def test_metrics_rankings_trends_and_creator_attributes_are_the_callers_organisations_own(
    settings: Settings, store: Store, topics: None, pipeline: EngagementConsumer
) -> None:
    a, b = bearer(settings, ORG_A), bearer(settings, ORG_B)
    async with api_client(settings, store) as client:
        created = await client.post("/campaigns", json={"name": "Ours"}, headers=a)
        assert created.status_code == 201
        campaign = created.json()["id"]
        ours = make_event(
            campaignId=campaign, influencerId="inf_shared", views=100, likes=10, hashtags=["#ours"]
        )
        theirs = make_event(
            campaignId=campaign,
            influencerId="inf_shared",
            views=900_000,
            likes=1,
            hashtags=["#theirsecret"],
        )
        assert (await client.post("/events", json=ours, headers=a)).status_code == 202
        assert (await client.post("/events", json=theirs, headers=b)).status_code == 202
        # B's CSV names the same creator with another handle and category.
        csv = (
            b"campaignId,influencerId,platform,postId,views,likes,comments,shares,handle,category\n"
            b"cmp_b,inf_shared,instagram,p1,10,1,0,0,@impostor,Scam\n"
        )
        r = await client.post("/etl/uploads", files={"file": ("b.csv", csv, "text/csv")}, headers=b)
        assert r.status_code in (200, 201), r.text
        await wait_until(lambda: _orgs_of(store, theirs["eventId"]))
        await wait_until(lambda: _orgs_of(store, ours["eventId"]))

        metrics = (await client.get(f"/campaigns/{campaign}/metrics", headers=a)).json()
        assert (metrics["total"]["events"], metrics["total"]["views"]) == (1, 100)
        creator = (await client.get("/influencers/inf_shared/metrics", headers=a)).json()
        assert (creator["total"]["events"], creator["total"]["views"]) == (1, 100)
        # B's own view of the same ids holds B's events only.
        theirs_seen = (await client.get(f"/campaigns/{campaign}/metrics", headers=b)).json()
        assert theirs_seen["total"]["views"] == 900_000

        # A ranking is answered at most its TTL plus one scoring old (the organisation's was
        # scored empty at start-up): wait for one that shows events, then it must be A's alone.
        async def ranked() -> list[Any]:
            items: list[Any] = (await client.get("/top-performers", headers=a)).json()["items"]
            return items

        top = await wait_until(ranked)
        assert [(i["influencerId"], i["views"], i["handle"]) for i in top] == [
            ("inf_shared", 100, None)
        ]
        in_category = await client.get("/top-performers", params={"category": "Scam"}, headers=a)
        assert in_category.json()["items"] == []
        tags = (await client.get("/trends/hashtags", headers=a)).json()["items"]
        assert [t["tag"] for t in tags] == ["#ours"]

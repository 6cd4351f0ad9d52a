"""`fk rebuild` on the embedded broker: the store rebuilt from `campaign-events` and
`engagement-events` answers the API as the live one does; a database that is not fresh, and
topics that retention has cut, are refused."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

import streams.rebuild
from core.clickhouse import Store
from core.settings import Settings
from fk import cli
from schemas.campaigns import Campaign, CampaignEvent, CampaignEventType, CampaignStatus
from streams.app import Orchestrator
from streams.rebuild import RebuildRefused, TopicExtent, rebuild
from tests.conftest import wait_until
from tests.factories import encode, make_event
from tests.security.conftest import api_client


def campaign_events(org: str, campaign_id: str) -> list[CampaignEvent]:
    now = datetime.now(UTC)
    draft = Campaign(
        id=campaign_id,
        org=org,
        name=f"Launch {campaign_id}",
        brand="Acme",
        status=CampaignStatus.draft,
        version=1,
        created_at=now,
        updated_at=now,
    )
    scheduled = draft.model_copy(update={"status": CampaignStatus.scheduled, "version": 2})
    return [
        CampaignEvent(
            event_id=uuid.uuid4().hex,
            type=CampaignEventType.created,
            campaign_id=campaign_id,
            org=org,
            version=1,
            occurred_at=now,
            previous=None,
            current=draft,
        ),
        CampaignEvent(
            event_id=uuid.uuid4().hex,
            type=CampaignEventType.status_changed,
            campaign_id=campaign_id,
            org=org,
            version=2,
            occurred_at=now,
            previous=draft,
            current=scheduled,
        ),
    ]


@asynccontextmanager
async def api(settings: Settings, store: Store, token: str) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(settings, store) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


ANSWERS = [
    "/campaigns/cmp_r1",
    "/campaigns/cmp_r2",
    "/campaigns/cmp_r1/metrics",
    "/campaigns/cmp_r2/metrics",
    "/influencers/inf_r0/metrics",
    "/influencers/inf_r2/metrics",
    "/top-performers?campaignId=cmp_r1",
    "/top-performers",
]


async def test_the_rebuilt_store_answers_as_the_live_one(
    settings: Settings,
    store: Store,
    pipeline: Any,
    orchestrator: Orchestrator,
    producer: AIOKafkaProducer,
    token: str,
) -> None:
    events = [
        make_event(
            campaignId=f"cmp_r{1 + i % 2}", influencerId=f"inf_r{i % 3}", views=100 + i, likes=i
        )
        for i in range(120)
    ]
    events += events[:10]  # sent twice, counted once
    for e in events:
        await producer.send(settings.engagement_topic, encode(e), key=e["influencerId"].encode())
    await producer.send(settings.engagement_topic, b"{broken")  # dead-lettered, then and now
    for campaign_id in ("cmp_r1", "cmp_r2"):
        for event in campaign_events("acme", campaign_id):
            await producer.send(
                settings.campaign_topic,
                event.model_dump_json(by_alias=True).encode(),
                key=campaign_id.encode(),
            )
    await producer.flush()

    def stored() -> tuple[Any, ...]:
        """Events, campaigns and their newest version, as the live workers stored them."""
        ((events,),) = store.query_rows_sync("SELECT count() FROM engagement_events")
        ((campaigns, newest),) = store.query_rows_sync(
            "SELECT uniqExact(id), min(version) FROM (SELECT id, max(version) AS version"
            " FROM campaigns GROUP BY id)"
        )
        return events, campaigns, newest

    await wait_until(lambda: stored() == (120, 2, 2))
    # Both APIs start on complete stores: neither serves a ranking scored before the data.
    async with api(settings, store, token) as live:
        expected = {path: (await live.get(path)).json() for path in ANSWERS}

    rebuilt_settings = settings.model_copy(
        update={"clickhouse_database": f"{settings.clickhouse_database}_rebuilt"}
    )
    rebuilt = Store.open(rebuilt_settings.store_url, rebuilt_settings.clickhouse_database)
    try:
        report = await rebuild(rebuilt_settings, rebuilt, timeout=60)
        assert report.campaign_versions == 4
        assert report.engagement_records == len(events) + 1
        assert report.partial == []
        async with api(rebuilt_settings, rebuilt, token) as replayed:
            assert {path: (await replayed.get(path)).json() for path in ANSWERS} == expected
        # Replaying again into the same database would count everything twice.
        with pytest.raises(RebuildRefused, match="already holds"):
            await rebuild(rebuilt_settings, rebuilt, timeout=60)
    finally:
        rebuilt.command_sync(f"DROP DATABASE IF EXISTS `{rebuilt_settings.clickhouse_database}`")
        rebuilt.close()


async def test_topics_cut_by_retention_are_refused_unless_partial_is_allowed(
    settings: Settings, store: Store, topics: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def cut(settings: Settings, names: list[str]) -> dict[str, TopicExtent]:
        return {name: TopicExtent(name, {0: 500}, {0: 500}) for name in names}

    monkeypatch.setattr(streams.rebuild, "_extents", cut)
    with pytest.raises(RebuildRefused, match="500 messages"):
        await rebuild(settings, store, timeout=10)
    report = await rebuild(settings, store, allow_partial=True, timeout=10)
    assert report.partial == [settings.campaign_topic, settings.engagement_topic]


def test_fk_rebuild_fills_a_new_database_and_refuses_what_cannot_work(
    settings: Settings,
    topics: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(cli, "_settings", lambda: settings)
    assert cli.main(["rebuild", "--database", settings.clickhouse_database]) == 2
    assert "must name a new database" in capsys.readouterr().err
    target = f"{settings.clickhouse_database}_cli"
    try:
        assert cli.main(["rebuild", "--database", target, "--campaigns-only"]) == 0
        out = capsys.readouterr().out  # log lines, then the report
        printed = orjson.loads(out[out.index("{\n") :])
        assert printed["database"] == target
        assert printed["partial"] == []
    finally:
        Store.open(settings.store_url, target, migrate=False).command_sync(
            f"DROP DATABASE IF EXISTS `{target}`"
        )
    embedded = settings.model_copy(update={"kafka_bootstrap": None, "clickhouse_url": None})
    monkeypatch.setattr(cli, "_settings", lambda: embedded)
    assert cli.main(["rebuild", "--database", "fk_new"]) == 2
    assert "holds the embedded store" in capsys.readouterr().err

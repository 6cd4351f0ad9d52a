"""`fk rebuild` on the embedded broker: the store rebuilt from `campaign-events` and
`engagement-events` answers the API as the live one does; a database that is not fresh, and
topics that retention has cut, are refused."""

import asyncio
import time
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


PLATFORM_ANSWERS = [
    "/campaigns",
    "/campaigns?status=live",
    "/campaigns/cmp_p1",
    "/campaigns/cmp_p2",
    "/campaigns/cmp_p3",
    "/activity/campaigns?limit=100",
    "/campaigns/cmp_p1/metrics",
    "/campaigns/cmp_p2/metrics",
    "/influencers/inf_p0/metrics",
    "/influencers/inf_p3/metrics",
    "/engagement/campaigns",
    "/top-performers?campaignId=cmp_p1",
    "/top-performers?platform=tiktok",
    "/top-performers",
    "/trends/hashtags",
]


def timeless(body: Any) -> Any:
    """A body without the moment it was answered at (`asOf`)."""
    if isinstance(body, dict):
        return {k: timeless(v) for k, v in body.items() if k != "asOf"}
    if isinstance(body, list):
        return [timeless(v) for v in body]
    return body


async def answers(api: httpx.AsyncClient) -> dict[str, tuple[int, str | None, Any]]:
    """Each path's status, ETag and body, once the campaign's ranking counts every view its
    metrics count (a ranking may be served up to one scoring old)."""

    async def answered() -> dict[str, tuple[int, str | None, Any]] | None:
        responses = {path: await api.get(path) for path in PLATFORM_ANSWERS}
        bodies = {
            p: (r.status_code, r.headers.get("etag"), timeless(r.json()))
            for p, r in responses.items()
        }
        ranked = bodies["/top-performers?campaignId=cmp_p1"][2]["items"]
        views = bodies["/campaigns/cmp_p1/metrics"][2]["total"]["views"]
        return bodies if sum(item["views"] for item in ranked) == views else None

    settled: dict[str, tuple[int, str | None, Any]] = await wait_until(answered, timeout=30)
    return settled


@pytest.mark.usefixtures("pipeline", "orchestrator", "campaign_agent")
async def test_fk_rebuild_of_what_the_platform_was_sent_answers_as_the_live_store(
    settings: Settings,
    store: Store,
    client: httpx.AsyncClient,
    token: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Campaign commands and events through the API, the live workers storing them; then
    `fk rebuild` into a new database, and the API on it answers every read as on the live one,
    and the campaigns table holds the same newest versions."""

    async def command(method: str, path: str, version: int | None = None, **body: Any) -> int:
        headers = {"If-Match": f'"{version}"'} if version else {}
        response = await client.request(method, path, json=body, headers=headers)
        assert response.status_code in (200, 201), response.text
        new_version: int = response.json()["version"]
        return new_version

    v = await command("POST", "/campaigns", id="cmp_p1", name="Spring", budget=1000)
    v = await command("PATCH", "/campaigns/cmp_p1", v, name="Spring launch", platforms=["tiktok"])
    for status in ("scheduled", "live"):
        v = await command("PATCH", "/campaigns/cmp_p1", v, status=status)
    v = await command("POST", "/campaigns", id="cmp_p2", name="Autumn", brand="Acme")
    for status in ("scheduled", "cancelled"):
        v = await command("PATCH", "/campaigns/cmp_p2", v, status=status)
    await command("POST", "/campaigns", id="cmp_p3", name="Draft only")

    now_ms = int(time.time() * 1000)
    events = [
        make_event(
            campaignId=f"cmp_p{1 + i % 2}",
            influencerId=f"inf_p{i % 4}",
            platform=("tiktok", "instagram")[i % 2],
            postId=f"post_{i % 7}",
            # Spread over two days (the hour, day and total windows differ), a second apart.
            timestamp=now_ms - (i % 5) * 11 * 3600_000 - 60_000 - i * 1000,
            views=100 + i,
            likes=i % 13,
            comments=i % 3,
            shares=i % 2,
            followers=1000 + i,
            hashtags=[("spring", "launch", "acme")[i % 3]],
        )
        for i in range(150)
    ]
    for batch in (events[:100], events[100:], events[:20]):  # the last 20 again: counted once
        response = await client.post("/events", json=batch)
        assert response.status_code == 202, response.text

    def newest(st: Store) -> list[tuple[Any, ...]]:
        """Each campaign's newest version (the table keeps the newest once its parts merge)."""
        return st.query_rows_sync(
            "SELECT org, id, max(version), argMax(status, version), argMax(body, version)"
            " FROM campaigns GROUP BY org, id ORDER BY org, id"
        )

    def stored() -> tuple[Any, ...]:
        ((count,),) = store.query_rows_sync("SELECT count() FROM engagement_events")
        return count, [(org, id_, version) for org, id_, version, *_ in newest(store)]

    complete = (150, [("acme", "cmp_p1", 4), ("acme", "cmp_p2", 3), ("acme", "cmp_p3", 1)])
    await wait_until(lambda: stored() == complete, timeout=30)
    async with api(settings, store, token) as live:
        expected = await answers(live)
    assert expected["/campaigns/cmp_p1"][:2] == (200, '"4"')
    assert expected["/campaigns/cmp_p1/metrics"][2]["total"]["events"] == 75
    assert expected["/top-performers"][2]["items"]
    assert expected["/trends/hashtags"][2]["items"]

    target = f"{settings.clickhouse_database}_replayed"
    # Messages without an `fk-org` header would land in `demo`: the API's carry the header.
    monkeypatch.setattr(
        cli, "_settings", lambda: settings.model_copy(update={"default_org": "demo"})
    )
    try:
        # The command runs its own event loop, beside the live workers'.
        rebuilding = ["rebuild", "--database", target, "--timeout", "60"]
        assert await asyncio.to_thread(cli.main, rebuilding) == 0
        out = capsys.readouterr().out
        printed = orjson.loads(out[out.index("{\n") :])
        # 8 campaign versions; 150 events sent 170 times (duplicates are counted once).
        assert (printed["campaignVersions"], printed["engagementRecords"]) == (8, 170)
        rebuilt_settings = settings.model_copy(update={"clickhouse_database": target})
        rebuilt = Store.open(settings.store_url, target, migrate=False)
        try:
            async with api(rebuilt_settings, rebuilt, token) as replayed:
                assert await answers(replayed) == expected
            assert newest(rebuilt) == newest(store)
        finally:
            rebuilt.close()
    finally:
        Store.open(settings.store_url, target, migrate=False).command_sync(
            f"DROP DATABASE IF EXISTS `{target}`"
        )


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

"""The campaign ledger as the sole writer of campaigns (the embedded platform, whose chDB store no
other process can open): a campaign's newest version comes from what the process wrote or read,
never behind a version written by another path of the same process."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import REGISTRY

from core.clickhouse import Store
from core.ledger import (
    CampaignLedger,
    CampaignNotFound,
    VersionMismatch,
    body_hash,
    keyed_id,
)
from core.repositories import campaigns as campaign_store
from core.settings import Settings
from schemas.campaigns import Campaign, CampaignCreate, CampaignPatch, CampaignStatus
from schemas.commands import Command, Outcome, reply_client
from streams.agents.commands import CampaignAgent

# Campaign commands are answered by the campaign agent.
pytestmark = pytest.mark.usefixtures("campaign_agent")


@pytest.fixture
async def ledger(
    settings: Settings, store: Store, producer: AIOKafkaProducer, topics: None
) -> AsyncIterator[CampaignLedger]:
    ledger = CampaignLedger(settings, store, producer, sole_writer=True)
    yield ledger
    await ledger.stop()


def restarted(agent: CampaignAgent) -> CampaignAgent:
    """The agent as a new owner that finds nothing in its table (the embedded broker forgot
    the changelog): it must fall back on the store."""
    return CampaignAgent(agent.app, agent.settings, agent.store, {}, sole_writer=True)


def command(org: str, body: CampaignCreate, key: str) -> Command:
    return Command(
        id=uuid.uuid4().hex,
        client="test",
        kind="create",
        org=org,
        campaign_id=keyed_id(org, key),
        body=body.model_dump(mode="json", by_alias=True, exclude_none=True),
        idempotency_key=key,
        body_hash=body_hash(body),
    )


async def test_the_sole_writer_reads_campaigns_it_wrote_without_the_store(
    settings: Settings, store: Store, producer: AIOKafkaProducer, ledger: CampaignLedger
) -> None:
    """Rows taken from the store behind the ledger's back (no real writer does that) do not
    change its answer, while a ledger that is not the sole writer reads the store."""
    campaign, _ = await ledger.create("acme", CampaignCreate(name="Launch", id="cmp_sole"))
    await store.command("TRUNCATE TABLE campaigns")
    assert (await ledger.get("acme", "cmp_sole")).version == campaign.version
    changed = await ledger.update(
        "acme", "cmp_sole", CampaignPatch(budget=10), expected_version=campaign.version
    )
    assert changed.version == campaign.version + 1
    with pytest.raises(CampaignNotFound):
        await ledger.get("globex", "cmp_sole")
    shared = CampaignLedger(settings, store, producer)
    assert (await shared.get("acme", "cmp_sole")).version == changed.version  # stored again
    await store.command("TRUNCATE TABLE campaigns")
    with pytest.raises(CampaignNotFound):
        await shared.get("acme", "cmp_sole")
    await shared.stop()


async def test_the_agent_decides_from_its_table_and_reads_follow_what_was_stored(
    store: Store, ledger: CampaignLedger
) -> None:
    """The campaign agent is the version authority: rows removed from the store behind its back
    do not change its decision. Reads come from what was stored, and an older version stored
    later (a replayed event) does not move them back."""
    campaign, _ = await ledger.create("acme", CampaignCreate(name="Launch", id="cmp_fwd"))
    await store.command("TRUNCATE TABLE campaigns")
    updated = await ledger.update("acme", "cmp_fwd", CampaignPatch(budget=6), expected_version=1)
    assert updated.version == 2
    with pytest.raises(VersionMismatch):
        await ledger.update("acme", "cmp_fwd", CampaignPatch(budget=7), expected_version=1)
    assert (await ledger.get("acme", "cmp_fwd")).version == 2
    await campaign_store.insert_campaigns(store, [campaign])
    assert (await ledger.get("acme", "cmp_fwd")).version == 2


async def test_one_of_many_concurrent_changes_at_one_version_wins(ledger: CampaignLedger) -> None:
    campaign, _ = await ledger.create("acme", CampaignCreate(name="Race", id="cmp_race"))

    async def schedule() -> bool:
        try:
            await ledger.update(
                "acme",
                "cmp_race",
                CampaignPatch(status=CampaignStatus.scheduled),
                expected_version=campaign.version,
            )
        except VersionMismatch:
            return False
        return True

    outcomes = await asyncio.gather(*(schedule() for _ in range(20)))
    assert outcomes.count(True) == 1
    assert (await ledger.get("acme", "cmp_race")).version == campaign.version + 1


async def test_an_id_read_as_absent_can_still_be_created(ledger: CampaignLedger) -> None:
    with pytest.raises(CampaignNotFound):
        await ledger.get("acme", "cmp_later")
    created, _ = await ledger.create("acme", CampaignCreate(name="Later", id="cmp_later"))
    assert (await ledger.get("acme", "cmp_later")).version == created.version


async def test_idempotency_keys_recorded_before_the_agent_began_are_found(
    campaign_agent: CampaignAgent, ledger: CampaignLedger
) -> None:
    body = CampaignCreate(name="Once")
    first, replayed = await ledger.create("acme", body, idempotency_key="k-1")
    assert not replayed
    later = restarted(campaign_agent)
    again = await later.handle(command("acme", body, "k-1"))
    assert again.outcome is Outcome.replayed
    assert again.campaign is not None
    assert again.campaign["id"] == first.id
    other = await later.handle(command("acme", CampaignCreate(name="Other"), "k-1"))
    assert other.outcome is Outcome.key_reused
    other_org = await later.handle(command("globex", body, "k-1"))
    assert other_org.outcome is Outcome.changed
    assert other_org.campaign is not None
    assert other_org.campaign["id"] != first.id


async def test_keys_the_sole_writer_recorded_are_known_without_the_store(
    store: Store, ledger: CampaignLedger
) -> None:
    body = CampaignCreate(name="Once")
    first, _ = await ledger.create("acme", body, idempotency_key="k-mem")
    await store.command("TRUNCATE TABLE campaign_idempotency_keys")
    again, replayed = await ledger.create("acme", body, idempotency_key="k-mem")
    assert replayed
    assert again.id == first.id


async def test_recorded_keys_past_the_bound_are_still_found(
    monkeypatch: pytest.MonkeyPatch, campaign_agent: CampaignAgent, store: Store
) -> None:
    """A new owner (empty table) knows the keys from the store, and from memory past the
    bound."""
    monkeypatch.setattr("core.ledger.RecordedKeys._MAX_RECORDED", 3)
    later = restarted(campaign_agent)
    made = {}
    for n in range(8):
        made[n] = await later.handle(command("acme", CampaignCreate(name=f"c{n}"), f"b-{n}"))
        assert made[n].outcome is Outcome.changed
        # As the worker's projection stores it.
        await campaign_store.insert_campaigns(store, [Campaign.model_validate(made[n].campaign)])
    again_later = restarted(campaign_agent)
    for agent in (later, again_later):
        for n in range(8):
            again = await agent.handle(command("acme", CampaignCreate(name=f"c{n}"), f"b-{n}"))
            assert again.outcome is Outcome.replayed, n
            assert again.campaign == made[n].campaign


async def test_each_organisations_campaign_of_one_id_is_its_own(
    settings: Settings, store: Store, producer: AIOKafkaProducer, ledger: CampaignLedger
) -> None:
    """The sole writer's memory, its existence check and its version check are per
    (organisation, id): B's campaign of A's id is created, read and changed on its own."""
    await ledger.create("acme", CampaignCreate(name="A", id="cmp_both", budget=1))
    with pytest.raises(CampaignNotFound):
        await ledger.get("globex", "cmp_both")
    theirs, _ = await ledger.create("globex", CampaignCreate(name="B", id="cmp_both"))
    assert (theirs.org, theirs.version, theirs.name) == ("globex", 1, "B")
    changed = await ledger.update("acme", "cmp_both", CampaignPatch(budget=2), expected_version=1)
    assert changed.version == 2
    assert await ledger.get("globex", "cmp_both") == theirs
    with pytest.raises(VersionMismatch):
        await ledger.update("acme", "cmp_both", CampaignPatch(budget=3), expected_version=1)
    renamed = await ledger.update(
        "globex", "cmp_both", CampaignPatch(name="B2"), expected_version=1
    )
    assert (renamed.version, renamed.name, renamed.budget) == (2, "B2", None)
    for reader in (ledger, CampaignLedger(settings, store, producer)):
        assert await reader.get("acme", "cmp_both") == changed
        assert await reader.get("globex", "cmp_both") == renamed
        await reader.stop()
    assert await campaign_store.campaign_by_id(store, "acme", "cmp_both") == changed
    assert await campaign_store.campaign_by_id(store, "globex", "cmp_both") == renamed
    assert await campaign_store.campaign_by_id(store, "initech", "cmp_both") is None


async def test_concurrent_changes_of_two_organisations_campaigns_of_one_id_both_win(
    ledger: CampaignLedger,
) -> None:
    for org in ("acme", "globex"):
        await ledger.create(org, CampaignCreate(name=org, id="cmp_race_both"))
    changed = await asyncio.gather(
        *(
            ledger.update(
                org,
                "cmp_race_both",
                CampaignPatch(status=CampaignStatus.scheduled),
                expected_version=1,
            )
            for org in ("acme", "globex")
        )
    )
    assert [(c.org, c.version) for c in changed] == [("acme", 2), ("globex", 2)]


async def test_each_stage_of_a_commands_wait_is_measured(ledger: CampaignLedger) -> None:
    def count(stage: str) -> float:
        value = REGISTRY.get_sample_value(
            "fk_campaign_command_wait_seconds_count", {"stage": stage}
        )
        return value or 0.0

    before = {stage: count(stage) for stage in ("delivery", "answer", "store")}
    await ledger.create("acme", CampaignCreate(name="measured"))
    assert {stage: count(stage) - before[stage] for stage in before} == {
        "delivery": 1,
        "answer": 1,
        "store": 1,
    }


async def test_one_clients_answers_spread_over_the_replies_partitions(
    settings: Settings, ledger: CampaignLedger
) -> None:
    """The embedded broker lists every message of a partition on each fetch that finds new
    ones there, so answers go to every partition of the replies topic (by command), and the
    client reads them all."""
    created = await asyncio.gather(
        *(ledger.create("acme", CampaignCreate(name=f"Spread {i}")) for i in range(24))
    )
    assert len({c.id for c, _ in created}) == 24
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        topic = settings.campaign_replies_topic
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        assert len(partitions) == settings.campaign_partitions > 1
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        mine: dict[int, int] = {}
        for _ in range(20):
            for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                for record in records:
                    if reply_client(record.key) == ledger.client_id.encode():
                        mine[tp.partition] = mine.get(tp.partition, 0) + 1
            if sum(mine.values()) >= 24:
                break
    finally:
        await consumer.stop()
    assert sum(mine.values()) == 24
    assert len(mine) > 1, f"every answer on one partition: {mine}"

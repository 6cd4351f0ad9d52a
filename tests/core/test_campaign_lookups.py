"""A sole writer's campaign look-ups (`newest_campaign`): what it wrote or read comes from
memory, a campaign stored before it began from the store, and an id never stored is known absent
without a query, also past the bound on what it holds in memory."""

from datetime import UTC, datetime
from typing import Any

import pytest

from core import lifecycle
from core.clickhouse import Store
from core.repositories import campaigns as campaign_store
from schemas.campaigns import Campaign, CampaignCreate


def campaign(org: str, campaign_id: str) -> Campaign:
    body = CampaignCreate(name=campaign_id)
    return lifecycle.create(org, campaign_id, body, datetime.now(UTC)).current


@pytest.fixture
def lookups(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The queries of campaign rows the store answers, from now on."""
    seen: list[str] = []
    query_rows = store.query_rows

    async def counted(sql: str, parameters: dict[str, Any] | None = None) -> Any:
        if "FROM campaigns WHERE" in sql:
            seen.append(parameters["id"] if parameters else "")
        return await query_rows(sql, parameters)

    monkeypatch.setattr(store, "query_rows", counted)
    return seen


async def newest(store: Store, org: str, campaign_id: str) -> Campaign | None:
    return await campaign_store.newest_campaign(store, org, campaign_id, sole_writer=True)


async def test_a_new_id_is_absent_without_a_query_and_a_stored_one_is_read(
    store: Store, lookups: list[str]
) -> None:
    before = campaign("acme", "cmp_before")
    # Stored by an earlier process: not through this one's `insert_campaigns`.
    rows = campaign_store.campaign_rows([before])
    await store.insert("campaigns", list(zip(*rows, strict=True)), campaign_store.CAMPAIGN_COLUMNS)
    assert await newest(store, "acme", "cmp_new") is None
    assert lookups == []
    found = await newest(store, "acme", "cmp_before")
    assert found is not None
    assert found.id == "cmp_before"
    assert lookups == ["cmp_before"]
    # The same id in another organisation is another campaign, never stored.
    assert await newest(store, "globex", "cmp_before") is None
    written = campaign("acme", "cmp_written")
    await campaign_store.insert_campaigns(store, [written])
    assert await newest(store, "acme", "cmp_written") == written
    assert lookups == ["cmp_before"]


@pytest.mark.parametrize("looked_up_first", [True, False])
async def test_campaigns_written_past_the_bound_are_still_found(
    store: Store, lookups: list[str], monkeypatch: pytest.MonkeyPatch, looked_up_first: bool
) -> None:
    """Written campaigns dropped from memory at the bound are kept as hashes, whether or not
    the stored ones were loaded yet."""
    monkeypatch.setattr(campaign_store, "_MAX_KNOWN", 2)
    if looked_up_first:
        assert await newest(store, "acme", "cmp_none") is None
    written = [campaign("acme", f"cmp_{n}") for n in range(5)]
    for one in written:
        await campaign_store.insert_campaigns(store, [one])
    for one in written:
        found = await newest(store, "acme", one.id)
        assert found is not None
        assert found.id == one.id
    assert await newest(store, "acme", "cmp_5") is None
    assert "cmp_5" not in lookups

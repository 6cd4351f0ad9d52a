"""The campaign tables: `campaigns` (every version of every campaign, written by the campaign
worker, read by the worker, the API and the insight detector) and `campaign_idempotency_keys`
(POST /campaigns' Idempotency-Key)."""

import asyncio
import weakref
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from core.changes import CAMPAIGN_WRITES
from core.clickhouse import Store
from schemas.campaigns import Campaign, CampaignStatus
from schemas.dashboard import CampaignActivity, CampaignActivityList

CAMPAIGN_COLUMNS = (
    "id",
    "org",
    "name",
    "brand",
    "status",
    "version",
    "body",
    "created_at",
    "updated_at",
    "start_date",
    "end_date",
)


def campaign_rows(campaigns: Sequence[Campaign]) -> list[tuple[Any, ...]]:
    """Rows of `campaigns` in `CAMPAIGN_COLUMNS` order."""
    return [
        (
            c.id,
            c.org,
            c.name,
            c.brand or "",
            c.status.value,
            c.version,
            c.model_dump_json(by_alias=True),
            c.created_at,
            c.updated_at,
            c.start_date,
            c.end_date,
        )
        for c in campaigns
    ]


CampaignKey = tuple[str, str]
"""(organisation, campaign id): a campaign id is unique within its organisation only."""


class _Campaigns:
    """Per store, for a sole writer's look-ups (`newest_campaign`): the newest version of each
    campaign this process wrote or read (None: known absent), and which (organisation, id)
    pairs the store held before (64-bit hashes, sorted, 8 bytes each, loaded on first need):
    an id in neither was never stored, which a create of a new id learns without a query."""

    def __init__(self) -> None:
        self.held: dict[CampaignKey, Campaign | None] = {}
        self.stored: npt.NDArray[np.int64] | None = None
        self.forgotten: list[int] = []
        """Hashes of written campaigns dropped from `held` before `stored` was loaded."""
        self._loading: asyncio.Lock | None = None

    def remember(self, campaigns: Iterable[Campaign]) -> None:
        if len(self.held) >= _MAX_KNOWN:  # bounded: the written ones are kept as hashes
            self._fold([hash(k) for k, v in self.held.items() if v is not None])
            self.held = {}
        for campaign in campaigns:
            key = (campaign.org, campaign.id)
            held = self.held.get(key)
            if held is None or held.version < campaign.version:
                self.held[key] = campaign

    def _fold(self, hashes: list[int]) -> None:
        if self.stored is None:
            self.forgotten.extend(hashes)
        else:
            self.stored = np.union1d(self.stored, np.array(hashes, dtype=np.int64))

    async def load(self, store: Store) -> npt.NDArray[np.int64]:
        """The hashes of the campaigns stored before, loaded once."""
        if self.stored is None:
            self._loading = self._loading or asyncio.Lock()
            async with self._loading:
                if self.stored is None:
                    loaded = await _campaign_key_hashes(store)
                    # Written while it loaded: in `held`, or folded meanwhile.
                    self.stored = np.union1d(loaded, np.array(self.forgotten, dtype=np.int64))
                    self.forgotten = []
        return self.stored

    async def may_be_stored(self, store: Store, key: CampaignKey) -> bool:
        stored = await self.load(store)
        at = int(np.searchsorted(stored, hash(key)))
        return at < len(stored) and int(stored[at]) == hash(key)


_KNOWN: "weakref.WeakKeyDictionary[Store, _Campaigns]" = weakref.WeakKeyDictionary()
_MAX_KNOWN = 200_000


def _known(store: Store) -> _Campaigns:
    known = _KNOWN.get(store)
    if known is None:
        known = _KNOWN[store] = _Campaigns()
    return known


def _remember(store: Store, campaigns: Iterable[Campaign]) -> None:
    _known(store).remember(campaigns)


async def _campaign_key_hashes(store: Store) -> npt.NDArray[np.int64]:
    return await _pair_hashes(store, "SELECT DISTINCT org, id FROM campaigns")


async def _pair_hashes(store: Store, sql: str) -> npt.NDArray[np.int64]:
    """A 64-bit hash (this process's) of every (first, second) column pair `sql` selects,
    sorted (for `np.searchsorted`)."""
    columns = await store.query_columns(sql)
    if not columns:
        return np.zeros(0, dtype=np.int64)
    firsts, seconds = columns
    pairs = zip(firsts, seconds, strict=True)
    return np.sort(np.fromiter(map(hash, pairs), np.int64, len(seconds)))


async def insert_campaigns(store: Store, campaigns: Sequence[Campaign]) -> None:
    """Every write of campaign rows in any process goes through here."""
    if campaigns:
        await store.insert_gathered("campaigns", campaign_rows(campaigns), CAMPAIGN_COLUMNS)
        CAMPAIGN_WRITES.bump()
        _remember(store, campaigns)


async def load_campaign_keys(store: Store) -> None:
    """Load, for a sole writer, which campaigns the store holds (`newest_campaign` would on its
    first look-up of an id it does not hold in memory): at start, not in a first command."""
    await _known(store).load(store)


async def newest_campaign(
    store: Store, org: str, campaign_id: str, *, sole_writer: bool = False
) -> Campaign | None:
    """`campaign_by_id`; for the sole writer of campaigns (the embedded platform, whose API and
    worker share one process), from what this process wrote or read before when it can: every
    write passes `insert_campaigns`, so nothing newer can be in the store, and an id neither
    written since nor stored before is absent without a query."""
    if not sole_writer:
        return await campaign_by_id(store, org, campaign_id)
    known = _known(store)
    key = (org, campaign_id)
    if key in known.held:
        return known.held[key]
    if not await known.may_be_stored(store, key):
        return None
    found = await campaign_by_id(store, org, campaign_id)
    if found is None:
        known.held.setdefault(key, None)
    else:
        _remember(store, [found])
    return known.held.get(key, found)


async def campaign_by_id(store: Store, org: str, campaign_id: str) -> Campaign | None:
    """The newest version of the organisation's campaign of this id (another organisation's
    campaign of the same id is another campaign)."""
    rows = await store.query_rows(
        "SELECT body FROM campaigns WHERE org = {org:String} AND id = {id:String}"
        " ORDER BY version DESC LIMIT 1",
        {"org": org, "id": campaign_id},
    )
    return Campaign.model_validate_json(rows[0][0]) if rows else None


async def created_campaigns(store: Store, keys: list[CampaignKey]) -> dict[CampaignKey, bool]:
    """Which of these (organisation, id) campaigns were created: True for each, the others
    absent."""
    if not keys:
        return {}
    rows = await store.query_rows(
        "SELECT DISTINCT org, id FROM campaigns"
        " WHERE org IN {orgs:Array(String)} AND id IN {ids:Array(String)}",
        {"orgs": sorted({org for org, _ in keys}), "ids": sorted({id_ for _, id_ in keys})},
    )
    wanted = set(keys)
    return {key: True for org, id_ in rows if (key := (str(org), str(id_))) in wanted}


async def due_campaigns(store: Store, now: datetime, limit: int = 1000) -> list[Campaign]:
    """Campaigns whose start (scheduled) or end (live) date has passed, at their newest version
    (each organisation's campaign of an id on its own). Only campaigns with some version that
    would be due are read whole (the newest version of a due campaign is such a version): the
    clock asks every second, and reading every campaign's body each time cost ~3x more at 15k
    campaigns."""
    rows = await store.query_rows(
        "SELECT body FROM ("
        "  SELECT argMax(body, version) AS body, argMax(status, version) AS st,"
        "         argMax(start_date, version) AS sd, argMax(end_date, version) AS ed"
        "  FROM campaigns WHERE (org, id) IN (SELECT org, id FROM campaigns"
        "     WHERE (status = 'scheduled' AND start_date <= {now:DateTime64(3, 'UTC')})"
        "        OR (status = 'live' AND end_date <= {now:DateTime64(3, 'UTC')}))"
        "  GROUP BY org, id"
        ") WHERE (st = 'scheduled' AND sd <= {now:DateTime64(3, 'UTC')})"
        "     OR (st = 'live' AND ed <= {now:DateTime64(3, 'UTC')}) LIMIT {limit:UInt32}",
        {"now": now, "limit": limit},
    )
    return [Campaign.model_validate_json(body) for (body,) in rows]


class RecordedKey(NamedTuple):
    """What an Idempotency-Key was first used for."""

    body_sha256: str
    campaign_id: str


async def idempotency_key(store: Store, org: str, key: str) -> RecordedKey | None:
    """The body hash and campaign recorded for this organisation's key, if any."""
    rows = await store.query_rows(
        f"SELECT {', '.join(RecordedKey._fields)} FROM campaign_idempotency_keys "
        "WHERE org = {org:String} AND key = {key:String} ORDER BY created_at LIMIT 1",
        {"org": org, "key": key},
    )
    return RecordedKey(*map(str, rows[0])) if rows else None


async def idempotency_key_hashes(store: Store) -> npt.NDArray[np.int64]:
    """A 64-bit hash (this process's) of every recorded (organisation, key), sorted."""
    return await _pair_hashes(store, "SELECT org, key FROM campaign_idempotency_keys")


async def record_idempotency_key(
    store: Store, org: str, key: str, body_sha256: str, campaign_id: str
) -> None:
    await store.insert_gathered(
        "campaign_idempotency_keys",
        [(org, key, body_sha256, campaign_id)],
        ("org", "key", "body_sha256", "campaign_id"),
    )


async def list_campaigns(
    store: Store, org: str, status: CampaignStatus | None, after: str, limit: int
) -> list[Campaign]:
    """One organisation's campaigns by id, after the cursor id."""
    rows = await store.query_rows(
        "SELECT argMax(body, version) FROM campaigns"
        " WHERE org = {org:String} AND id > {after:String}"
        " GROUP BY id"
        " HAVING {status:String} = '' OR argMax(status, version) = {status:String}"
        " ORDER BY id LIMIT {limit:UInt32}",
        {"org": org, "after": after, "status": status.value if status else "", "limit": limit},
    )
    return [Campaign.model_validate_json(body) for (body,) in rows]


async def recent_campaigns(store: Store, org: str, limit: int) -> CampaignActivityList:
    """The organisation's campaigns at their newest version, most recently changed first."""
    rows = await store.query_rows(
        "SELECT argMax(body, version), max(updated_at) AS changed FROM campaigns"
        " WHERE org = {org:String} GROUP BY id ORDER BY changed DESC, id ASC LIMIT {limit:UInt32}",
        {"org": org, "limit": limit},
    )
    items = []
    for body, _changed in rows:
        campaign = Campaign.model_validate_json(body)
        items.append(
            CampaignActivity(
                campaign_id=campaign.id,
                name=campaign.name,
                brand=campaign.brand,
                status=campaign.status,
                version=campaign.version,
                updated_at=campaign.updated_at,
            )
        )
    return CampaignActivityList(items=items)


async def campaign_names(store: Store, org: str, campaign_ids: set[str]) -> dict[str, str]:
    """The newest names of those of `campaign_ids` the organisation created (another
    organisation's campaign of an id is not named)."""
    if not campaign_ids:
        return {}
    rows = await store.query_rows(
        "SELECT id, argMax(name, version) FROM campaigns"
        " WHERE org = {org:String} AND id IN {ids:Array(String)} GROUP BY id LIMIT {limit:UInt32}",
        {"org": org, "ids": sorted(campaign_ids), "limit": len(campaign_ids)},
    )
    return dict(rows)


async def live_campaigns(store: Store, limit: int = 1_000_000) -> set[CampaignKey]:
    """(organisation, campaign id) of every campaign whose newest version is live."""
    rows = await store.query_rows(
        "SELECT org, id FROM campaigns GROUP BY org, id"
        " HAVING argMax(status, version) = 'live' LIMIT {limit:UInt32}",
        {"limit": limit},
    )
    return {(org, campaign_id) for org, campaign_id in rows}


async def campaign_organisations(store: Store, limit: int) -> list[str]:
    """Up to `limit` organisations that own campaigns."""
    rows = await store.query_rows(
        "SELECT DISTINCT org FROM campaigns LIMIT {n:UInt32}", {"n": limit}
    )
    return [org for (org,) in rows]


async def count_campaign_rows(store: Store) -> int:
    """How many campaign versions the store holds."""
    rows = await store.query_rows("SELECT count() FROM campaigns")
    return int(rows[0][0])

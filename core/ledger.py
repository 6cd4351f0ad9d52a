"""The campaign command ledger: validates a command against the campaign's newest version,
publishes the resulting event to `campaign-events`, then records the version in the store.

A campaign is an (organisation, id): an id is unique within its organisation only, and another
organisation's campaign of the same id is never read, checked against or changed. Commands on
one campaign are serialised by an in-process lock, and the store is the version authority, so
within one command-writing process exactly one of many concurrent changes carrying the same
version wins. Several processes issuing commands for the same campaign at the same moment are
not serialised (see docs/orchestrator.md, "Concurrency").
"""

import asyncio
import hashlib
import uuid
import zlib
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from core import lifecycle, queries
from core.changes import STORED
from core.clickhouse import Store
from core.settings import Settings
from schemas.campaigns import (
    Campaign,
    CampaignCreate,
    CampaignEvent,
    CampaignPatch,
    CampaignStatus,
)

log = structlog.get_logger(__name__)

_STRIPES = 1024


class CampaignNotFound(Exception):
    pass


class CampaignExists(Exception):
    pass


class VersionMismatch(Exception):
    def __init__(self, current: int) -> None:
        self.current = current
        super().__init__(f"current version is {current}")


class IdempotencyKeyReused(Exception):
    """The same Idempotency-Key came with a different body."""


class CommandNotPublished(Exception):
    """The broker did not acknowledge the event: nothing changed."""


class _RecordedKeys:
    """For the sole writer of campaigns: which Idempotency-Keys were ever recorded, so a new key
    (nearly every create) is known new without a store query. The keys stored before this
    process began are held as sorted 64-bit hashes (8 bytes each, loaded on first use), those
    it records since in full; a hash match is confirmed by the store."""

    _MAX_RECORDED = 100_000

    def __init__(self, store: Store) -> None:
        self.store = store
        self._stored: npt.NDArray[np.int64] | None = None
        self._loading = asyncio.Lock()
        self._recorded: dict[tuple[str, str], tuple[str, str]] = {}

    async def find(self, org: str, key: str) -> tuple[str, str] | None:
        """(body hash, campaign id) recorded for the key, if any."""
        recorded = self._recorded.get((org, key))
        if recorded is not None:
            return recorded
        stored = await self._load()
        at = np.searchsorted(stored, hash((org, key)))
        if at < len(stored) and stored[at] == hash((org, key)):
            return await queries.idempotency_key(self.store, org, key)
        return None

    def add(self, org: str, key: str, digest: str, campaign_id: str) -> None:
        if len(self._recorded) >= self._MAX_RECORDED and self._stored is not None:
            # Bounded: the oldest become hashes like the keys stored before (confirmed by the
            # store when matched).
            hashes = np.fromiter(map(hash, self._recorded), np.int64, len(self._recorded))
            self._stored = np.union1d(self._stored, hashes)
            self._recorded.clear()
        self._recorded[(org, key)] = (digest, campaign_id)

    async def _load(self) -> npt.NDArray[np.int64]:
        if self._stored is None:
            async with self._loading:
                if self._stored is None:
                    self._stored = await queries.idempotency_key_hashes(self.store)
        return self._stored


def body_hash(body: CampaignCreate) -> str:
    return hashlib.sha256(body.model_dump_json(exclude_none=True).encode()).hexdigest()


class CampaignLedger:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        producer: AIOKafkaProducer,
        *,
        timeout: float = 10,
        ack_after_store: bool = False,
        sole_writer: bool = False,
    ) -> None:
        """With `ack_after_store` (the embedded platform, whose broker keeps messages in memory
        only) a command returns once the in-process worker has stored the event's pending webhook
        deliveries, so a kill -9 right after the answer cannot lose them. With `sole_writer`
        (no other process writes campaigns: the embedded platform) a campaign's newest version
        is read from what this process wrote or read before, not from the store each time."""
        self.ack_after_store = ack_after_store
        self.sole_writer = sole_writer
        self._keys = _RecordedKeys(store) if sole_writer else None
        self.settings = settings
        self.store = store
        self.producer = producer
        self.timeout = timeout
        self._locks = [asyncio.Lock() for _ in range(_STRIPES)]

    def _lock(self, *name: str) -> asyncio.Lock:
        return self._locks[zlib.crc32("\x00".join(name).encode()) % _STRIPES]

    def _campaign_lock(self, org: str, campaign_id: str) -> asyncio.Lock:
        return self._lock("cmp", org, campaign_id)

    async def get(self, org: str, campaign_id: str) -> Campaign:
        """The organisation's campaign of this id; none (whoever else uses the id) is
        `CampaignNotFound`."""
        found = await self._newest(org, campaign_id)
        if found is None:
            raise CampaignNotFound(campaign_id)
        return found

    async def _newest(self, org: str, campaign_id: str) -> Campaign | None:
        return await queries.newest_campaign(
            self.store, org, campaign_id, sole_writer=self.sole_writer
        )

    async def create(
        self, org: str, body: CampaignCreate, *, idempotency_key: str | None = None
    ) -> tuple[Campaign, bool]:
        """Create a draft campaign; returns it and whether this was a replay of an earlier
        request with the same Idempotency-Key and body."""
        if idempotency_key is None:
            return await self._create(
                org, body.id or _new_id(), body, check=body.id is not None
            ), False
        digest = body_hash(body)
        async with self._lock("idem", org, idempotency_key):
            recorded = await (
                self._keys.find(org, idempotency_key)
                if self._keys is not None
                else queries.idempotency_key(self.store, org, idempotency_key)
            )
            if recorded is not None:
                if recorded[0] != digest:
                    raise IdempotencyKeyReused(idempotency_key)
                existing = await self._newest(org, recorded[1])
                if existing is not None:
                    return existing, True
                campaign_id = recorded[1]  # the earlier attempt failed before publishing
                return await self._create(org, campaign_id, body, check=True), False
            campaign_id = body.id or _new_id()
            await queries.record_idempotency_key(
                self.store, org, idempotency_key, digest, campaign_id
            )
            if self._keys is not None:
                self._keys.add(org, idempotency_key, digest, campaign_id)
            return await self._create(org, campaign_id, body, check=body.id is not None), False

    async def _create(
        self, org: str, campaign_id: str, body: CampaignCreate, *, check: bool
    ) -> Campaign:
        """With `check` (an id the caller chose, or one recorded before) `CampaignExists` if
        the organisation already has a campaign of this id (another organisation's is not
        looked at); an id just drawn here (64 random bits) is not looked up."""
        async with self._campaign_lock(org, campaign_id):
            if check and await self._newest(org, campaign_id) is not None:
                raise CampaignExists(campaign_id)
            event = lifecycle.create(org, campaign_id, body, _now())
            await self._commit(event)
            return event.current

    async def update(
        self, org: str, campaign_id: str, patch: CampaignPatch, *, expected_version: int
    ) -> Campaign:
        """Apply `patch` if the campaign is still at `expected_version` (else `VersionMismatch`).
        A patch that changes nothing returns the campaign unchanged, without an event."""
        async with self._campaign_lock(org, campaign_id):
            current = await self.get(org, campaign_id)
            if current.version != expected_version:
                raise VersionMismatch(current.version)
            event = lifecycle.change(current, patch, _now())
            if event is None:
                return current
            await self._commit(event)
            return event.current

    async def advance(self, campaign: Campaign, status: CampaignStatus) -> Campaign | None:
        """A clock-driven transition, applied only if `campaign` is still the newest version."""
        try:
            return await self.update(
                campaign.org,
                campaign.id,
                CampaignPatch(status=status),
                expected_version=campaign.version,
            )
        except (VersionMismatch, CampaignNotFound, lifecycle.InvalidTransition):
            return None

    async def _commit(self, event: CampaignEvent) -> None:
        """Publish first (the topic is the source of truth), then record the version so the next
        command sees it. If the process dies in between, the worker's projection records it.
        With `ack_after_store` the in-process projection has recorded it once the wait returns."""
        # Keyed by the campaign id alone (the documented key): each organisation's campaign of
        # an id keeps its order; campaigns of two organisations with one id share a partition.
        try:
            record = await asyncio.wait_for(
                self.producer.send_and_wait(
                    self.settings.campaign_topic,
                    value=event.model_dump_json(by_alias=True).encode(),
                    key=event.campaign_id.encode(),
                ),
                self.timeout,
            )
        except (KafkaError, TimeoutError) as exc:
            raise CommandNotPublished(type(exc).__name__) from exc
        # With the embedded broker the worker's projection records the version first, after the
        # event's webhook deliveries: the version never shows before they are stored.
        stored = self.ack_after_store and await STORED.wait(
            [(record.topic, record.partition, record.offset)],
            self.settings.ack_store_timeout_seconds,
        )
        # Stored means the projection recorded this version (after its deliveries): a second row
        # of it would only cost an insert.
        if not stored:
            if self.ack_after_store:
                # Published, only stored late: the version is recorded here so the answer holds.
                log.warning("campaign.fan_out_late", org=event.org, campaign_id=event.campaign_id)
            await queries.insert_campaigns(self.store, [event.current])
        log.info(
            "campaign.changed",
            org=event.org,
            campaign_id=event.campaign_id,
            type=event.type.value,
            version=event.version,
            status=event.current.status.value,
        )


def _now() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _new_id() -> str:
    return f"cmp_{uuid.uuid4().hex[:16]}"

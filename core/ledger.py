"""The campaign ledger as API processes and the clock see it: a command client. Every command
(create, change, a date's transition) goes to `campaign-commands`, keyed by campaign id, and is
decided by the campaign agent that owns the id's partition (`streams/agents/commands.py`), the
only version authority; the ledger waits for its answer on `campaign-command-replies`. It holds
no campaign lock of its own, so any number of API processes may command the same campaign:
exactly one of many concurrent changes carrying the same version wins.

A campaign is an (organisation, id): an id is unique within its organisation only, and another
organisation's campaign of the same id is never read, checked against or changed.
"""

import asyncio
import contextlib
import hashlib
import time
import uuid
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from core import lifecycle, metrics
from core.changes import STORED
from core.clickhouse import Store
from core.kafka import client_security
from core.repositories import campaigns as campaign_store
from core.settings import Settings
from schemas.campaigns import (
    Campaign,
    CampaignCreate,
    CampaignPatch,
    CampaignStatus,
)
from schemas.commands import Command, Outcome, Reply, reply_client

log = structlog.get_logger(__name__)


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
    """The broker did not take the command, or the agent could not decide it: nothing changed."""


class CommandUnanswered(CommandNotPublished):
    """No answer within the command timeout: the command may still be decided, so a retry with
    the same Idempotency-Key or If-Match is safe."""


class RecordedKeys:
    """For the sole writer of campaigns: which Idempotency-Keys were ever recorded, so a new key
    (nearly every create) is known new without a store query. The keys stored before this
    process began are held as sorted 64-bit hashes (8 bytes each, loaded on first use), those
    it records since in full; a hash match is confirmed by the store."""

    _MAX_RECORDED = 100_000

    def __init__(self, store: Store) -> None:
        self.store = store
        self._stored: npt.NDArray[np.int64] | None = None
        self._loading = asyncio.Lock()
        self._recorded: dict[tuple[str, str], campaign_store.RecordedKey] = {}

    async def find(self, org: str, key: str) -> campaign_store.RecordedKey | None:
        """The body hash and campaign recorded for the key, if any."""
        recorded = self._recorded.get((org, key))
        if recorded is not None:
            return recorded
        stored = await self.load()
        at = np.searchsorted(stored, hash((org, key)))
        if at < len(stored) and stored[at] == hash((org, key)):
            return await campaign_store.idempotency_key(self.store, org, key)
        return None

    def add(self, org: str, key: str, digest: str, campaign_id: str) -> None:
        if len(self._recorded) >= self._MAX_RECORDED and self._stored is not None:
            # Bounded: the oldest become hashes like the keys stored before (confirmed by the
            # store when matched).
            hashes = np.fromiter(map(hash, self._recorded), np.int64, len(self._recorded))
            self._stored = np.union1d(self._stored, hashes)
            self._recorded.clear()
        self._recorded[(org, key)] = campaign_store.RecordedKey(digest, campaign_id)

    async def load(self) -> npt.NDArray[np.int64]:
        """The hashes of the keys stored before (loaded once; at start by the agent)."""
        if self._stored is None:
            async with self._loading:
                if self._stored is None:
                    self._stored = await campaign_store.idempotency_key_hashes(self.store)
        return self._stored


def body_hash(body: CampaignCreate) -> str:
    return hashlib.sha256(body.model_dump_json(exclude_none=True).encode()).hexdigest()


def keyed_id(org: str, idempotency_key: str) -> str:
    """The id of a campaign created with an Idempotency-Key and no id of its own: the same for
    every retry, so each retry reaches the agent that decided the first."""
    digest = hashlib.sha256(f"{org}\x00{idempotency_key}".encode()).hexdigest()
    return f"cmp_{digest[:16]}"


class CampaignLedger:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        producer: AIOKafkaProducer,
        *,
        timeout: float | None = None,
        ack_after_store: bool = False,
        sole_writer: bool = False,
    ) -> None:
        """With `ack_after_store` (the embedded platform, whose broker keeps messages in memory
        only) a command returns once the in-process worker has stored the event's campaign row
        and pending webhook deliveries, so a kill -9 right after the answer cannot lose them;
        otherwise the ledger records the version itself, so a read after the answer shows it.
        With `sole_writer` (no other process writes campaigns: the embedded platform) a
        campaign is read from what this process wrote or read before, not from the store."""
        self.ack_after_store = ack_after_store
        self.sole_writer = sole_writer
        self.settings = settings
        self.store = store
        self.producer = producer
        self.timeout = timeout if timeout is not None else settings.command_timeout_seconds
        self.client_id = f"ledger-{uuid.uuid4().hex[:12]}"
        self._waiting: dict[str, asyncio.Future[Reply]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._reading: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()
        self._asked = asyncio.Event()

    async def start(self) -> None:
        """Read answers from the end of the replies topic (what this client will ask for);
        idempotent. Commands start it when needed."""
        async with self._starting:
            if self._consumer is not None:
                return
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.settings.bootstrap,
                group_id=None,
                enable_auto_commit=False,
                # It fetches only while a command of its own waits (`_read`), so it can afford
                # to ask often: a quarter of the agent's wait.
                fetch_max_wait_ms=max(1, self.settings.command_fetch_wait_ms // 4),
                **client_security(self.settings),
            )
            await consumer.start()
            topic = self.settings.campaign_replies_topic
            # Answers are spread over the topic's partitions (by command): a fetch of the
            # embedded broker lists every message a partition holds that has new ones.
            replies = [
                TopicPartition(topic, p) for p in sorted(await self.producer.partitions_for(topic))
            ]
            consumer.assign(replies)
            await consumer.seek_to_end(*replies)
            for tp in replies:
                await consumer.position(tp)  # fixed before any command is sent
            # The commands topic's partitions known before the first command (a send would
            # fetch them first).
            await self.producer.partitions_for(self.settings.campaign_commands_topic)
            self._consumer = consumer
            self._reading = asyncio.create_task(self._read(consumer, replies))

    async def stop(self) -> None:
        if self._reading is not None:
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading
            self._reading = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        for waiting in self._waiting.values():
            waiting.cancel()

    async def _read(self, consumer: AIOKafkaConsumer, replies: list[TopicPartition]) -> None:
        """Answers while commands wait for them. With none waiting the partitions are paused,
        so an idle client sends the broker no fetches; it resumes from the same positions."""
        mine = self.client_id.encode()
        while True:
            if not self._waiting:
                consumer.pause(*replies)
                self._asked.clear()
                await self._asked.wait()
                consumer.resume(*replies)
            try:
                batch = await consumer.getmany(timeout_ms=100)
            except KafkaError as exc:
                log.warning("ledger.replies_failed", error=repr(exc))
                await asyncio.sleep(0.5)
                continue
            for records in batch.values():
                for record in records:
                    if record.value is None or reply_client(record.key) != mine:
                        continue
                    reply = Reply.model_validate_json(record.value)
                    waiting = self._waiting.pop(reply.id, None)
                    if waiting is not None and not waiting.done():
                        waiting.set_result(reply)

    async def get(self, org: str, campaign_id: str) -> Campaign:
        """The organisation's campaign of this id; none (whoever else uses the id) is
        `CampaignNotFound`."""
        found = await campaign_store.newest_campaign(
            self.store, org, campaign_id, sole_writer=self.sole_writer
        )
        if found is None:
            raise CampaignNotFound(campaign_id)
        return found

    async def create(
        self, org: str, body: CampaignCreate, *, idempotency_key: str | None = None
    ) -> tuple[Campaign, bool]:
        """Create a draft campaign; returns it and whether this was a replay of an earlier
        request with the same Idempotency-Key and body. An id drawn here (64 random bits) is not
        looked up; one the caller chose, or derived from the key, is (`CampaignExists`)."""
        campaign_id = body.id or (
            keyed_id(org, idempotency_key) if idempotency_key is not None else _new_id()
        )
        reply = await self._ask(
            "create",
            org,
            campaign_id,
            body.model_dump(mode="json", by_alias=True, exclude_none=True),
            idempotency_key=idempotency_key,
            body_hash=body_hash(body) if idempotency_key is not None else None,
            check=body.id is not None or idempotency_key is not None,
        )
        if reply.outcome is Outcome.key_reused:
            raise IdempotencyKeyReused(idempotency_key or "")
        if reply.outcome is Outcome.exists:
            raise CampaignExists(campaign_id)
        return await self._settled(reply), reply.outcome is Outcome.replayed

    async def update(
        self, org: str, campaign_id: str, patch: CampaignPatch, *, expected_version: int
    ) -> Campaign:
        """Apply `patch` if the campaign is still at `expected_version` (else `VersionMismatch`).
        A patch that changes nothing returns the campaign unchanged, without an event."""
        reply = await self._ask(
            "update",
            org,
            campaign_id,
            patch.model_dump(mode="json", by_alias=True, exclude_unset=True),
            expected_version=expected_version,
        )
        if reply.outcome is Outcome.not_found:
            raise CampaignNotFound(campaign_id)
        if reply.outcome is Outcome.version_mismatch:
            raise VersionMismatch(reply.current_version or 0)
        return await self._settled(reply)

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

    async def _ask(
        self,
        kind: Literal["create", "update"],
        org: str,
        campaign_id: str,
        body: dict[str, Any],
        **fields: Any,
    ) -> Reply:
        """Send the command and wait for its answer; `CommandNotPublished` when the broker does
        not take it, `CommandUnanswered` when no answer comes in time (the command may still be
        decided later: a retry with the same Idempotency-Key or If-Match is safe)."""
        command = Command(
            id=uuid.uuid4().hex,
            client=self.client_id,
            kind=kind,
            org=org,
            campaign_id=campaign_id,
            body=body,
            sent_at=time.time(),
            **fields,
        )
        await self.start()
        answered = asyncio.get_running_loop().create_future()
        self._waiting[command.id] = answered
        self._asked.set()
        sent = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                await self.producer.send_and_wait(
                    self.settings.campaign_commands_topic,
                    value=command.model_dump_json().encode(),
                    key=command.campaign_id.encode(),
                )
                reply: Reply = await answered
            metrics.CAMPAIGN_COMMAND_WAIT_SECONDS.labels("answer").observe(
                time.perf_counter() - sent
            )
        except TimeoutError as exc:
            raise CommandUnanswered(f"no answer within {self.timeout:g} s") from exc
        except KafkaError as exc:
            raise CommandNotPublished(type(exc).__name__) from exc
        finally:
            self._waiting.pop(command.id, None)
        if reply.outcome is Outcome.invalid_transition:
            assert reply.current_status is not None
            assert reply.requested_status is not None
            raise lifecycle.InvalidTransition(
                CampaignStatus(reply.current_status), CampaignStatus(reply.requested_status)
            )
        if reply.outcome is Outcome.invalid_change:
            raise lifecycle.InvalidChange(reply.error or "invalid change")
        if reply.outcome is Outcome.failed:
            raise CommandNotPublished(reply.error or "failed")
        return reply

    async def _settled(self, reply: Reply) -> Campaign:
        """The answer's campaign, once a read of it shows this version: with `ack_after_store`
        when the in-process worker stored the event, else recorded here."""
        assert reply.campaign is not None
        campaign = Campaign.model_validate(reply.campaign)
        if reply.event is None:  # unchanged or replayed: nothing new to wait for
            return campaign
        waited = time.perf_counter()
        stored = self.ack_after_store and await STORED.wait(
            [reply.event], self.settings.ack_store_timeout_seconds
        )
        if not stored:
            if self.ack_after_store:
                # Published, only stored late: the version is recorded here so the answer holds.
                log.warning("campaign.fan_out_late", org=campaign.org, campaign_id=campaign.id)
            await campaign_store.insert_campaigns(self.store, [campaign])
        metrics.CAMPAIGN_COMMAND_WAIT_SECONDS.labels("store").observe(time.perf_counter() - waited)
        return campaign


def _new_id() -> str:
    return f"cmp_{uuid.uuid4().hex[:16]}"

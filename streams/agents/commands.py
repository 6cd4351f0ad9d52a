"""The campaign agent: the one owner of every campaign, and the only version authority.

Commands arrive on `campaign-commands` keyed by campaign id, so all commands of a campaign reach
the agent that owns its partition, one after another, whichever API process sent them. The agent
keeps each campaign's newest state in a Faust `Table` (changelog-backed: recovered from its
changelog on start and on rebalance, with a standby copy on the other workers), checks the
expected version and the Idempotency-Key, applies the state machine, emits the event to
`campaign-events` and answers on `campaign-command-replies`.

Per command, in this order: the table entry (and with it the changelog) is written and flushed,
then the event is published, then the answer is sent. A worker killed anywhere in between leaves
the command unacknowledged on its topic; the next owner reads it again and, finding it to be the
entry's last command, publishes its event again (same event id: receivers and the store
deduplicate) and answers as before. So no version is skipped or repeated.

A campaign the table does not hold (the embedded broker forgets topics on restart; campaigns
from before this agent) is read from the store, which holds every acknowledged version.
"""

import asyncio
import time
import zlib
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

import faust
import orjson
import structlog
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from core import lifecycle, metrics
from core.clickhouse import Store, StoreError
from core.ledger import RecordedKeys
from core.repositories import campaigns as campaign_store
from core.settings import Settings
from schemas.campaigns import Campaign, CampaignCreate, CampaignEvent, CampaignPatch
from schemas.commands import Command, Outcome, Reply, reply_key

log = structlog.get_logger(__name__)

TABLE = "campaigns"
CONCURRENCY = 8
"""Commands decided at once by one worker's agent (of different campaigns: one at a time per
campaign). Each waits for the broker twice (changelog, event), so one at a time capped a worker
at a few dozen commands a second under load."""
_STRIPES = 1024


def table_key(org: str, campaign_id: str) -> str:
    return f"{org}\x1f{campaign_id}"


class CampaignAgent:
    """Decides campaign commands (`handle`); `add_campaign_agent` runs it as a Faust agent."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        store: Store,
        table: Any,
        *,
        sole_writer: bool = False,
    ) -> None:
        self.app = app
        self.settings = settings
        self.store = store
        self.table = table
        self.sole_writer = sole_writer
        self.keys = RecordedKeys(store) if sole_writer else None
        self._locks = [asyncio.Lock() for _ in range(_STRIPES)]

    async def handle(self, command: Command) -> Reply:
        """Decide one command. Commands of one campaign are decided one at a time (the agent's
        actors share a lock per campaign); commands of other campaigns meanwhile."""
        key = table_key(command.org, command.campaign_id)
        async with self._locks[zlib.crc32(key.encode()) % len(self._locks)]:
            return await self._handle(command, key)

    async def _handle(self, command: Command, key: str) -> Reply:
        entry = self.table.get(key)
        if entry is not None and entry.get("lastCommand") == command.id:
            return await self._again(command, entry)
        try:
            if command.kind == "create":
                return await self._create(command, key, entry)
            return await self._update(command, key, entry)
        except lifecycle.InvalidTransition as exc:
            return self._reply(
                command,
                Outcome.invalid_transition,
                current_status=exc.current.value,
                requested_status=exc.requested.value,
            )
        except lifecycle.InvalidChange as exc:
            return self._reply(command, Outcome.invalid_change, error=str(exc))

    async def _current(self, command: Command, entry: dict[str, Any] | None) -> Campaign | None:
        if entry is not None:
            return _held(entry)
        return await campaign_store.newest_campaign(
            self.store, command.org, command.campaign_id, sole_writer=self.sole_writer
        )

    async def _create(self, command: Command, key: str, entry: dict[str, Any] | None) -> Reply:
        body = CampaignCreate.model_validate(command.body)
        idem = command.idempotency_key
        if idem is not None:
            if entry is not None and entry.get("idem") is not None and entry["idem"][0] == idem:
                if entry["idem"][1] != command.body_hash:
                    return self._reply(command, Outcome.key_reused)
                return self._reply(command, Outcome.replayed, campaign=_dump(_held(entry)))
            recorded = await (
                self.keys.find(command.org, idem)
                if self.keys is not None
                else campaign_store.idempotency_key(self.store, command.org, idem)
            )
            if recorded is not None:
                if recorded.body_sha256 != command.body_hash:
                    return self._reply(command, Outcome.key_reused)
                earlier = (
                    await self._current(command, entry)
                    if recorded.campaign_id == command.campaign_id
                    else await campaign_store.newest_campaign(
                        self.store, command.org, recorded.campaign_id, sole_writer=self.sole_writer
                    )
                )
                if earlier is not None:
                    return self._reply(command, Outcome.replayed, campaign=_dump(earlier))
        if (entry is not None or command.check) and await self._current(command, entry) is not None:
            return self._reply(command, Outcome.exists)
        event = lifecycle.create(command.org, command.campaign_id, body, _now())
        if idem is None or command.body_hash is None:
            return await self._commit(command, key, event, None)
        digest = command.body_hash

        async def record_key() -> None:
            await campaign_store.record_idempotency_key(
                self.store, command.org, idem, digest, command.campaign_id
            )
            if self.keys is not None:
                self.keys.add(command.org, idem, digest, command.campaign_id)

        # Recorded in the store before the event is out (as the changelog is, meanwhile): a
        # retry that reaches an owner without this table entry still finds the key.
        return await self._commit(command, key, event, [idem, digest], record_key())

    async def _update(self, command: Command, key: str, entry: dict[str, Any] | None) -> Reply:
        current = await self._current(command, entry)
        if current is None:
            return self._reply(command, Outcome.not_found)
        if current.version != command.expected_version:
            return self._reply(command, Outcome.version_mismatch, current_version=current.version)
        event = lifecycle.change(current, CampaignPatch.model_validate(command.body), _now())
        if event is None:
            return self._reply(command, Outcome.unchanged, campaign=_dump(current))
        return await self._commit(command, key, event, entry.get("idem") if entry else None)

    async def _commit(
        self,
        command: Command,
        key: str,
        event: CampaignEvent,
        idem: list[str] | None,
        *before: Awaitable[None],
    ) -> Reply:
        """Write the table entry and publish the event; `before` are awaited (with the
        changelog) before the event goes out."""
        payload = event.model_dump_json(by_alias=True)
        campaign = _dump(event.current)
        # The changelog first: once the event is out, the table must know its version.
        # The entry holds the newest event as sent (its `current` is the campaign): compact in
        # memory and in the changelog, and ready to be sent again.
        self.table[key] = {"event": payload, "idem": idem, "lastCommand": command.id}
        await asyncio.gather(self.app.producer.flush(), *before)
        sent = await self._publish(event.campaign_id, payload)
        metrics.CAMPAIGN_EVENTS.labels(event.type.value).inc()
        log.info(
            "campaign.changed",
            org=event.org,
            campaign_id=event.campaign_id,
            type=event.type.value,
            version=event.version,
            status=event.current.status.value,
        )
        return self._reply(command, Outcome.changed, campaign=campaign, event=sent)

    async def _again(self, command: Command, entry: dict[str, Any]) -> Reply:
        """The entry's last command read again (its owner died before committing its offset):
        its event may not have been published, so publish it again, and answer as before."""
        sent = await self._publish(command.campaign_id, entry["event"])
        log.info("campaign.command_redelivered", org=command.org, campaign_id=command.campaign_id)
        return self._reply(command, Outcome.changed, campaign=_dump(_held(entry)), event=sent)

    async def _publish(self, campaign_id: str, payload: str) -> tuple[str, int, int]:
        """Keyed by the campaign id alone (the documented key of campaign-events). The table
        already holds this version, so the event must go out: retried until the broker takes
        it (the agent's other commands wait meanwhile)."""
        while True:
            try:
                record = await self.app.producer.send_and_wait(
                    self.settings.campaign_topic,
                    key=campaign_id.encode(),
                    value=payload.encode(),
                    partition=None,
                    timestamp=None,
                    headers=None,
                )
                return (record.topic, record.partition, record.offset)
            except KafkaError as exc:
                log.warning("campaign.publish_retry", campaign_id=campaign_id, error=repr(exc))
                await asyncio.sleep(0.5)

    @staticmethod
    def _reply(command: Command, outcome: Outcome, **fields: Any) -> Reply:
        return Reply(id=command.id, client=command.client, outcome=outcome, **fields)


def add_campaign_agent(
    app: faust.App, settings: Settings, store: Store, *, sole_writer: bool = False
) -> CampaignAgent:
    """The agent and its table on `app`; commands that cannot be read are logged and skipped
    (only command clients of this platform write the topic)."""
    table = app.Table(
        TABLE,
        default=None,
        partitions=settings.campaign_partitions,
        schema=faust.Schema(key_serializer="json", value_serializer="json"),
        help="Every campaign's newest state, its Idempotency-Key and its last command.",
        # Faust creates the changelog: replicated as the platform's topics (the replication
        # factor is the app's `topic_replication_factor`).
        extra_topic_configs={"min.insync.replicas": str(settings.kafka_min_insync_replicas)},
    )
    agent = CampaignAgent(app, settings, store, table, sole_writer=sole_writer)
    commands = app.topic(
        settings.campaign_commands_topic,
        partitions=settings.campaign_partitions,
        key_serializer="raw",
        value_serializer="raw",
    )
    replies = settings.campaign_replies_topic

    @app.agent(commands, name="campaign-commands", concurrency=CONCURRENCY)
    async def decide(stream: Any) -> None:
        async for value in stream:
            try:
                command = Command.model_validate_json(value)
            except ValidationError as exc:
                log.error("campaign.bad_command", error=str(exc)[:300])
                continue
            started = time.perf_counter()
            if command.sent_at is not None:
                metrics.CAMPAIGN_COMMAND_WAIT_SECONDS.labels("delivery").observe(
                    max(time.time() - command.sent_at, 0.0)
                )
            try:
                reply = await agent.handle(command)
            except Exception as exc:  # the store or the broker failed: nothing was changed
                log.warning(
                    "campaign.command_failed", campaign_id=command.campaign_id, error=repr(exc)
                )
                reply = agent._reply(command, Outcome.failed, error=type(exc).__name__)
            # Sent, not waited for: nothing depends on the answer's acknowledgement (a lost
            # answer is a timeout for the client, whose retry is safe).
            await app.producer.send(
                replies,
                key=reply_key(command.client, command.id),
                value=orjson.dumps(reply.model_dump(exclude_none=True)),
                partition=None,
                timestamp=None,
                headers=None,
            )
            metrics.CAMPAIGN_COMMANDS.labels(command.kind, reply.outcome.value).inc()
            metrics.CAMPAIGN_COMMAND_SECONDS.labels(command.kind).observe(
                time.perf_counter() - started
            )

    if sole_writer:

        @app.task  # type: ignore[untyped-decorator]
        async def load() -> None:
            """What a create of a new campaign consults, loaded before the first one."""
            assert agent.keys is not None
            try:
                await asyncio.gather(agent.keys.load(), campaign_store.load_campaign_keys(store))
            except StoreError as exc:  # loaded by the first create instead
                log.warning("campaign.agent_load_failed", error=str(exc))

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]
    async def owned(sender: faust.App, **kwargs: Any) -> None:
        assignment = sender.consumer.assignment()
        metrics.CAMPAIGN_AGENT_PARTITIONS.set(
            sum(1 for tp in assignment if tp.topic == commands.get_topic_name())
        )

    app.campaign_agent = agent  # type: ignore[attr-defined]
    return agent


def _held(entry: dict[str, Any]) -> Campaign:
    """The campaign a table entry holds: the `current` of its newest event."""
    return CampaignEvent.model_validate_json(entry["event"]).current


def _dump(campaign: Campaign) -> dict[str, Any]:
    return campaign.model_dump(mode="json", by_alias=True)


def _now() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)

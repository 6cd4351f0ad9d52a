"""The webhook dispatcher: holds this worker's pending deliveries in a due-time heap, sends them,
retries with back-off, dead-letters final failures and records every attempt in the audit log.
Each attempt, a pending retry's included, uses its endpoint as stored at that moment (enabled,
secrets).

Shares: an endpoint has at most `webhook_endpoint_concurrency` attempts in flight, an
organisation at most `webhook_org_concurrency` over all its endpoints (the settings' endpoints
are one more share), the dispatcher at most `webhook_max_connections`, its connection pool's size,
so an attempt never waits for a connection. Due deliveries wait in their endpoint's queue; free
slots go to the organisations with waiting deliveries in turn, and within one to its endpoints in
turn. Endpoints that never answer thus hold only their organisation's share.

Durability: every delivery is in `webhook_deliveries` (state pending) before it is attempted, and
each state change is written there in small batches; on start-up and every sweep the pending
deliveries of the owned `campaign-events` partitions are loaded back. A crash between an attempt
and its recorded state means that delivery is sent again, with the same webhook-id.
"""

import asyncio
import contextlib
import heapq
import itertools
import time
import uuid
from collections import Counter, deque
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

import httpx
import mode
import orjson
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from pydantic import ValidationError

from core import metrics
from core.changes import ENDPOINT_WRITES
from core.clickhouse import Store, StoreError
from core.coalesce import Gathered
from core.encryption import SecretCipher, is_sealed
from core.kafka import JoinedListener, client_security
from core.netguard import AddressRefused, guarded_client, masked_url
from core.repositories import webhooks as webhook_store
from core.repositories.webhooks import ANY_ORG, Delivery, EndpointConfig, EndpointKind
from core.settings import Settings
from schemas.webhooks import WebhookCommand
from streams.deliveries import build_request
from streams.retry import Outcome, Policy, Verdict, decide, parse_retry_after

log = structlog.get_logger(__name__)

_FLUSH_SECONDS = 0.25
"""Delivery states and attempts are written at most this often: each write is an insert on the
store's writer threads, which the command path shares (a write every 50 ms kept one in flight
most of the time, and a command's pending deliveries queued behind it)."""
_STORE_RETRY_SECONDS = 1.0
"""How long an attempt waits when its endpoint cannot be read (the store is unavailable)."""


def configured_endpoints(settings: Settings) -> list[EndpointConfig]:
    """Endpoints from settings: the default webhook and the Slack / Telegram notifiers."""
    out = []
    if settings.webhook_default_url and settings.webhook_default_secret:
        out.append(
            EndpointConfig(
                id="default",
                org=ANY_ORG,
                url=settings.webhook_default_url,
                secret=settings.webhook_default_secret,
                # Every organisation's delivery history shows it: scheme and public host only.
                display_url=masked_url(settings.webhook_default_url),
            )
        )
    if settings.slack_webhook_url:
        out.append(
            EndpointConfig(
                id="notifier-slack",
                org=ANY_ORG,
                url=settings.slack_webhook_url,
                kind=EndpointKind.slack,
                display_url="slack incoming webhook",
            )
        )
    if settings.telegram_bot_token and settings.telegram_chat_id:
        base = settings.telegram_api_base.rstrip("/")
        out.append(
            EndpointConfig(
                id="notifier-telegram",
                org=ANY_ORG,
                url=f"{base}/bot{settings.telegram_bot_token}/sendMessage",
                kind=EndpointKind.telegram,
                chat_id=settings.telegram_chat_id,
                display_url=f"{base}/bot***/sendMessage",
            )
        )
    return out


class Dispatcher(mode.Service):
    def __init__(self, settings: Settings, store: Store, **kwargs: Any) -> None:
        self.settings = settings
        self.store = store
        self.policy = Policy(
            max_attempts=settings.webhook_max_attempts,
            base_seconds=settings.webhook_backoff_base_seconds,
            max_seconds=settings.webhook_backoff_max_seconds,
        )
        self.cipher = SecretCipher(settings.secrets_key)
        self.configured = configured_endpoints(settings)
        self.endpoints: dict[str, EndpointConfig] = {e.id: e for e in self.configured}
        self._endpoint_reads: Gathered[str, EndpointConfig] = Gathered(
            partial(webhook_store.endpoints_by_id, store, cipher=self.cipher)
        )
        self._sole_writer = settings.store_url.startswith("chdb:")
        """chDB opens its data in one process only: every endpoint write is this process's
        (`ENDPOINT_WRITES` counts them), so an endpoint read since the last write is current."""
        self._read_at: dict[str, int] = {}
        """Per registered endpoint, the count of endpoint writes when it was last read."""
        self._listed_at: int | None = None
        """The count of endpoint writes when the endpoint list was last read."""
        self._tidied_at: int | None = None
        """The count of endpoint writes when stored secrets were last tidied."""
        self._next_expiry = 0.0
        """When the earliest grace period known at that moment ends (epoch s)."""
        self.partitions: set[int] = set()
        self.held: set[str] = set()
        self._heap: list[tuple[float, int, Delivery]] = []
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self._queues: dict[str, deque[Delivery]] = {}
        """Per endpoint: due deliveries not started yet."""
        self._ready: dict[str, deque[str]] = {}
        """Per share: its endpoints with a queued delivery and a free slot, in turn."""
        self._ready_endpoints: set[str] = set()
        self._turns: deque[str] = deque()
        """Shares with a ready endpoint and a free slot, in turn."""
        self._waiting_shares: set[str] = set()
        self._endpoint_busy: Counter[str] = Counter()
        self._share_busy: Counter[str] = Counter()
        self._in_flight = 0
        self._senders: set[asyncio.Task[None]] = set()
        self._states: list[webhook_store.DeliveryState] = []
        self._attempts: list[webhook_store.Attempt] = []
        self._release: list[str] = []
        self._io = asyncio.Lock()  # a sweep never reads what a flush is about to change
        self._last_seq = 0
        self.client: httpx.AsyncClient | None = None
        self.producer: AIOKafkaProducer | None = None
        self.commands: AIOKafkaConsumer | None = None
        self._joined = JoinedListener()
        super().__init__(**kwargs)

    async def joined(self) -> None:
        """Wait until the commands consumer has joined its group (owning partitions or not)."""
        await self._joined.event.wait()

    # -- life cycle --------------------------------------------------------------------------

    async def on_start(self) -> None:
        s = self.settings
        self.client = guarded_client(
            s.webhook_allowed,
            timeout=s.webhook_timeout_seconds,
            max_connections=s.webhook_max_connections,
        )
        self.producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap, acks="all", linger_ms=5, **client_security(s)
        )
        self.commands = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap,
            **client_security(s),
            group_id=f"{s.consumer_group}-webhook-commands",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=s.kafka_session_timeout_ms,
            heartbeat_interval_ms=s.kafka_heartbeat_interval_ms,
        )
        await self.producer.start()
        # Subscribed once started, so the group join (which the embedded broker holds for half
        # the session timeout) goes on while the rest of the worker starts; `joined` tells
        # when it is done.
        await self.commands.start()
        self.commands.subscribe([s.webhook_commands_topic], listener=self._joined)
        await self.reload_endpoints()

    async def on_stop(self) -> None:
        for task in list(self._senders):
            task.cancel()
        await asyncio.gather(*self._senders, return_exceptions=True)
        try:
            await self.flush()
        except StoreError as exc:
            log.warning("webhooks.final_flush_failed", error=str(exc))
        if self.commands is not None:
            await self.commands.stop()
        if self.producer is not None:
            await self.producer.stop()
        if self.client is not None:
            await self.client.aclose()

    # -- inputs ------------------------------------------------------------------------------

    async def reload_endpoints(self) -> None:
        """Read the registered endpoints (each organisation's oldest, up to its quota). On a
        chDB store, which only this process writes, only when an endpoint was written since."""
        writes = ENDPOINT_WRITES.version
        if self._sole_writer and self._listed_at == writes:
            return
        registered = await webhook_store.registered_endpoints(
            self.store, self.settings.webhook_max_endpoints_per_org, cipher=self.cipher
        )
        self.endpoints = {e.id: e for e in (*self.configured, *registered)}
        self._listed_at = writes

    def matching_endpoints(self) -> list[EndpointConfig]:
        return list(self.endpoints.values())

    async def current_endpoint(self, endpoint_id: str) -> EndpointConfig | None:
        """The endpoint as it is now, None when it is gone. A registered one is read from the
        store (reads asked for while one runs are gathered into the next), so a change made
        through the API in any process (disabled, enabled again, a rotated secret) holds from
        the next attempt on; the settings' endpoints change only in this process. On a chDB
        store, which only this process can write, it is read again only after a write."""
        if any(e.id == endpoint_id for e in self.configured):
            return self.endpoints.get(endpoint_id)
        writes = ENDPOINT_WRITES.version
        if self._sole_writer and self._read_at.get(endpoint_id) == writes:
            return self.endpoints.get(endpoint_id)
        endpoint = await self._endpoint_reads.get(endpoint_id)
        self._read_at[endpoint_id] = writes
        if endpoint is None:
            self.endpoints.pop(endpoint_id, None)
        else:
            self.endpoints[endpoint_id] = endpoint
        return endpoint

    async def assign(self, partitions: set[int]) -> None:
        """The worker now owns these `campaign-events` partitions: load their pending work."""
        self.partitions = set(partitions)
        await self.sweep()

    def enqueue(self, deliveries: list[Delivery]) -> int:
        added = 0
        for d in deliveries:
            if d.delivery_id in self.held:
                continue
            self.held.add(d.delivery_id)
            heapq.heappush(self._heap, (d.due_at, next(self._order), d))
            added += 1
        if added:
            metrics.WEBHOOK_HELD.set(len(self.held))
            self._wake.set()
        return added

    async def pending(self, partitions: set[int]) -> list[Delivery]:
        """The stored pending deliveries of `partitions`: each organisation's soonest, up to
        `webhook_sweep_max_per_org` (`webhook_store.pending_deliveries`)."""
        return await webhook_store.pending_deliveries(
            self.store, partitions, per_org=self.settings.webhook_sweep_max_per_org
        )

    async def sweep(self) -> int:
        """Load pending deliveries of the owned partitions that this worker does not hold (after a
        restart, a rebalance, or a replay handled by another worker): each organisation's soonest
        in every sweep, whatever another organisation has pending or held."""
        async with self._io:
            found = await self.pending(self.partitions)
            metrics.WEBHOOK_DLQ_SIZE.set(
                await webhook_store.dead_delivery_count(self.store, self.partitions)
            )
            return self.enqueue(found)

    # -- scheduling --------------------------------------------------------------------------

    @mode.Service.task
    async def _schedule(self) -> None:
        while not self.should_stop:
            now = time.time()
            while self._heap and self._heap[0][0] <= now:
                _, _, delivery = heapq.heappop(self._heap)
                self._dispatch(delivery)
            timeout = min(1.0, self._heap[0][0] - now) if self._heap else 1.0
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(timeout, 0.001))

    def _dispatch(self, delivery: Delivery) -> None:
        if delivery.partition not in self.partitions:
            self.held.discard(delivery.delivery_id)  # its new owner loads it
            return
        endpoint = self.endpoints.get(delivery.endpoint_id)
        share = endpoint.org if endpoint is not None else delivery.org
        self._queues.setdefault(delivery.endpoint_id, deque()).append(delivery)
        self._mark_ready(delivery.endpoint_id, share)
        self._admit()

    def _mark_ready(self, endpoint_id: str, share: str) -> None:
        """Put the endpoint in its share's turn, and the share in the turn of shares, if each
        has waiting deliveries and a free slot (and is not there already)."""
        if (
            endpoint_id not in self._ready_endpoints
            and self._queues.get(endpoint_id)
            and self._endpoint_busy[endpoint_id] < self.settings.webhook_endpoint_concurrency
        ):
            self._ready_endpoints.add(endpoint_id)
            self._ready.setdefault(share, deque()).append(endpoint_id)
        if (
            share not in self._waiting_shares
            and self._ready.get(share)
            and self._share_busy[share] < self.settings.webhook_org_concurrency
        ):
            self._waiting_shares.add(share)
            self._turns.append(share)

    def _admit(self) -> None:
        """Start attempts while connections are free: one per share in turn."""
        while self._turns and self._in_flight < self.settings.webhook_max_connections:
            if self.should_stop:
                return
            share = self._turns.popleft()
            self._waiting_shares.discard(share)
            ring = self._ready[share]
            endpoint_id = ring.popleft()
            if not ring:
                del self._ready[share]
            self._ready_endpoints.discard(endpoint_id)
            queue = self._queues[endpoint_id]
            delivery = queue.popleft()
            if not queue:
                del self._queues[endpoint_id]
            self._endpoint_busy[endpoint_id] += 1
            self._share_busy[share] += 1
            self._in_flight += 1
            task = asyncio.create_task(self._send(delivery, share))
            self._senders.add(task)
            task.add_done_callback(self._senders.discard)
            self._mark_ready(endpoint_id, share)

    async def _send(self, delivery: Delivery, share: str) -> None:
        endpoint_id = delivery.endpoint_id
        try:
            if delivery.partition in self.partitions:
                await self._attempt(delivery)
            else:
                self.held.discard(delivery.delivery_id)  # revoked while it waited
        finally:
            self._in_flight -= 1
            for busy, key in ((self._endpoint_busy, endpoint_id), (self._share_busy, share)):
                busy[key] -= 1
                if busy[key] <= 0:
                    del busy[key]
            self._mark_ready(endpoint_id, share)
            self._admit()

    async def _attempt(self, delivery: Delivery) -> None:
        assert self.client is not None
        try:
            endpoint = await self.current_endpoint(delivery.endpoint_id)
        except StoreError as exc:
            # Not attempted: whether the endpoint still wants it (and with which secret) is
            # unknown until the store answers.
            log.warning(
                "webhooks.endpoint_unread", endpoint_id=delivery.endpoint_id, error=str(exc)
            )
            self._reschedule(delivery, time.time() + _STORE_RETRY_SECONDS)
            return
        attempt = delivery.attempt + 1
        status: int | None = None
        error = ""
        started = time.perf_counter()
        if endpoint is None or not endpoint.enabled:
            outcome = Outcome(Verdict.dead)
            error = "endpoint disabled or deleted"
        else:
            request = build_request(delivery, endpoint, datetime.now(UTC))
            retry_after = None
            refused = False
            try:
                async with asyncio.timeout(self.settings.webhook_timeout_seconds):
                    async with self.client.stream(
                        "POST", request.url, headers=request.headers, content=request.body
                    ) as response:
                        status = response.status_code
                        retry_after = parse_retry_after(response.headers.get("retry-after"))
                        await _drain_body(response, self.settings.webhook_max_response_bytes)
            except AddressRefused as exc:
                refused, error = True, f"refused: {exc}"
            except TimeoutError:
                error = "timeout"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"[:500]
            if refused:
                outcome = Outcome(Verdict.dead)
            else:
                outcome = decide(attempt, status, self.policy, retry_after=retry_after)
            if status is not None and not 200 <= status < 300 and not error:
                error = f"HTTP {status}"
        latency = time.perf_counter() - started
        delivery.attempt = attempt
        now = time.time()
        attempt_status = {
            Verdict.delivered: "delivered",
            Verdict.retry: "retrying",
            Verdict.dead: "dead",
        }[outcome.verdict]
        kind = endpoint.kind.value if endpoint is not None else "webhook"
        metrics.WEBHOOK_ATTEMPTS.labels(kind, attempt_status).inc()
        metrics.WEBHOOK_ATTEMPT_SECONDS.observe(latency)
        self._attempts.append(
            webhook_store.Attempt(
                uuid.uuid4().hex,
                delivery.org,
                delivery.webhook_id,
                delivery.delivery_id,
                delivery.event_type,
                delivery.campaign_id,
                delivery.endpoint_id,
                endpoint.public_url if endpoint is not None else "",
                attempt,
                attempt_status,
                status,
                error,
                round(latency * 1000, 3),
                datetime.fromtimestamp(now, UTC),
            )
        )
        if outcome.verdict is Verdict.retry:
            self._reschedule(delivery, now + outcome.delay)
            self._states.append(
                webhook_store.DeliveryState(delivery, "pending", error, self._seq())
            )
        else:
            state = "delivered" if outcome.verdict is Verdict.delivered else "dead"
            self._states.append(webhook_store.DeliveryState(delivery, state, error, self._seq()))
            self._release.append(delivery.delivery_id)
            if state == "delivered" and delivery.created_at:
                metrics.WEBHOOK_DELIVERY_SECONDS.observe(max(0.0, now - delivery.created_at))
            else:
                await self._dead_letter(delivery, error)
        if outcome.disable_endpoint and endpoint is not None:
            await self._disable(endpoint, f"HTTP {status} from the endpoint")
        log.debug(
            "webhooks.attempt",
            delivery_id=delivery.delivery_id,
            attempt=attempt,
            status=attempt_status,
            http_status=status,
            error=error or None,
        )

    def _reschedule(self, delivery: Delivery, due_at: float) -> None:
        delivery.due_at = due_at
        heapq.heappush(self._heap, (due_at, next(self._order), delivery))
        self._wake.set()

    def _seq(self) -> int:
        self._last_seq = max(self._last_seq + 1, time.time_ns())
        return self._last_seq

    async def _dead_letter(self, delivery: Delivery, error: str) -> None:
        metrics.WEBHOOK_DEAD_LETTERS.inc()
        log.info(
            "webhooks.dead_letter",
            delivery_id=delivery.delivery_id,
            endpoint_id=delivery.endpoint_id,
            error=error,
        )
        if self.producer is None:
            return
        record = {
            "deliveryId": delivery.delivery_id,
            "webhookId": delivery.webhook_id,
            "org": delivery.org,
            "endpointId": delivery.endpoint_id,
            "campaignId": delivery.campaign_id,
            "eventType": delivery.event_type,
            "attempts": delivery.attempt,
            "error": error,
        }
        try:
            # Not awaited for acknowledgement: the store row (state dead) is the durable record.
            await self.producer.send(
                self.settings.webhook_dlq_topic,
                orjson.dumps(record),
                key=delivery.campaign_id.encode(),
            )
        except KafkaError as exc:
            log.warning("webhooks.dlq_publish_failed", error=type(exc).__name__)

    async def _disable(self, endpoint: EndpointConfig, reason: str) -> None:
        if not endpoint.enabled:
            return
        self.endpoints[endpoint.id] = replace(endpoint, enabled=False)
        metrics.WEBHOOK_ENDPOINTS_DISABLED.inc()
        log.warning("webhooks.endpoint_disabled", endpoint_id=endpoint.id, reason=reason)
        if endpoint.org != ANY_ORG:
            await webhook_store.disable_endpoint(self.store, endpoint.id, reason, self._seq())

    # -- persistence -------------------------------------------------------------------------

    @mode.Service.task
    async def _flusher(self) -> None:
        while not self.should_stop:
            await asyncio.sleep(_FLUSH_SECONDS)
            try:
                await self.flush()
            except StoreError as exc:
                log.warning("webhooks.flush_failed", error=str(exc))
                await asyncio.sleep(1.0)

    async def flush(self) -> None:
        """Write recorded states and attempts; release finished deliveries only afterwards."""
        if not (self._states or self._attempts):
            return
        async with self._io:
            states, self._states = self._states, []
            attempts, self._attempts = self._attempts, []
            release, self._release = self._release, []
            try:
                await webhook_store.insert_delivery_states(self.store, states)
                await webhook_store.insert_attempts(self.store, attempts)
            except StoreError:
                self._states[:0] = states
                self._attempts[:0] = attempts
                self._release[:0] = release
                raise
            self.held.difference_update(release)
            metrics.WEBHOOK_HELD.set(len(self.held))

    @mode.Service.task
    async def _sweeper(self) -> None:
        while not self.should_stop:
            await asyncio.sleep(self.settings.webhook_sweep_seconds)
            try:
                await self.sweep()
                await self.tidy_secrets()
            except StoreError as exc:
                log.warning("webhooks.sweep_failed", error=str(exc))

    async def tidy_secrets(self) -> int:
        """Clear each previous secret whose grace period has ended and seal each secret stored
        in plaintext (rows written before secrets were sealed), in new versions of the rows, then
        merge the superseded versions away. Returns how many endpoints were rewritten. On a chDB
        store, which only this process writes, the store is read only after an endpoint write or
        once the earliest known grace period has ended."""
        now = time.time()
        writes = ENDPOINT_WRITES.version
        if self._sole_writer and self._tidied_at == writes and now < self._next_expiry:
            return 0
        next_expiry = float("inf")
        changes = []
        for stored in await webhook_store.stored_secrets(self.store):
            secret, previous = stored.secret, stored.previous_secret
            if previous and stored.previous_expires_at <= now:
                previous = ""
            elif previous:
                next_expiry = min(next_expiry, stored.previous_expires_at)
            if not is_sealed(secret):
                secret = self.cipher.seal(secret, context=stored.endpoint_id)
            if not is_sealed(previous):
                previous = self.cipher.seal(previous, context=stored.endpoint_id)
            if (secret, previous) != (stored.secret, stored.previous_secret):
                changes.append(replace(stored, secret=secret, previous_secret=previous))
        await webhook_store.rewrite_secrets(self.store, changes)
        # Recorded as of before the read: a write made meanwhile (this one's included) makes the
        # next sweep read again.
        self._tidied_at, self._next_expiry = writes, next_expiry
        if changes:
            log.info("webhooks.secrets_tidied", endpoints=len(changes))
        return len(changes)

    # -- commands ----------------------------------------------------------------------------

    @mode.Service.task
    async def _commands(self) -> None:
        assert self.commands is not None
        while not self.should_stop:
            batch = await self.commands.getmany(timeout_ms=500)
            if not batch:
                continue
            for records in batch.values():
                for record in records:
                    try:
                        command = WebhookCommand.model_validate_json(record.value or b"")
                    except ValidationError:
                        log.warning("webhooks.bad_command", offset=record.offset)
                        continue
                    await self.replay(command)
            try:
                await self.commands.commit()
            except (CommitFailedError, IllegalStateError) as exc:
                log.warning("webhooks.command_commit_failed", error=type(exc).__name__)

    async def replay(self, command: WebhookCommand) -> int:
        """Make the matching dead deliveries pending again (same webhook-id, a fresh attempt
        budget); this worker sends those of its partitions, the owners' sweeps the rest."""
        dead = await webhook_store.dead_deliveries(
            self.store,
            command.org,
            endpoint_id=command.endpoint_id,
            campaign_id=command.campaign_id,
        )
        now = time.time()
        for d in dead:
            d.attempt = 0
            d.due_at = now
        async with self._io:
            await webhook_store.insert_delivery_states(
                self.store,
                [webhook_store.DeliveryState(d, "pending", "replayed", self._seq()) for d in dead],
            )
            self.enqueue([d for d in dead if d.partition in self.partitions])
        log.info("webhooks.replayed", command_id=command.command_id, deliveries=len(dead))
        return len(dead)


async def _drain_body(response: httpx.Response, limit: int) -> None:
    """Read at most `limit` bytes of the answer (its content is not used; reading lets the
    connection be reused)."""
    read = 0
    async for chunk in response.aiter_raw():
        read += len(chunk)
        if read >= limit:
            break

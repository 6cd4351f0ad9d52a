"""The workload: an open-loop mix of reads and writes at a stated request rate, plus timed
operations (webhook endpoint registration, briefs against a fake model, CSV uploads, freshness
probes), and the per-minute samplers (memory of every platform process, consumer lag)."""

import asyncio
import contextlib
import io
import itertools
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
import orjson

from etl.generate import write_sample
from schemas.events import PLATFORMS
from soak.processes import Platform, cpu_seconds, metric_values, rss_bytes
from soak.receiver import Receiver

CAMPAIGNS = [f"cmp_soak_{i}" for i in range(200)]
CREATORS = [f"inf_soak_{i}" for i in range(1000)]

# Share of the stated request rate per operation (the timed operations come on top).
MIX: dict[str, float] = {
    "POST /events": 0.30,
    "GET /campaigns/{id}/metrics": 0.25,
    "GET /influencers/{id}/metrics": 0.20,
    "GET /top-performers": 0.10,
    "POST /campaigns": 0.04,
    "PATCH /campaigns/{id}": 0.08,
    "GET /campaigns/{id}": 0.03,
}
NEXT_STATUS = {"draft": "scheduled", "scheduled": "live", "live": "paused", "paused": "live"}


@dataclass
class Options:
    duration: float
    rate: float
    events_rate: float
    warmup: float
    sample_every: float = 60.0
    lag_every: float = 5.0
    probe_every: float = 5.0
    brief_every: float = 30.0
    upload_every: float = 60.0
    webhook_every: float = 60.0
    upload_rows: int = 200
    max_in_flight: int = 128
    seed: int = 1
    healthz_every: float | None = None
    """Sample `GET /healthz` this often (the floor of a route under the same load)."""
    request_timeout: float = 30.0
    setup_once: bool = False
    """Register the webhook endpoint, upload a CSV and generate a brief once, before the clock
    starts, instead of on their periods during the load (a mix of reads and writes alone)."""


def cores_per_sample(
    cpu: list[tuple[float, dict[str, float]]],
) -> list[tuple[float, dict[str, float]]]:
    """CPU seconds per process sample -> cores each process used since the sample before."""
    return [
        (
            at,
            {
                name: (used - before[name]) / (at - then)
                for name, used in now.items()
                if name in before
            },
        )
        for (then, before), (at, now) in itertools.pairwise(cpu)
        if at > then
    ]


@dataclass
class Results:
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    server_errors: dict[str, int] = field(default_factory=dict)
    """Of the errors, answers with a 5xx status."""
    error_samples: list[str] = field(default_factory=list)
    memory: list[tuple[float, int, dict[str, int]]] = field(default_factory=list)
    """(seconds since start, events accepted so far, RSS per process)"""
    cpu: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    """(seconds since start, CPU seconds used so far per process), sampled with `memory`"""
    lag: list[tuple[float, float, float]] = field(default_factory=list)
    """(seconds since start, max partition lag gauge, accepted events not yet read)"""
    probes_ms: list[float] = field(default_factory=list)
    events_accepted: int = 0
    started: float = 0.0
    load_seconds: float = 0.0
    drain_seconds: float | None = None
    delayed_starts: int = 0
    not_started: int = 0
    """Requests of the schedule still unsent when the duration was over (the client fell behind)."""

    def record(self, name: str, ms: float) -> None:
        self.latencies_ms.setdefault(name, []).append(ms)

    def fail(self, name: str, detail: str) -> None:
        self.errors[name] = self.errors.get(name, 0) + 1
        if len(self.error_samples) < 20:
            self.error_samples.append(f"{name}: {detail[:300]}")


class Unexpected(Exception):
    """An answer the workload did not expect (wrong status); counted as an error."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Load:
    def __init__(
        self,
        platform: Platform,
        token: str,
        receiver: Receiver,
        options: Options,
    ) -> None:
        self.platform = platform
        self.options = options
        self.receiver = receiver
        self.results = Results()
        self.rng = random.Random(options.seed)
        self.headers = {"Authorization": f"Bearer {token}"}
        self.run_tag = f"{int(time.time())}"
        self.event_ids = itertools.count()
        self.campaigns: list[tuple[str, str, str]] = []
        """Campaigns free to be changed: (id, ETag, status); one change at a time each."""
        self.endpoint: str | None = None
        self.batch = max(1, round(options.events_rate / (options.rate * MIX["POST /events"])))
        self._brief_lock = asyncio.Lock()
        self._http: aiohttp.ClientSession | None = None

    @property
    def http(self) -> aiohttp.ClientSession:
        assert self._http is not None
        return self._http

    async def run(self) -> Results:
        # Idle connections are dropped before the server's keep-alive timeout (uvicorn: 5 s), or
        # a request may be sent on a connection the server is closing (a reset, not an answer).
        connector = aiohttp.TCPConnector(limit=self.options.max_in_flight, keepalive_timeout=3)
        timeout = aiohttp.ClientTimeout(total=self.options.request_timeout)
        async with aiohttp.ClientSession(
            base_url=self.platform.base_url,
            headers=self.headers,
            connector=connector,
            timeout=timeout,
        ) as self._http:
            periodic = [
                (self.options.webhook_every, self._webhook),
                (self.options.upload_every, self._upload),
                (self.options.brief_every, self._brief),
            ]
            if self.options.setup_once:
                for _, operation in periodic:
                    await operation()
                periodic = []
            await self._seed()
            self.results.started = time.monotonic()
            stop = asyncio.Event()
            samplers = [
                asyncio.create_task(
                    self._every(self.options.sample_every, self._sample_memory, stop)
                ),
                asyncio.create_task(self._every(self.options.lag_every, self._sample_lag, stop)),
                asyncio.create_task(self._every(self.options.probe_every, self._probe, stop)),
                *(asyncio.create_task(self._every(every, op, stop)) for every, op in periodic),
            ]
            if self.options.healthz_every is not None:
                samplers.append(
                    asyncio.create_task(
                        self._every(self.options.healthz_every, self._healthz, stop)
                    )
                )
            await self._mixed()
            self.results.load_seconds = time.monotonic() - self.results.started
            await self._sample_memory()
            self.platform.snapshot()
            stop.set()
            await asyncio.gather(*samplers)
            await self._drain()
        return self.results

    # -- scheduling -------------------------------------------------------------------------

    async def _mixed(self) -> None:
        """Open loop: request n is due at start + n / rate, whatever the answers take (up to
        `max_in_flight` at once); the schedule ends with the duration, sent or not. Latency is
        measured from the due time, so a request that had to wait for a free slot or for the
        client to catch up is charged that wait (no coordinated omission)."""
        names = list(MIX)
        weights = [MIX[n] for n in names]
        operations: dict[str, Callable[[], Awaitable[None]]] = {
            "POST /events": self._post_events,
            "GET /campaigns/{id}/metrics": self._campaign_metrics,
            "GET /influencers/{id}/metrics": self._creator_metrics,
            "GET /top-performers": self._top_performers,
            "POST /campaigns": self._create_campaign,
            "PATCH /campaigns/{id}": self._change_campaign,
            "GET /campaigns/{id}": self._get_campaign,
        }
        in_flight: set[asyncio.Task[None]] = set()
        gate = asyncio.Semaphore(self.options.max_in_flight)
        started = self.results.started
        total = int(self.options.duration * self.options.rate)
        for n in range(total):
            if time.monotonic() >= started + self.options.duration:
                self.results.not_started = total - n
                break
            due = started + n / self.options.rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.1:
                self.results.delayed_starts += 1
            name = self.rng.choices(names, weights)[0]
            await gate.acquire()
            task = asyncio.create_task(self._timed(name, operations[name], due))
            task.add_done_callback(lambda _: gate.release())
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        await asyncio.gather(*in_flight)

    async def _timed(
        self, name: str, operation: Callable[[], Awaitable[object]], due: float | None = None
    ) -> None:
        """Run one request; its latency counts from `due` (monotonic) when given, else now."""
        started = time.monotonic() if due is None else due
        try:
            await operation()
        except Exception as exc:  # any failure of a request is counted and reported, never raised
            self.results.fail(name, f"{type(exc).__name__}: {exc}")
            if isinstance(exc, Unexpected) and exc.status >= 500:
                self.results.server_errors[name] = self.results.server_errors.get(name, 0) + 1
            return
        self.results.record(name, (time.monotonic() - started) * 1000)

    async def _every(
        self, seconds: float, operation: Callable[[], Awaitable[None]], stop: asyncio.Event
    ) -> None:
        """Run `operation` now and then every `seconds` until `stop` (never two at once)."""
        while not stop.is_set():
            began = time.monotonic()
            await operation()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, began + seconds - time.monotonic()))

    async def _expect(
        self, method: str, path: str, status: int, **kwargs: object
    ) -> tuple[bytes, Mapping[str, str]]:
        async with self.http.request(method, path, **kwargs) as response:  # type: ignore[arg-type]
            body = await response.read()
            if response.status != status:
                raise Unexpected(
                    f"{method} {path} -> {response.status}: {body[:200]!r}", response.status
                )
            return body, response.headers.copy()

    # -- data --------------------------------------------------------------------------------

    def _events(self, n: int) -> list[dict[str, object]]:
        now = int(time.time() * 1000)
        rng = self.rng
        return [
            {
                "eventId": f"soak-{self.run_tag}-{next(self.event_ids)}",
                "timestamp": now - rng.randint(0, 3_600_000),
                "influencerId": rng.choice(CREATORS),
                "platform": rng.choice(PLATFORMS),
                "campaignId": rng.choice(CAMPAIGNS),
                "views": rng.randint(1, 5000),
                "likes": rng.randint(0, 300),
                "comments": rng.randint(0, 30),
                "shares": rng.randint(0, 20),
                "hashtags": rng.sample(["food", "festive", "style", "tech", "travel"], 2),
            }
            for _ in range(n)
        ]

    async def _seed(self) -> None:
        """One event per campaign and creator of the mix, visible before the clock starts, so
        every metrics read of the run has an answer (a 404 would be an error)."""
        now = int(time.time() * 1000)
        events = [
            {
                "eventId": f"seed-{self.run_tag}-{i}",
                "timestamp": now,
                "influencerId": creator,
                "platform": PLATFORMS[i % len(PLATFORMS)],
                "campaignId": CAMPAIGNS[i % len(CAMPAIGNS)],
                "views": 100,
                "likes": 5,
            }
            for i, creator in enumerate(CREATORS)
        ]
        await self._expect("POST", "/events", 202, json=events)
        self.results.events_accepted += len(events)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            async with (
                self.http.get(f"/influencers/{CREATORS[-1]}/metrics") as first,
                self.http.get(f"/campaigns/{CAMPAIGNS[-1]}/metrics") as second,
            ):
                if first.status == second.status == 200:
                    return
            await asyncio.sleep(0.1)
        raise RuntimeError("seed events did not become visible within 60 s")

    # -- the mix -----------------------------------------------------------------------------

    async def _post_events(self) -> None:
        events = self._events(self.batch)
        body, _ = await self._expect("POST", "/events", 202, json=events)
        self.results.events_accepted += int(orjson.loads(body)["accepted"])

    async def _campaign_metrics(self) -> None:
        await self._expect("GET", f"/campaigns/{self.rng.choice(CAMPAIGNS)}/metrics", 200)

    async def _creator_metrics(self) -> None:
        await self._expect("GET", f"/influencers/{self.rng.choice(CREATORS)}/metrics", 200)

    async def _top_performers(self) -> None:
        query = self.rng.choice(
            [
                {"limit": "10"},
                {"platform": self.rng.choice(PLATFORMS), "limit": "10", "sort": "engagementScore"},
                {"campaignId": self.rng.choice(CAMPAIGNS), "limit": "5", "sort": "views"},
            ]
        )
        await self._expect("GET", "/top-performers", 200, params=query)

    async def _create_campaign(self) -> None:
        body, headers = await self._expect(
            "POST",
            "/campaigns",
            201,
            json={"name": f"Soak {self.rng.randrange(10**6)}", "brand": "Soak Co", "budget": 1000},
            headers={"Idempotency-Key": f"soak-{self.run_tag}-{next(self.event_ids)}"},
        )
        created = orjson.loads(body)
        self.campaigns.append((created["id"], headers["ETag"], created["status"]))

    async def _change_campaign(self) -> None:
        """One allowed transition of a campaign nobody else is changing; a campaign that has
        been live twice completes (final states leave the pool); with none free, one is created."""
        if not self.campaigns:
            await self._create_campaign()
            return
        campaign_id, etag, status = self.campaigns.pop(self.rng.randrange(len(self.campaigns)))
        target = NEXT_STATUS[status]
        if status == "live" and self.rng.random() < 0.5:
            target = "completed"
        body, headers = await self._expect(
            "PATCH",
            f"/campaigns/{campaign_id}",
            200,
            json={"status": target},
            headers={"If-Match": etag},
        )
        changed = orjson.loads(body)
        if changed["status"] not in ("completed", "cancelled"):
            self.campaigns.append((campaign_id, headers["ETag"], changed["status"]))

    async def _get_campaign(self) -> None:
        if not self.campaigns:
            await self._expect("GET", "/campaigns", 200, params={"limit": "20"})
            return
        campaign_id = self.rng.choice(self.campaigns)[0]
        await self._expect("GET", f"/campaigns/{campaign_id}", 200)

    # -- timed operations --------------------------------------------------------------------

    async def _healthz(self) -> None:
        await self._timed("GET /healthz", lambda: self._expect("GET", "/healthz", 200))

    async def _webhook(self) -> None:
        """Register an endpoint at the receiver and disable the previous one, so the number of
        live endpoints (and deliveries per campaign event) stays at one."""

        async def register() -> None:
            body, _ = await self._expect(
                "POST", "/webhooks/endpoints", 201, json={"url": self.receiver.url}
            )
            previous, self.endpoint = self.endpoint, str(orjson.loads(body)["id"])
            if previous is not None:
                await self._expect(
                    "PATCH", f"/webhooks/endpoints/{previous}", 200, json={"enabled": False}
                )

        await self._timed("POST /webhooks/endpoints", register)

    async def _brief(self) -> None:
        async with self._brief_lock:
            request = {
                "brand": "Soak Co",
                "product": "Festive snack box",
                "goal": f"Awareness wave {next(self.event_ids)}",
                "platform": self.rng.choice(PLATFORMS),
                "audience": "young urban foodies",
            }
            await self._timed(
                "POST /generate-brief",
                # The platform allows a model request 60 s (FK_LLM_TIMEOUT_SECONDS) and retries.
                lambda: self._expect(
                    "POST",
                    "/generate-brief",
                    201,
                    json=request,
                    timeout=aiohttp.ClientTimeout(total=180),
                ),
            )

    async def _upload(self) -> None:
        sample = io.StringIO()
        write_sample(sample, self.options.upload_rows, seed=self.rng.randrange(10**9))
        form = aiohttp.FormData()
        form.add_field("file", sample.getvalue().encode(), filename="soak.csv")
        await self._timed(
            "POST /etl/uploads", lambda: self._expect("POST", "/etl/uploads", 200, data=form)
        )

    async def _probe(self) -> None:
        """Freshness: one event for a new campaign, then poll until the API answers for it."""
        campaign = f"probe_{self.run_tag}_{next(self.event_ids)}"
        event = {
            "eventId": campaign,
            "timestamp": datetime.now(UTC).isoformat(),
            "influencerId": "inf_probe",
            "platform": "x",
            "campaignId": campaign,
            "views": 1,
        }
        started = time.perf_counter()
        try:
            await self._expect("POST", "/events", 202, json=event)
            self.results.events_accepted += 1
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                async with self.http.get(f"/campaigns/{campaign}/metrics") as response:
                    if response.status == 200:
                        self.results.probes_ms.append((time.perf_counter() - started) * 1000)
                        return
                await asyncio.sleep(0.02)
            self.results.fail("freshness probe", f"{campaign} not visible after 30 s")
        except (aiohttp.ClientError, TimeoutError, Unexpected) as exc:
            self.results.fail("freshness probe", f"{type(exc).__name__}: {exc}")

    # -- samplers ----------------------------------------------------------------------------

    async def _sample_memory(self) -> None:
        sample = {
            f"{name} ({pid})": rss
            for pid, name in self.platform.pids().items()
            if (rss := rss_bytes(pid)) is not None
        }
        at = time.monotonic() - self.results.started
        if at >= self.options.warmup and all(
            t < self.options.warmup for t, *_ in self.results.memory
        ):
            self.platform.snapshot()  # with the first sample after the warm-up
        self.results.memory.append((at, self.results.events_accepted, sample))
        used = {
            f"{name} ({pid})": seconds
            for pid, name in self.platform.pids().items()
            if (seconds := cpu_seconds(pid)) is not None
        }
        self.results.cpu.append((at, used))
        done = sum(len(v) for v in self.results.latencies_ms.values())
        backlog = self.results.lag[-1][2] if self.results.lag else 0.0
        cores = cores_per_sample(self.results.cpu[-2:])
        print(
            f"{at:6.0f} s  requests {done:,}  errors {sum(self.results.errors.values())}  "
            f"events {self.results.events_accepted:,}  backlog {backlog:.0f}  RSS MiB "
            + ", ".join(f"{name} {rss / 2**20:.0f}" for name, rss in sample.items())
            + (
                "  cores " + ", ".join(f"{name} {c:.2f}" for name, c in cores[-1][1].items())
                if cores
                else ""
            ),
            flush=True,
        )

    async def _read_lag(self) -> tuple[float, float]:
        async with self.http.get("/metrics") as response:
            text = await response.text()
        gauge = max(metric_values(text, "fk_pipeline_consumer_lag_messages"), default=0.0)
        read = sum(metric_values(text, "fk_pipeline_events_in_total"))
        return gauge, max(0.0, self.results.events_accepted - read)

    async def _sample_lag(self) -> None:
        try:
            gauge, backlog = await self._read_lag()
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.results.fail("GET /metrics", f"{type(exc).__name__}: {exc}")
            return
        self.results.lag.append((time.monotonic() - self.results.started, gauge, backlog))

    async def _drain(self, timeout: float = 60.0) -> None:
        """After the load: how long until the worker has read every accepted event."""
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            _, backlog = await self._read_lag()
            if backlog == 0:
                self.results.drain_seconds = time.monotonic() - began
                return
            await asyncio.sleep(0.2)

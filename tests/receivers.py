"""Real HTTP receivers on 127.0.0.1 for webhook tests: they verify every delivery with the
official `standardwebhooks` library and record what they saw; and a server that never answers."""

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from standardwebhooks.webhooks import Webhook


@dataclass
class Received:
    webhook_id: str
    headers: dict[str, str]
    body: dict[str, Any]
    path: str = ""
    at: float = field(default_factory=time.monotonic)
    """When it arrived (`time.monotonic()`)."""


@dataclass
class Receiver:
    """POSTs to any path are recorded. `respond` decides the answer (status, headers) or sleeps;
    `secrets` verify signatures (any one must match; a failure is recorded in `bad`)."""

    secrets: list[str] = field(default_factory=list)
    respond: Callable[[int], Any] | None = None
    received: list[Received] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    hits: int = 0
    port: int = 0
    _runner: web.AppRunner | None = None
    _site: web.TCPSite | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def ids(self) -> set[str]:
        return {r.webhook_id for r in self.received}

    async def _handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        raw = await request.read()
        headers = dict(request.headers)
        if self.respond is not None:
            answer = self.respond(self.hits)
            if asyncio.iscoroutine(answer):
                answer = await answer
            if answer is not None:
                status, extra = answer
                return web.Response(status=status, headers=extra)
        if self.secrets:
            verified = False
            for secret in self.secrets:
                with contextlib.suppress(Exception):
                    Webhook(secret).verify(raw, headers)
                    verified = True
            if not verified:
                self.bad.append(headers.get("webhook-id", "?"))
                return web.Response(status=400)
        self.received.append(
            Received(
                headers.get("webhook-id", ""),
                headers,
                orjson.loads(raw) if raw else {},
                request.path,
            )
        )
        return web.Response(status=204)

    async def start(self, port: int = 0) -> "Receiver":
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, "127.0.0.1", port or self.port)
        await self._site.start()
        if not (port or self.port):
            server = self._site._server
            assert isinstance(server, asyncio.Server)
            self.port = server.sockets[0].getsockname()[1]
        else:
            self.port = port or self.port
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class Silent:
    """A TCP server on 127.0.0.1 that takes connections and never answers (nor reads)."""

    def __init__(self) -> None:
        self.connections = 0
        self.release = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def _hold(self, _: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await self.release.wait()
        writer.close()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._hold, "127.0.0.1", 0, backlog=2048)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self.release.set()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

"""A webhook receiver on 127.0.0.1 inside the load client: answers 204 at once and records each
delivery (webhook-id, and the delay from the campaign event's time to arrival)."""

import time
from datetime import datetime

import orjson
from aiohttp import web


class Receiver:
    def __init__(self) -> None:
        self.count = 0
        self.ids: set[str] = set()
        self.delays_ms: list[float] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        sockets = site._server.sockets if site._server is not None else []  # type: ignore[attr-defined]
        self.port = int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _hook(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        arrived = time.time()
        self.count += 1
        webhook_id = request.headers.get("webhook-id", "")
        if webhook_id not in self.ids:
            self.ids.add(webhook_id)
            sent = datetime.fromisoformat(str(body["timestamp"]).replace("Z", "+00:00"))
            self.delays_ms.append((arrived - sent.timestamp()) * 1000)
        return web.Response(status=204)

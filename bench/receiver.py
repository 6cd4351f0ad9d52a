"""A fast webhook receiver for the benchmark, in its own process: answers 204 at once and
records, per delivery, the delay from the event's time (the payload's `timestamp`) to arrival.

`python -m bench.receiver PORT` — GET /stats returns {count, unique, latenciesMs}.
"""

import sys
import time
from datetime import datetime

import orjson
from aiohttp import web

_seen: set[str] = set()
_latencies: list[float] = []
_count = 0


async def hook(request: web.Request) -> web.Response:
    global _count
    body = orjson.loads(await request.read())
    now = time.time()
    _count += 1
    webhook_id = request.headers.get("webhook-id", "")
    if webhook_id not in _seen:
        _seen.add(webhook_id)
        sent = datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00")).timestamp()
        _latencies.append((now - sent) * 1000)
    return web.Response(status=204)


async def stats(_: web.Request) -> web.Response:
    payload = {"count": _count, "unique": len(_seen), "latenciesMs": _latencies}
    return web.Response(body=orjson.dumps(payload), content_type="application/json")


async def reset(_: web.Request) -> web.Response:
    global _count
    _seen.clear()
    _latencies.clear()
    _count = 0
    return web.Response(status=204)


def main() -> None:
    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset", reset)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()

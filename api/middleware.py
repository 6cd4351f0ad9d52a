"""Pure-ASGI middleware (cheap on the hot path): request ids and metrics by route template, and a
body size limit answered with 413 problem details."""

import itertools
import os
import re
import time
from typing import Any

import orjson
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import PROBLEM_JSON
from core import metrics

REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id_of(scope: Scope) -> str:
    """The caller's `X-Request-ID` when it is a sane token, else a new one."""
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER.encode():
            text = str(value.decode("latin-1"))
            if _VALID_REQUEST_ID.match(text):
                return text
    return f"{_ID_PREFIX}{next(_ID_COUNTER):012x}"


_ID_PREFIX = os.urandom(10).hex()
_ID_COUNTER = itertools.count()
"""A new request id is this process's random prefix and a count: unique like a UUID, without
a system call for random bytes on every request (a twentieth of the event loop under load)."""


class RequestMetrics:
    """Counts and times requests by route template, and gives each request an id: echoed in the
    `X-Request-ID` response header, bound to every log line of the request (structlog
    contextvars) and carried in the headers of the messages the request publishes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        header = (REQUEST_ID_HEADER.encode(), request_id.encode())

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            structlog.contextvars.reset_contextvars(**tokens)
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            metrics.API_REQUESTS.labels(scope["method"], template, str(status)).inc()
            metrics.API_REQUEST_SECONDS.labels(template).observe(time.perf_counter() - started)


class BodyLimit:
    """Refuses bodies over `max_bytes` (by Content-Length, or while a chunked body streams).

    A streamed body is refused when the route reads past the limit. Frameworks wrap errors
    raised while a body is parsed (FastAPI answers 400 "error parsing the body", a form parser
    may give up on the part), so once the limit is crossed whatever the app answers is replaced
    by the 413."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, overrides: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.overrides = overrides or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.overrides.get(scope["path"], self.max_bytes)
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _too_large(send, limit, scope["path"])
                return
        received = 0
        exceeded = started = replaced = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started, replaced
            if exceeded and not started:
                # The app's own answer to the failed read (a 400 or 422) becomes the 413.
                if message["type"] == "http.response.start":
                    started = replaced = True
                    await _too_large(send, limit, scope["path"])
                return
            if replaced:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            # Whatever the app raised after the limit was crossed follows from the refused read.
            if not exceeded:
                raise
        if exceeded and not started:
            await _too_large(send, limit, scope["path"])


class _TooLarge(Exception):
    pass


async def _too_large(send: Send, limit: int, path: str) -> None:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": "Content Too Large",
        "status": 413,
        "detail": f"The request body exceeds {limit} bytes.",
        "instance": path,
    }
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})

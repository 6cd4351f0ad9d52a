"""A stateless OpenAI-compatible model on 127.0.0.1 for the soak: each request gets the step of the
test suite's happy path (tests/briefs/fake_llm.py) that its conversation has reached, so briefs
that overlap, time out or are retried by the platform never take each other's answers."""

import importlib
import threading
import time
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from soak.processes import free_port

# Imported by name so that type-checking this package does not pull in the tests.
fake_llm: Any = importlib.import_module("tests.briefs.fake_llm")


class Model:
    def __init__(self) -> None:
        self.port = free_port()
        self.requests = 0
        app = Starlette(routes=[Route("/v1/chat/completions", self._handle, methods=["POST"])])
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake model did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)

    async def _handle(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests += 1
        steps = fake_llm.happy_path()
        turns = sum(1 for m in body["messages"] if m.get("role") == "assistant")
        return JSONResponse(steps[min(turns, len(steps) - 1)](body))

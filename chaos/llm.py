"""A stateless OpenAI-compatible model on 127.0.0.1 for the chaos workload: it reads the
conversation and answers with the next tool round, then a brief grounded in the tool results (as
a good model would). Stateless, so concurrent briefs and platform restarts need no script."""

import threading
import time
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from briefs import composer


def _completion(message: dict[str, Any], finish_reason: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "chaos-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
    }


def _calls(*calls: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    tool_calls = [
        {
            "id": f"call_{i}_{time.monotonic_ns()}",
            "type": "function",
            "function": {"name": name, "arguments": orjson.dumps(args).decode()},
        }
        for i, (name, args) in enumerate(calls)
    ]
    return _completion(
        {"role": "assistant", "content": None, "tool_calls": tool_calls}, "tool_calls"
    )


def answer(body: dict[str, Any]) -> dict[str, Any]:
    """The next step of the plan, decided by which tool results the conversation holds."""
    request = composer.request_from_messages(body["messages"])
    results = composer.tool_results_from_messages(body["messages"])
    platform = request["platform"]
    if "personaClassifier" not in results:
        persona = {k: request.get(k) for k in ("brand", "product", "goal", "audience")}
        return _calls(("personaClassifier", persona))
    if "topCreators" not in results:
        return _calls(
            ("trendFetcher", {"platform": platform, "category": None}),
            ("topCreators", {"platform": platform, "category": None, "limit": 5}),
        )
    if "creativeAngle" not in results:
        persona_id = results["personaClassifier"]["persona"]["id"]
        angle = {"goal": request["goal"], "persona": persona_id, "platform": platform}
        return _calls(
            ("creativeAngle", angle), ("similarBriefs", {"query": request["product"], "limit": 3})
        )
    brief = orjson.dumps(composer.compose(request, results)).decode()
    return _completion({"role": "assistant", "content": brief}, "stop")


class FakeModel:
    def __init__(self, port: int) -> None:
        self.port = port
        self.requests = 0
        app = Starlette(routes=[Route("/v1/chat/completions", self._handle, methods=["POST"])])
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _handle(self, request: Request) -> JSONResponse:
        self.requests += 1
        return JSONResponse(answer(orjson.loads(await request.body())))

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

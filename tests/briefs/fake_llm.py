"""A scripted OpenAI-compatible server on 127.0.0.1 (uvicorn in a thread), driven by the real
`openai` SDK through `base_url`. Each request takes the next step of the script."""

import asyncio
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from briefs import composer
from tests.conftest import free_port

Body = dict[str, Any]
Step = Callable[[Body], Any]
_ids = itertools.count()


def _completion(message: Body, finish_reason: str) -> Body:
    return {
        "id": f"chatcmpl-{next(_ids)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "fake-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
    }


def tools(*calls: tuple[str, Any]) -> Step:
    """Answer with tool calls; an argument that is a str is sent as is (to send malformed JSON),
    a callable gets the request body."""

    def step(body: Body) -> Body:
        out = []
        for name, args in calls:
            value = args(body) if callable(args) else args
            arguments = value if isinstance(value, str) else orjson.dumps(value).decode()
            out.append(
                {
                    "id": f"call_{next(_ids)}",
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
            )
        return _completion({"role": "assistant", "content": None, "tool_calls": out}, "tool_calls")

    return step


def final(content: str | Callable[[Body], str], finish_reason: str = "stop") -> Step:
    def step(body: Body) -> Body:
        text = content(body) if callable(content) else content
        return _completion({"role": "assistant", "content": text}, finish_reason)

    return step


def refusal(text: str = "I can't help with that.") -> Step:
    return lambda body: _completion({"role": "assistant", "content": None, "refusal": text}, "stop")


def status(code: int, headers: dict[str, str] | None = None) -> Step:
    return lambda body: JSONResponse(
        {"error": {"message": f"scripted {code}", "type": "scripted"}}, code, headers=headers
    )


HANG = "hang"


@dataclass(frozen=True)
class Slow:
    """Answers as `step` after `seconds`: each answer within the client's timeout, but they add
    up over a brief's turns."""

    seconds: float
    step: Step


def request_of(body: Body) -> Body:
    return composer.request_from_messages(body["messages"])


def results_of(body: Body) -> dict[str, Body]:
    return composer.tool_results_from_messages(body["messages"])


def grounded_brief(body: Body) -> str:
    """A brief composed from the tool results in the conversation (what a good model writes)."""
    return orjson.dumps(composer.compose(request_of(body), results_of(body))).decode()


def persona_args(body: Body) -> Body:
    r = request_of(body)
    return {k: r.get(k) for k in ("brand", "product", "goal", "audience")}


def platform_args(body: Body) -> Body:
    return {"platform": request_of(body)["platform"], "category": None}


def creators_args(body: Body) -> Body:
    return {"platform": request_of(body)["platform"], "category": None, "limit": 5}


def angle_args(body: Body) -> Body:
    persona = results_of(body)["personaClassifier"]["persona"]["id"]
    r = request_of(body)
    return {"goal": r["goal"], "persona": persona, "platform": r["platform"]}


def happy_path() -> list[Step]:
    """Three tool rounds, then a grounded brief."""
    return [
        tools(("personaClassifier", persona_args)),
        tools(("trendFetcher", platform_args), ("topCreators", creators_args)),
        tools(("creativeAngle", angle_args), ("similarBriefs", {"query": "serum", "limit": 3})),
        final(grounded_brief),
    ]


def well_behaved(body: Body) -> Any:
    """The next step of `happy_path` for whatever conversation arrives (by the number of tool
    rounds so far), so one server can answer any number of briefs in any order."""
    steps = happy_path()
    rounds = sum(
        1 for m in body["messages"] if m.get("role") == "assistant" and m.get("tool_calls")
    )
    try:
        return steps[min(rounds, len(steps) - 1)](body)
    except KeyError:  # a tool round failed: write the brief from what there is
        return final(grounded_brief)(body)


@dataclass
class FakeLLM:
    script: list[Step | Slow | str] = field(default_factory=list)
    fallback: Step | Slow | None = None
    """Answers every request that arrives after the script is exhausted."""
    requests: list[Body] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self._release = threading.Event()
        self._lock = threading.Lock()
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
                raise RuntimeError("fake LLM server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._release.set()
        self._server.should_exit = True
        self._thread.join(10)

    def load(self, *steps: Step | Slow | str) -> None:
        with self._lock:
            self.script = list(steps)

    async def _handle(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        with self._lock:
            self.requests.append(body)
            self.arrivals.append(time.monotonic())
            if self.script:
                step = self.script.pop(0)
            elif self.fallback is not None:
                step = self.fallback
            else:
                return JSONResponse({"error": {"message": "script exhausted"}}, 500)
        if step == HANG:
            # Held until the client gives up (or the server stops); never answers in time.
            await asyncio.get_running_loop().run_in_executor(None, self._release.wait, 10)
            return JSONResponse({"error": {"message": "released"}}, 500)
        if isinstance(step, Slow):
            await asyncio.sleep(step.seconds)
            step = step.step
        assert callable(step)
        result = step(body)
        return result if isinstance(result, Response) else JSONResponse(result)

"""A stateless OpenAI-compatible model on 127.0.0.1 for the chaos workload: it reads the
conversation and answers with the next tool round, then a brief grounded in the tool results (as
a good model would). Stateless, so concurrent briefs and platform restarts need no script."""

import importlib
import time
from typing import Any

import orjson

from briefs import composer

# Imported by name so that type-checking this package does not pull in the tests.
_fake_llm: Any = importlib.import_module("tests.briefs.fake_llm")


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


def fake_model(port: int) -> Any:
    """The test suite's fake OpenAI-compatible server (tests/briefs/fake_llm.py) answering every
    request with `answer`; not started yet (start(), stop(), base_url, requests)."""
    return _fake_llm.FakeLLM(fallback=answer, port=port)

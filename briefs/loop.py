"""The tool-calling loop: model turns, tool execution, the caps, and the one repair round.

Caps: model turns, tool calls and tokens per brief. A repeated identical tool call, or a call past
the tool budget, closes the tools: the model is told so and must answer from what it has. Unknown
tools and malformed arguments are answered as tool errors. A final answer that is not a valid
brief, or not grounded, gets one repair round; a second failure raises.
"""

import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
import structlog
from pydantic import ValidationError

from briefs.errors import InvalidModelOutput, Refused, Ungrounded
from briefs.framing import escaped_json, tool_block
from briefs.grounding import Source, Verdict, verify
from briefs.providers import Completion, Message, Provider
from briefs.tools import TOOL_SPECS, ToolBox
from schemas.briefs import BriefContent, BriefRequest, ToolCallRecord

log = structlog.get_logger(__name__)

# v2: tool results are framed as untrusted data; links only from fields of their own.
PROMPT_VERSION = "v2"
PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"


@lru_cache(maxsize=16)
def load_prompt(name: str, version: str = PROMPT_VERSION) -> str:
    return (PROMPTS_DIR / f"{name}.{version}.md").read_text(encoding="utf-8").strip()


@dataclass(frozen=True, slots=True)
class Caps:
    max_turns: int = 8
    max_tool_calls: int = 12
    max_tokens: int = 60_000


@dataclass
class LoopResult:
    content: BriefContent
    verdict: Verdict
    tools: list[ToolCallRecord] = field(default_factory=list)
    turns: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0


def request_block(request: BriefRequest) -> str:
    """The request as JSON inside the data block; `<`, `>` and `&` are escaped so no value can
    close the block."""
    data = request.model_dump(mode="json", by_alias=True, exclude_none=True)
    return load_prompt("user").replace("{request_json}", escaped_json(data, indent=True))


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.M)


def _parse_brief(text: str | None) -> tuple[BriefContent | None, str]:
    if not text or not text.strip():
        return None, "the answer was empty"
    stripped = _FENCE.sub("", text.strip())
    start, end = stripped.find("{"), stripped.rfind("}")
    if start < 0 or end <= start:
        return None, "the answer is not a JSON object"
    try:
        return BriefContent.model_validate_json(stripped[start : end + 1]), ""
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)[:6]
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'brief'}: {e['msg']}" for e in errors
        )
        return None, f"the JSON is not a valid brief: {details}"


def _assistant_message(completion: Completion) -> Message:
    message: Message = {"role": "assistant", "content": completion.content}
    if completion.tool_calls:
        message["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for c in completion.tool_calls
        ]
    return message


def _canonical(arguments: str) -> str:
    try:
        return orjson.dumps(orjson.loads(arguments or "{}"), option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONDecodeError:
        return arguments


async def run(
    provider: Provider, toolbox: ToolBox, request: BriefRequest, caps: Caps
) -> LoopResult:
    started = time.perf_counter()
    system = load_prompt("system")
    messages: list[Message] = [
        {"role": "system", "content": system},
        {"role": "user", "content": request_block(request)},
    ]
    result_sources: list[Source] = []
    records: list[ToolCallRecord] = []
    seen: set[tuple[str, str]] = set()
    tools_open = True
    repaired = False
    turns = prompt_tokens = completion_tokens = 0

    while True:
        if turns >= caps.max_turns:
            raise InvalidModelOutput(f"The model did not finish within {caps.max_turns} turns.")
        completion = await provider.complete(messages, TOOL_SPECS if tools_open else None)
        turns += 1
        prompt_tokens += completion.prompt_tokens
        completion_tokens += completion.completion_tokens
        if prompt_tokens + completion_tokens > caps.max_tokens:
            raise InvalidModelOutput(f"The brief exceeded its budget of {caps.max_tokens} tokens.")
        if completion.refusal or completion.finish_reason == "content_filter":
            log.info("briefs.refused", turns=turns)
            raise Refused("The model declined to write this brief.")
        if completion.finish_reason == "length":
            raise InvalidModelOutput("The model's answer was cut off (output length limit).")

        if completion.tool_calls:
            messages.append(_assistant_message(completion))
            close_reason = None
            for call in completion.tool_calls:
                key = (call.name, _canonical(call.arguments))
                if not tools_open:
                    outcome = {"error": "tools are closed; write the final brief now"}
                    ok = False
                elif len(records) >= caps.max_tool_calls:
                    outcome = {"error": "tool call budget exhausted; write the final brief now"}
                    ok, close_reason = False, "budget"
                elif key in seen:
                    outcome = {"error": "identical call already answered above; use that result"}
                    ok, close_reason = False, "repeat"
                else:
                    seen.add(key)
                    tool_result = await toolbox.call(call.name, call.arguments)
                    outcome, ok = tool_result.content, tool_result.ok
                    if ok:
                        result_sources.append(Source(call.id, call.name, outcome))
                records.append(
                    ToolCallRecord(
                        call_id=call.id,
                        tool=call.name[:60],
                        arguments=_arguments_for_record(call.arguments),
                        ok=ok,
                    )
                )
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": call.id,
                        "content": tool_block(outcome),
                    }
                )
            if close_reason and tools_open:
                log.info("briefs.tools_closed", reason=close_reason, calls=len(records))
                tools_open = False
                messages.append({"role": "user", "content": load_prompt("close")})
            continue

        content, problem = _parse_brief(completion.content)
        if content is not None:
            verdict = verify(
                content,
                result_sources,
                names=[request.brand, request.product],
                budget=request.budget,
                secret_text=system,
            )
            if verdict.ok:
                return LoopResult(
                    content=content,
                    verdict=verdict,
                    tools=records,
                    turns=turns,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens,
                    latency_ms=round((time.perf_counter() - started) * 1000, 1),
                )
            problems = verdict.problems
        else:
            problems = [problem]
        log.info("briefs.rejected", problems=problems[:5], repaired=repaired)
        if repaired:
            if content is None:
                raise InvalidModelOutput(f"The model's answer was not a valid brief: {problem}.")
            raise Ungrounded("The brief contained facts that no tool result supports.", problems)
        repaired = True
        messages.append({"role": "assistant", "content": completion.content or ""})
        listed = "\n".join(f"- {p}" for p in problems[:20])
        messages.append(
            {"role": "user", "content": load_prompt("repair").replace("{problems}", listed)}
        )


def _arguments_for_record(arguments: str) -> dict[str, Any]:
    try:
        decoded = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {"_malformed": arguments[:200]}
    if not isinstance(decoded, dict):
        return {"_malformed": arguments[:200]}
    return {str(k)[:60]: (v[:200] if isinstance(v, str) else v) for k, v in decoded.items()}

"""The tool loop against a scripted OpenAI-compatible server through the real SDK: several tool
rounds, retries, timeouts, bad tool calls, truncation, refusal, repair, and the caps."""

import time

import httpx
import orjson
import pytest

from api.main import create_app
from briefs.errors import InvalidModelOutput, Refused, Ungrounded, UpstreamTimeout
from briefs.framing import read_tool_block
from briefs.loop import load_prompt
from briefs.service import BriefService
from core.clickhouse import Store
from core.settings import Settings
from schemas.briefs import BriefRequest
from tests.briefs.fake_llm import (
    HANG,
    FakeLLM,
    Slow,
    final,
    grounded_brief,
    happy_path,
    persona_args,
    refusal,
    status,
    tools,
    well_behaved,
)

REQUEST = BriefRequest.model_validate(
    {
        "brand": "Glowlab",
        "product": "Vitamin C serum",
        "goal": "Launch the new serum",
        "platform": "instagram",
        "audience": "skincare lovers",
    }
)
BODY = REQUEST.model_dump(mode="json", by_alias=True, exclude_none=True)


def tool_messages(body: dict[str, object]) -> list[dict[str, object]]:
    return [m for m in body["messages"] if m["role"] == "tool"]  # type: ignore[attr-defined, index]


async def test_happy_path_with_several_tool_rounds(
    llm_client: httpx.AsyncClient, fake_llm: FakeLLM
) -> None:
    fake_llm.load(*happy_path())
    response = await llm_client.post("/generate-brief", json=BODY)
    assert response.status_code == 201, response.text
    brief = response.json()
    assert len(fake_llm.requests) == 4
    first = fake_llm.requests[0]
    assert first["model"] == "fake-model"
    assert {t["function"]["name"] for t in first["tools"]} == {
        "trendFetcher",
        "personaClassifier",
        "creativeAngle",
        "topCreators",
        "similarBriefs",
        "campaignForecast",
        "risingCreators",
    }
    assert all(t["function"]["strict"] for t in first["tools"])
    assert first["messages"][0] == {"role": "system", "content": load_prompt("system")}
    assert len(tool_messages(fake_llm.requests[-1])) == 5
    assert brief["meta"]["toolCalls"] == 5
    assert brief["meta"]["turns"] == 4
    assert brief["meta"]["tokens"] == {"prompt": 400, "completion": 80}
    assert brief["meta"]["model"] == "fake-model"
    assert brief["recommendedCreators"]
    metrics = (await llm_client.get("/metrics")).text
    assert 'fk_llm_calls_total{outcome="ok"}' in metrics
    assert 'fk_llm_tokens_total{kind="prompt"}' in metrics


async def test_429_honours_retry_after(llm_service: BriefService, fake_llm: FakeLLM) -> None:
    fake_llm.load(status(429, {"Retry-After": "1"}), *happy_path())
    generated = await llm_service.generate(REQUEST, "acme")
    assert generated.created
    gap = fake_llm.arrivals[1] - fake_llm.arrivals[0]
    assert gap >= 0.95, gap


async def test_500_then_success(llm_service: BriefService, fake_llm: FakeLLM) -> None:
    fake_llm.load(status(500), status(503), *happy_path())
    generated = await llm_service.generate(REQUEST, "acme")
    assert generated.brief.meta.turns == 4
    assert len(fake_llm.requests) == 6


async def test_5xx_until_the_retries_run_out_is_502(
    llm_client: httpx.AsyncClient, fake_llm: FakeLLM
) -> None:
    fake_llm.load(status(500), status(502), status(500))
    response = await llm_client.post("/generate-brief", json=BODY)
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "Traceback" not in response.text
    assert len(fake_llm.requests) == 3  # one try + llm_max_retries


async def test_client_errors_are_not_retried(llm_service: BriefService, fake_llm: FakeLLM) -> None:
    fake_llm.load(status(401))
    with pytest.raises(Exception, match="HTTP 401"):
        await llm_service.generate(REQUEST, "acme")
    assert len(fake_llm.requests) == 1


async def test_timeout_then_success(llm_service: BriefService, fake_llm: FakeLLM) -> None:
    fake_llm.load(HANG, *happy_path())
    generated = await llm_service.generate(REQUEST, "acme")
    assert generated.created


async def test_timeouts_until_the_retries_run_out_is_504(
    llm_client: httpx.AsyncClient, fake_llm: FakeLLM
) -> None:
    fake_llm.load(HANG, HANG, HANG)
    started = time.monotonic()
    response = await llm_client.post("/generate-brief", json=BODY)
    assert response.status_code == 504, response.text
    assert response.json()["title"] == "Gateway Timeout"
    assert time.monotonic() - started < 5


async def test_a_brief_past_its_deadline_is_504(
    llm_settings: Settings, demo_store: Store, topics: None, token: str, fake_llm: FakeLLM
) -> None:
    """Each answer comes well within the model timeout (0.5 s), but four turns of 0.6 s each
    outlast the brief's deadline of 1 s: the answer is a 504 at the deadline, not a brief later."""
    settings = llm_settings.model_copy(update={"brief_deadline_seconds": 1.0})
    fake_llm.fallback = Slow(0.6, well_behaved)
    app = create_app(settings, store=demo_store)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://api",
            headers={"Authorization": f"Bearer {token}"},
        ) as client,
    ):
        started = time.monotonic()
        response = await client.post("/generate-brief", json=BODY)
        elapsed = time.monotonic() - started
    assert response.status_code == 504, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["detail"] == "The brief was not ready within its deadline of 1 seconds."
    assert len(fake_llm.requests) < 4
    assert elapsed < 2.0


async def test_malformed_tool_arguments_are_reported_to_the_model(
    llm_service: BriefService, fake_llm: FakeLLM
) -> None:
    fake_llm.load(
        tools(("topCreators", "{not json"), ("trendFetcher", {"platform": "myspace"})),
        *happy_path(),
    )
    generated = await llm_service.generate(REQUEST, "acme")
    errors = [read_tool_block(m["content"]) for m in tool_messages(fake_llm.requests[1])]  # type: ignore[arg-type]
    assert errors[0] == {"error": "arguments are not valid JSON"}
    assert "platform" in errors[1]["error"]
    assert [t.ok for t in generated.brief.meta.tools][:2] == [False, False]


async def test_unknown_tool_is_reported_to_the_model(
    llm_service: BriefService, fake_llm: FakeLLM
) -> None:
    fake_llm.load(tools(("deleteAllCampaigns", {"confirm": True})), *happy_path())
    generated = await llm_service.generate(REQUEST, "acme")
    error = read_tool_block(tool_messages(fake_llm.requests[1])[0]["content"])  # type: ignore[arg-type]
    assert "unknown tool" in error["error"]
    assert "topCreators" in error["error"]
    assert generated.brief.meta.tools[0].ok is False


async def test_finish_reason_length_is_502(
    llm_client: httpx.AsyncClient, fake_llm: FakeLLM
) -> None:
    fake_llm.load(final('{"caption": "cut', finish_reason="length"))
    response = await llm_client.post("/generate-brief", json=BODY)
    assert response.status_code == 502
    assert "cut off" in response.json()["detail"]


async def test_refusal_is_422(llm_client: httpx.AsyncClient, fake_llm: FakeLLM) -> None:
    fake_llm.load(refusal())
    response = await llm_client.post("/generate-brief", json=BODY)
    assert response.status_code == 422
    assert "declined" in response.json()["detail"]


async def test_invalid_final_json_then_repair(llm_service: BriefService, fake_llm: FakeLLM) -> None:
    steps = happy_path()
    fake_llm.load(*steps[:3], final("Here is your brief: {caption: oops}"), final(grounded_brief))
    generated = await llm_service.generate(REQUEST, "acme")
    repair = fake_llm.requests[-1]["messages"][-1]
    assert repair["role"] == "user"
    assert "rejected" in repair["content"]
    assert generated.brief.meta.turns == 5


async def test_invalid_json_twice_is_an_error(llm_service: BriefService, fake_llm: FakeLLM) -> None:
    fake_llm.load(final("not json"), final('{"caption": "still not a brief"}'))
    with pytest.raises(InvalidModelOutput, match="not a valid brief"):
        await llm_service.generate(REQUEST, "acme")


def _with_invented_figures(body: dict[str, object]) -> str:
    brief = orjson.loads(grounded_brief(body))
    brief["caption"] = "Join 4,812,337 fans: 97.3% saw results! Visit glowlab-deals.com"
    return orjson.dumps(brief).decode()


async def test_ungrounded_brief_is_repaired(llm_service: BriefService, fake_llm: FakeLLM) -> None:
    steps = happy_path()
    fake_llm.load(*steps[:3], final(_with_invented_figures), final(grounded_brief))
    generated = await llm_service.generate(REQUEST, "acme")
    repair = fake_llm.requests[-1]["messages"][-1]["content"]
    assert "4,812,337" in repair
    assert "97.3" in repair
    assert "glowlab-deals.com" in repair
    assert "97.3" not in generated.brief.caption


async def test_ungrounded_twice_is_422(llm_client: httpx.AsyncClient, fake_llm: FakeLLM) -> None:
    steps = happy_path()
    fake_llm.load(*steps[:3], final(_with_invented_figures), final(_with_invented_figures))
    response = await llm_client.post("/generate-brief", json=BODY)
    assert response.status_code == 422
    problems = [e["message"] for e in response.json()["errors"]]
    assert any("97.3" in p for p in problems)


async def test_repeated_identical_call_closes_the_tools(
    llm_service: BriefService, fake_llm: FakeLLM
) -> None:
    call = ("personaClassifier", persona_args)
    fake_llm.load(tools(call), tools(call), final(grounded_brief))
    generated = await llm_service.generate(REQUEST, "acme")
    assert "tools" in fake_llm.requests[1]
    assert "tools" not in fake_llm.requests[2]  # closed: the model must answer
    assert fake_llm.requests[2]["messages"][-1]["content"] == load_prompt("close")
    assert [t.ok for t in generated.brief.meta.tools] == [True, False]


async def test_turn_cap(
    llm_settings: Settings, llm_service: BriefService, fake_llm: FakeLLM
) -> None:
    llm_service.caps = llm_service.caps.__class__(max_turns=3, max_tool_calls=12, max_tokens=10**6)
    fake_llm.load(*[tools(("similarBriefs", {"query": f"q{i}", "limit": 1})) for i in range(5)])
    with pytest.raises(InvalidModelOutput, match="3 turns"):
        await llm_service.generate(REQUEST, "acme")
    assert len(fake_llm.requests) == 3


async def test_tool_call_cap_closes_the_tools(llm_service: BriefService, fake_llm: FakeLLM) -> None:
    llm_service.caps = llm_service.caps.__class__(max_turns=8, max_tool_calls=2, max_tokens=10**6)
    many = tools(*[("similarBriefs", {"query": f"q{i}", "limit": 1}) for i in range(4)])
    fake_llm.load(many, final(grounded_brief))
    generated = await llm_service.generate(REQUEST, "acme")
    assert [t.ok for t in generated.brief.meta.tools] == [True, True, False, False]
    assert "tools" not in fake_llm.requests[1]


async def test_token_cap(llm_service: BriefService, fake_llm: FakeLLM) -> None:
    llm_service.caps = llm_service.caps.__class__(max_turns=8, max_tool_calls=12, max_tokens=200)
    fake_llm.load(*happy_path())
    with pytest.raises(InvalidModelOutput, match="200 tokens"):
        await llm_service.generate(REQUEST, "acme")


def test_error_statuses() -> None:
    assert UpstreamTimeout("x").status == 504
    assert Refused("x").status == 422
    assert Ungrounded("x", []).status == 422

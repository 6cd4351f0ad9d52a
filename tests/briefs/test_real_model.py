"""One brief against a real OpenAI-compatible model (Ollama, vLLM, LM Studio, OpenAI) when
FK_LLM_BASE_URL is set in the environment; skipped otherwise. The brief must pass the verifier."""

import pytest

from briefs.errors import Ungrounded
from briefs.providers import OpenAIProvider
from briefs.service import BriefService
from core.clickhouse import Store
from core.settings import Settings
from schemas.briefs import BriefRequest

_ENV = Settings(_env_file=None)  # type: ignore[call-arg]

pytestmark = pytest.mark.skipif(
    not _ENV.llm_base_url, reason="no real model configured (set FK_LLM_BASE_URL)"
)


async def test_real_model_writes_a_grounded_brief(settings: Settings, demo_store: Store) -> None:
    configured = settings.model_copy(
        update={
            "llm_base_url": _ENV.llm_base_url,
            "llm_api_key": _ENV.llm_api_key or "unused",
            "llm_model": _ENV.llm_model,
            "llm_timeout_seconds": max(_ENV.llm_timeout_seconds, 120.0),
        }
    )
    service = BriefService(configured, demo_store, OpenAIProvider(configured), None)
    request = BriefRequest.model_validate(
        {
            "brand": "Glowlab",
            "product": "Vitamin C serum",
            "goal": "Launch the serum to skincare fans",
            "platform": "instagram",
        }
    )
    try:
        generated = await service.generate(request, "acme")
    except Ungrounded as exc:
        # A real model may still invent facts: then the verifier must have refused the brief.
        problems = exc.problems
    else:
        problems = []
        assert generated.brief.meta.tool_calls >= 1
        assert 3 <= len(generated.brief.hook_ideas) <= 5
    finally:
        await service.aclose()
    assert all(isinstance(p, str) for p in problems)

"""The soak's OpenAI-compatible model on 127.0.0.1: the test suite's fake server
(tests/briefs/fake_llm.py) answering every request with `well_behaved`, the step of the happy path
its conversation has reached. Stateless, so briefs that overlap, time out or are retried by the
platform never take each other's answers."""

import importlib
from typing import Any

# Imported by name so that type-checking this package does not pull in the tests.
fake_llm: Any = importlib.import_module("tests.briefs.fake_llm")


def fake_model() -> Any:
    """A fake model server, not started yet (start(), stop(), base_url)."""
    return fake_llm.FakeLLM(fallback=fake_llm.well_behaved)

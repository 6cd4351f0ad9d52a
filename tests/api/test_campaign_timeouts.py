"""A campaign command that no campaign agent answers: a 503 within the command timeout that
says the change may still be applied and that a retry is safe (no agent runs in these tests)."""

from collections.abc import AsyncIterator

import httpx
import pytest

from api.main import create_app
from core.clickhouse import Store
from core.settings import Settings
from tests.api.test_http import assert_problem
from tests.conftest import served


@pytest.fixture
async def unanswered(
    settings: Settings, store: Store, topics: None, token: str
) -> AsyncIterator[httpx.AsyncClient]:
    quick = settings.model_copy(update={"command_timeout_seconds": 0.5})
    async with served(create_app(quick, store=store), token) as client:
        yield client


async def test_an_unanswered_change_is_a_503_that_says_it_may_still_apply(
    unanswered: httpx.AsyncClient,
) -> None:
    response = await unanswered.patch(
        "/campaigns/cmp_quiet", json={"budget": 5}, headers={"If-Match": '"1"'}
    )
    assert_problem(response, 503)
    assert response.headers["Retry-After"] == "1"
    detail = response.json()["detail"]
    assert "no answer within 0.5 s" in detail
    assert "may still be applied" in detail
    assert "nothing changed" not in detail


async def test_an_unanswered_create_is_a_503_that_says_a_retry_is_safe(
    unanswered: httpx.AsyncClient,
) -> None:
    response = await unanswered.post(
        "/campaigns", json={"name": "Quiet"}, headers={"Idempotency-Key": "quiet-1"}
    )
    assert_problem(response, 503)
    assert "Idempotency-Key is safe" in response.json()["detail"]

"""API4 (unrestricted resource consumption): per-caller token buckets on writes, on POST /events
and on the brief generator -- 429 problem details with Retry-After, counted in
fk_api_rate_limited_total -- plus the bucket arithmetic on a fake clock."""

import httpx
import pytest

from api.ratelimit import TokenBucket
from core.clickhouse import Store
from core.settings import Settings
from tests.api.test_http import assert_problem
from tests.factories import make_event
from tests.security.conftest import ORG_A, ORG_B, api_client, bearer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_refills_at_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(60, clock=clock)  # one per second, bursts of 60
    assert all(bucket.acquire(("o", "s")) == 0 for _ in range(60))
    assert bucket.acquire(("o", "s")) == pytest.approx(1.0)
    clock.now += 0.5
    assert bucket.acquire(("o", "s")) == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.acquire(("o", "s")) == 0
    assert bucket.acquire(("o", "other-subject")) == 0, "each key has its own bucket"
    clock.now += 3600
    assert all(bucket.acquire(("o", "s")) == 0 for _ in range(60)), "refills only up to the burst"
    assert bucket.acquire(("o", "s")) > 0


def test_zero_means_no_limit() -> None:
    bucket = TokenBucket(0, clock=Clock())
    assert all(bucket.acquire(("o", "s")) == 0 for _ in range(10_000))
    assert not bucket.buckets


def _limited(settings: Settings, **limits: int) -> Settings:
    return settings.model_copy(
        update={
            "rate_limit_writes_per_minute": 3,
            "rate_limit_events_per_minute": 2,
            "rate_limit_briefs_per_minute": 1,
            **limits,
        }
    )


def _rate_limited_count(text: str, limit: str) -> float:
    prefix = f'fk_api_rate_limited_total{{limit="{limit}"}} '
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.removeprefix(prefix))
    return 0.0


def assert_429(response: httpx.Response) -> None:
    assert_problem(response, 429)
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit(), retry_after
    assert 1 <= int(retry_after) <= 60


@pytest.mark.usefixtures("campaign_agent")  # it commands campaigns
async def test_writes_are_limited_per_token_subject(
    settings: Settings, store: Store, topics: None
) -> None:
    a, a_other_subject, b = (
        bearer(settings, ORG_A),
        bearer(settings, ORG_A, subject="ci"),
        bearer(settings, ORG_B),
    )
    async with api_client(_limited(settings), store) as client:
        before = _rate_limited_count((await client.get("/metrics")).text, "writes")
        created = [await client.post("/campaigns", json={"name": "c"}, headers=a) for _ in range(3)]
        assert [r.status_code for r in created] == [201, 201, 201]
        campaign = created[0].json()
        # POST, PATCH and the other write routes all draw on the same bucket.
        assert_429(await client.post("/campaigns", json={"name": "c"}, headers=a))
        assert_429(
            await client.patch(
                f"/campaigns/{campaign['id']}",
                json={"name": "d"},
                headers={**a, "If-Match": '"1"'},
            )
        )
        assert_429(
            await client.post(
                "/webhooks/endpoints", json={"url": "https://hooks.example.com/x"}, headers=a
            )
        )
        # Reads have their own budget; other subjects and organisations have their own buckets.
        assert (await client.get(f"/campaigns/{campaign['id']}", headers=a)).status_code == 200
        assert (await client.post("/campaigns", json={"name": "c"}, headers=b)).status_code == 201
        other = await client.post("/campaigns", json={"name": "c"}, headers=a_other_subject)
        assert other.status_code == 201
        # A refused request changed nothing.
        assert (await client.get(f"/campaigns/{campaign['id']}", headers=a)).json() == campaign
        assert len((await client.get("/campaigns", headers=a)).json()["items"]) == 4
        after = _rate_limited_count((await client.get("/metrics")).text, "writes")
        assert after - before == 3


@pytest.mark.usefixtures("campaign_agent")  # it commands campaigns
async def test_unauthenticated_requests_do_not_use_the_callers_budget(
    settings: Settings, store: Store, topics: None
) -> None:
    async with api_client(_limited(settings), store) as client:
        for _ in range(10):
            assert_problem(await client.post("/campaigns", json={"name": "c"}), 401)
        response = await client.post(
            "/campaigns", json={"name": "c"}, headers=bearer(settings, ORG_A)
        )
        assert response.status_code == 201


@pytest.mark.usefixtures("campaign_agent")  # it commands campaigns
async def test_events_have_their_own_limit(settings: Settings, store: Store, topics: None) -> None:
    a = bearer(settings, ORG_A)
    async with api_client(_limited(settings), store) as client:
        for _ in range(2):
            assert (await client.post("/events", json=make_event(), headers=a)).status_code == 202
        assert_429(await client.post("/events", json=make_event(), headers=a))
        # Ingestion does not use up the budget of other writes.
        assert (await client.post("/campaigns", json={"name": "c"}, headers=a)).status_code == 201


@pytest.mark.usefixtures("campaign_agent")  # it commands campaigns
async def test_brief_generator_is_limited(settings: Settings, store: Store, topics: None) -> None:
    a = bearer(settings, ORG_A)
    body = {
        "brand": "Glowlab",
        "product": "Serum",
        "goal": "Awareness",
        "platform": "instagram",
        "audience": "Skincare fans",
    }
    async with api_client(_limited(settings), store) as client:
        first = await client.post("/generate-brief", json=body, headers=a)
        assert first.status_code != 429, first.text
        assert_429(await client.post("/generate-brief", json=body, headers=a))
        metrics = (await client.get("/metrics")).text
        assert _rate_limited_count(metrics, "briefs") >= 1
        # The brief limit is separate from other writes.
        assert (await client.post("/campaigns", json={"name": "c"}, headers=a)).status_code == 201


def test_defaults_leave_room_for_heavy_writers(settings: Settings) -> None:
    """The suite's and the benchmarks' heaviest writers with one token: 100 concurrent PATCHes
    (tests/api/test_campaigns.py), 55 brief requests in a row (bench/briefs.py)."""
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert defaults.rate_limit_writes_per_minute >= 100
    assert defaults.rate_limit_briefs_per_minute >= 55
    assert defaults.rate_limit_events_per_minute >= 10_000


@pytest.mark.usefixtures("campaign_agent")  # it commands campaigns
async def test_reads_are_limited_per_token_subject_apart_from_writes(
    settings: Settings, store: Store, topics: None
) -> None:
    a, a_other_subject = bearer(settings, ORG_A), bearer(settings, ORG_A, subject="ci")
    async with api_client(_limited(settings, rate_limit_reads_per_minute=4), store) as client:
        before = _rate_limited_count((await client.get("/metrics")).text, "reads")
        reads = [await client.get("/campaigns", headers=a) for _ in range(4)]
        assert [r.status_code for r in reads] == [200] * 4
        # Every authenticated GET draws on the same bucket, whatever its parameters.
        assert_429(await client.get("/campaigns", headers=a))
        assert_429(await client.get("/top-performers", params={"minViews": 7}, headers=a))
        # Writes have their own budget; another subject has its own reads.
        assert (await client.post("/campaigns", json={"name": "c"}, headers=a)).status_code == 201
        assert (await client.get("/campaigns", headers=a_other_subject)).status_code == 200
        # Health, readiness and Prometheus answer without a token and without a budget.
        assert (await client.get("/healthz")).status_code == 200
        after = _rate_limited_count((await client.get("/metrics")).text, "reads")
        assert after - before == 2

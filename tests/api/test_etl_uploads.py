"""`POST /etl/uploads` on real chDB: the report, the rejected rows download, idempotent uploads,
whole-file refusals and the size limit, all as problem details."""

from typing import Any

import httpx

from api.main import create_app
from core.auth import issue_token
from core.clickhouse import Store
from core.settings import Settings
from tests.api.test_http import assert_problem
from tests.conftest import served

CSV = (
    "\ufeffcampaign_id,influencer_id,platform,post_id,views,likes,comments,shares,mood\r\n"
    "cmp_up,inf_a,instagram,p1,100,10,1,1,happy\r\n"
    'cmp_up,inf_b,tiktok,"p,2",200,-1,0,0,"multi\r\nline"\r\n'
    "cmp_up,inf_c,myspace,p3,300,30,3,3,meh\r\n"
    "cmp_up,inf_d,youtube,p4,400,40,4,4,ok\r\n"
)


async def post(client: httpx.AsyncClient, text: str, name: str = "perf.csv") -> httpx.Response:
    return await client.post("/etl/uploads", files={"file": (name, text.encode(), "text/csv")})


async def test_upload_reports_and_serves_rejected_rows(
    client: httpx.AsyncClient, store: Store
) -> None:
    response = await post(client, CSV)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    assert {
        k: report[k] for k in ("file", "rows", "accepted", "rejected", "inserted", "duplicates")
    } == {
        "file": "perf.csv",
        "rows": 4,
        "accepted": 2,
        "rejected": 2,
        "inserted": 2,
        "duplicates": 0,
    }
    assert report["errors"] == [
        {"line": 3, "column": "likes", "reason": "negative count"},
        {"line": 5, "column": "platform", "reason": "unknown platform"},
    ]
    assert report["extraColumns"] == ["mood"]
    rejected = await client.get(report["rejectedFile"])
    assert rejected.status_code == 200
    assert rejected.headers["content-type"].startswith("text/csv")
    lines = rejected.text.splitlines()
    assert lines[0] == "line,column,reason," + CSV.splitlines()[0].lstrip("\ufeff")
    assert lines[1].startswith('3,likes,negative count,cmp_up,inf_b,tiktok,"p,2",200,-1')
    # Another organisation cannot read it.
    other = issue_token(client_secret(client), org="globex")
    foreign = await client.get(report["rejectedFile"], headers={"Authorization": f"Bearer {other}"})
    assert_problem(foreign, 404)

    again = (await post(client, CSV)).json()
    assert (again["inserted"], again["duplicates"]) == (0, 2)
    assert store.query_rows_sync("SELECT count(), sum(views) FROM engagement_events") == [(2, 500)]


def client_secret(client: httpx.AsyncClient) -> str:
    app = client._transport.app  # type: ignore[attr-defined]
    secret: str = app.state.services.settings.jwt_secret
    return secret


async def test_upload_refreshes_top_performers(client: httpx.AsyncClient) -> None:
    before = await client.get("/top-performers", params={"campaignId": "cmp_up"})
    assert before.json()["items"] == []
    await post(client, CSV)
    after = await client.get("/top-performers", params={"campaignId": "cmp_up"})
    assert [i["influencerId"] for i in after.json()["items"]] == ["inf_a", "inf_d"]


async def test_missing_columns_and_empty_files_are_422(client: httpx.AsyncClient) -> None:
    problem = assert_problem(await post(client, "campaignId,views\nc,1\n"), 422)
    assert "influencerId, platform, likes, comments, shares" in str(problem["detail"])
    assert_problem(await post(client, ""), 422)
    assert_problem(await client.post("/etl/uploads"), 422)  # no file field


async def test_uploads_over_the_limit_are_413(
    settings: Settings, store: Store, topics: None, token: str
) -> None:
    app = create_app(settings.model_copy(update={"etl_max_upload_bytes": 1000}), store=store)
    async with served(app, token) as c:
        header = "campaignId,influencerId,platform,views,likes,comments,shares\n"
        slightly = header + "c,i,x,1,0,0,0\n" * 80  # ~1.1 kB: passes the body limit
        huge = header + "c,i,x,1,0,0,0\n" * 10_000  # ~140 kB: refused before reading
        for text in (slightly, huge):
            problem = assert_problem(await post(c, text), 413)
            assert "exceeds" in str(problem["detail"])
        assert store.query_rows_sync("SELECT count() FROM engagement_events") == [(0,)]


async def test_an_upload_forgets_only_its_organisations_cached_answers(
    client: httpx.AsyncClient,
) -> None:
    """Another organisation's uploads cost nobody else a re-scoring: its cached rankings stay."""
    services = client._transport.app.state.services  # type: ignore[attr-defined]
    other = {"Authorization": f"Bearer {issue_token(client_secret(client), org='globex')}"}
    assert (await client.get("/top-performers")).status_code == 200
    theirs = await client.get("/top-performers", headers=other)
    assert theirs.status_code == 200
    orgs = {key[1] for key in services.top_cache._entries}
    assert {"acme", "globex"} <= orgs
    uploaded = await client.post(
        "/etl/uploads", files={"file": ("perf.csv", CSV.encode(), "text/csv")}, headers=other
    )
    assert uploaded.status_code == 200, uploaded.text
    orgs = {key[1] for key in services.top_cache._entries}
    assert "acme" in orgs
    assert "globex" not in orgs
    # The uploader's next read shows its load.
    after = await client.get("/top-performers", params={"campaignId": "cmp_up"}, headers=other)
    assert [i["influencerId"] for i in after.json()["items"]] == ["inf_a", "inf_d"]

"""An upload's report and rejected rows live in the store: every API replica on it answers
`GET /etl/uploads/{loadId}/rejected` alike (real chDB, two app instances with disks of their
own), another organisation gets the 404 of an unknown load, and the sweep removes the store's
copy with the files."""

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson

from api.main import create_app
from core.auth import issue_token
from core.clickhouse import Store
from core.settings import Settings
from etl.storage import PART_BYTES
from tests.api.test_etl_uploads import CSV
from tests.api.test_http import assert_problem
from tests.conftest import served, wait_until

_SERVED_HEADERS = (
    "content-type",
    "content-disposition",
    "content-length",
    "last-modified",
    "etag",
    "accept-ranges",
)


@asynccontextmanager
async def replica(
    settings: Settings, store: Store, data_dir: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """An API replica on `store` with `data_dir` for its disk, as acme."""
    app = create_app(settings.model_copy(update={"data_dir": data_dir}), store=store)
    async with served(app, issue_token(settings.jwt_secret, org="acme")) as client:
        yield client


async def _upload(client: httpx.AsyncClient, text: str) -> dict[str, Any]:
    files = {"file": ("perf.csv", text.encode(), "text/csv")}
    response = await client.post("/etl/uploads", files=files)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def _served(response: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    assert response.status_code == 200, response.text
    return 200, {h: response.headers[h] for h in _SERVED_HEADERS}, response.content


def _kept(store: Store, load_id: str) -> list[tuple[Any, ...]]:
    return store.query_rows_sync(
        "SELECT (SELECT count() FROM etl_upload_reports WHERE load_id = {id:String}),"
        " (SELECT count() FROM etl_upload_rejected WHERE load_id = {id:String})",
        {"id": load_id},
    )


async def age_in_store(store: Store, load_id: str, days: float) -> None:
    for table in ("etl_upload_reports", "etl_upload_rejected"):
        await store.command(
            f"ALTER TABLE {table} UPDATE created_at = created_at - toIntervalSecond({{s:UInt32}})"
            " WHERE load_id = {id:String} SETTINGS mutations_sync = 2",
            {"s": int(days * 86_400), "id": load_id},
        )


async def test_every_replica_serves_a_loads_rejected_rows_alike(
    settings: Settings, store: Store, topics: None, tmp_path: Path
) -> None:
    """Loaded through one replica, the rejected rows are served by another with a disk of its
    own, byte for byte with the same headers (a range too), and still by the first once its
    disk is gone; the report kept in the store is the upload's answer."""
    async with (
        replica(settings, store, tmp_path / "a") as a,
        replica(settings, store, tmp_path / "b") as b,
    ):
        report = await _upload(a, CSV)
        link = report["rejectedFile"]
        assert link == f"/etl/uploads/{report['loadId']}/rejected"
        first = _served(await a.get(link))
        assert first[1]["content-type"].startswith("text/csv")
        assert first[1]["content-disposition"] == (
            f'attachment; filename="{report["loadId"]}.rejected.csv"'
        )
        lines = first[2].decode().splitlines()
        assert lines[0] == "line,column,reason," + CSV.splitlines()[0].lstrip("\ufeff")
        assert lines[1].startswith('3,likes,negative count,cmp_up,inf_b,tiktok,"p,2",200,-1')
        assert _served(await b.get(link)) == first
        assert _served(await b.get(link)) == first  # from its cache now
        ranged = await b.get(link, headers={"Range": "bytes=0-3"})
        assert (ranged.status_code, ranged.content) == (206, first[2][:4])

        shutil.rmtree(tmp_path / "a")  # a container's disk goes with it
        assert _served(await a.get(link)) == first

        [(kept,)] = store.query_rows_sync(
            "SELECT report FROM etl_upload_reports WHERE load_id = {id:String}",
            {"id": report["loadId"]},
        )
        assert orjson.loads(kept) == report

        valid = "campaignId,influencerId,platform,views,likes,comments,shares\nc,i,tiktok,5,1,0,0\n"
        no_rejects = await _upload(b, valid)
        assert no_rejects["rejectedFile"] is None
        assert not list((tmp_path / "b").rglob(no_rejects["loadId"]))  # nothing left on disk
        for client in (a, b):
            missing = await client.get(f"/etl/uploads/{no_rejects['loadId']}/rejected")
            assert_problem(missing, 404)


async def test_another_organisations_load_is_an_unknown_one_on_every_replica(
    settings: Settings, store: Store, topics: None, tmp_path: Path
) -> None:
    unknown_id = "0123456789abcdef0123456789abcdef"
    globex = {"Authorization": f"Bearer {issue_token(settings.jwt_secret, org='globex')}"}
    async with (
        replica(settings, store, tmp_path / "a") as a,
        replica(settings, store, tmp_path / "b") as b,
    ):
        report = await _upload(a, CSV)
        for client in (a, b):
            _served(await client.get(report["rejectedFile"]))
            foreign = assert_problem(await client.get(report["rejectedFile"], headers=globex), 404)
            unknown = assert_problem(
                await client.get(f"/etl/uploads/{unknown_id}/rejected", headers=globex), 404
            )
            assert foreign["title"] == unknown["title"]
            assert foreign["detail"] == f"No rejected rows for load {report['loadId']}."
            assert unknown["detail"] == f"No rejected rows for load {unknown_id}."


async def test_the_same_content_again_answers_as_before_through_another_replica(
    settings: Settings, store: Store, topics: None, tmp_path: Path
) -> None:
    async with (
        replica(settings, store, tmp_path / "a") as a,
        replica(settings, store, tmp_path / "b") as b,
    ):
        first = await _upload(a, CSV)
        again = await _upload(b, CSV)
        assert again["loadId"] != first["loadId"]
        assert (first["inserted"], first["duplicates"]) == (2, 0)
        assert (again["inserted"], again["duplicates"]) == (0, 2)
        assert again["errors"] == first["errors"]
        mine = _served(await a.get(first["rejectedFile"]))
        theirs = _served(await a.get(again["rejectedFile"]))
        assert theirs[2] == mine[2]
        assert _served(await b.get(first["rejectedFile"])) == mine
    assert store.query_rows_sync("SELECT count(), sum(views) FROM engagement_events") == [(2, 500)]


async def test_the_sweep_removes_the_store_copy_and_every_replicas_files(
    settings: Settings, store: Store, topics: None, tmp_path: Path
) -> None:
    """Past FK_ETL_RETENTION_DAYS a load answers 404 on every replica at once; each replica's
    sweep (at start, then hourly) removes it from the store and its own files of it."""
    settings = settings.model_copy(update={"etl_retention_days": 7})
    async with (
        replica(settings, store, tmp_path / "a") as a,
        replica(settings, store, tmp_path / "b") as b,
    ):
        old = await _upload(a, CSV)
        young = await _upload(a, CSV)
        for client in (a, b):
            for report in (old, young):
                _served(await client.get(report["rejectedFile"]))
        await age_in_store(store, old["loadId"], days=8)
        for client in (a, b):
            assert_problem(await client.get(old["rejectedFile"]), 404)
    assert _kept(store, old["loadId"]) == [(1, 1)]
    folders = [next((tmp_path / side / "etl").glob(f"*/{old['loadId']}")) for side in "ab"]
    for folder in folders:
        for path in [*folder.iterdir(), folder]:
            then = path.stat().st_mtime - 8 * 86_400
            os.utime(path, (then, then))
    async with replica(settings, store, tmp_path / "a") as a:  # a restart sweeps
        await wait_until(lambda: _kept(store, old["loadId"]) == [(0, 0)])
        await wait_until(lambda: not folders[0].exists())
        _served(await a.get(young["rejectedFile"]))
    assert _kept(store, young["loadId"]) == [(1, 1)]
    assert folders[1].exists()  # b's own sweep removes b's files
    async with replica(settings, store, tmp_path / "b") as b:
        await wait_until(lambda: not folders[1].exists())
        _served(await b.get(young["rejectedFile"]))


async def test_large_rejected_files_are_kept_in_parts_and_served_whole(
    settings: Settings, store: Store, topics: None, tmp_path: Path
) -> None:
    """Rejected rows of more than a few parts (kept a part per row of the store) come back
    byte for byte through another replica, non-ASCII fields included."""
    header = "campaignId,influencerId,platform,views,likes,comments,shares\n"
    bad = "cmp_big,inf_é€😀_{n},myspace,10,1,0,0\n"
    rows = 3 * PART_BYTES // len(bad.encode()) + 100
    text = header + "".join(bad.format(n=n) for n in range(rows))
    async with (
        replica(settings, store, tmp_path / "a") as a,
        replica(settings, store, tmp_path / "b") as b,
    ):
        report = await _upload(a, text)
        assert report["rejected"] == rows
        here = _served(await a.get(report["rejectedFile"]))
        there = _served(await b.get(report["rejectedFile"]))
        assert there == here
        assert len(here[2]) > 3 * PART_BYTES
        assert here[2].decode().count("\n") == rows + 1
    [(parts,)] = store.query_rows_sync(
        "SELECT count() FROM etl_upload_rejected WHERE load_id = {id:String}",
        {"id": report["loadId"]},
    )
    assert parts >= 4

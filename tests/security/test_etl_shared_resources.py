"""CSV uploads share the platform with every organisation's stream and reads: they load on a
queue of their own (one thread, a bounded number waiting), so a burst of uploads neither holds
the threads the engagement sink needs nor grows without bound."""

import asyncio
import io
import os
import time
from pathlib import Path

import httpx

from core.clickhouse import Store
from core.settings import Settings
from etl.executor import UPLOADS
from etl.generate import write_sample
from streams.agents.engagement import EngagementConsumer
from tests.api.test_etl_upload_replicas import age_in_store
from tests.api.test_http import assert_problem
from tests.conftest import wait_until
from tests.factories import make_event
from tests.security.conftest import ORG_A, ORG_B, api_client, bearer


def _csv(rows: int, seed: int) -> bytes:
    out = io.StringIO()
    write_sample(out, rows, seed=seed)
    return out.getvalue().encode()


async def _upload(
    client: httpx.AsyncClient, headers: dict[str, str], body: bytes
) -> httpx.Response:
    files = {"file": ("perf.csv", body, "text/csv")}
    return await client.post("/etl/uploads", files=files, headers=headers)


async def _stored(store: Store, event_id: str) -> bool:
    rows = await store.query_rows(
        "SELECT count() FROM engagement_events WHERE event_id = {id:String}", {"id": event_id}
    )
    return bool(rows[0][0])


async def _event_latency(client: httpx.AsyncClient, store: Store, headers: dict[str, str]) -> float:
    """Seconds from `POST /events` until the event is in the store."""
    event = make_event()
    started = time.monotonic()
    assert (await client.post("/events", json=event, headers=headers)).status_code == 202
    await wait_until(lambda: _stored(store, event["eventId"]), interval=0.01)
    return time.monotonic() - started


async def test_concurrent_uploads_do_not_hold_up_the_engagement_stream(
    settings: Settings, store: Store, topics: None, pipeline: EngagementConsumer
) -> None:
    """Sixteen uploads at once from three organisations (more than the default executor's threads
    on a small machine) keep each event's way into the store within 1 s or 5x its (median) time
    without uploads; before the uploads had their own queue the events waited for every load."""
    settings = settings.model_copy(update={"etl_max_waiting_uploads": 20})
    a = bearer(settings, ORG_A)
    uploaders = [bearer(settings, org) for org in (ORG_A, ORG_B, "initech")]
    sample = _csv(4_000, seed=1)
    files = [sample.replace(b"\ncmp_", f"\nc{n:02}_".encode()) for n in range(16)]
    async with api_client(settings, store) as client:
        quiet = sorted([await _event_latency(client, store, a) for _ in range(3)])[1]
        uploads = [
            asyncio.create_task(_upload(client, uploaders[n % 3], body))
            for n, body in enumerate(files)
        ]
        await wait_until(lambda: UPLOADS.admitted >= 2, interval=0.01)
        busy = []
        while UPLOADS.admitted >= 2:  # one loading, others waiting
            busy.append(await _event_latency(client, store, a))
        answers = await asyncio.gather(*uploads)
    assert [r.status_code for r in answers] == [200] * len(files), answers[0].text
    assert len(busy) >= 3
    assert max(busy) <= max(1.0, 5 * quiet), (quiet, busy)


async def test_uploads_past_the_queue_are_refused_with_retry_after(
    settings: Settings, store: Store, topics: None
) -> None:
    """With one place to wait: one upload loads, one waits, the rest get 503 problem details
    with Retry-After; an organisation holding its half of the places gets 429 while another
    organisation's upload still finds room."""
    settings = settings.model_copy(update={"etl_max_waiting_uploads": 3})
    a, b = bearer(settings, ORG_A), bearer(settings, ORG_B)
    body = _csv(30_000, seed=1)
    async with api_client(settings, store) as client:
        mine = [asyncio.create_task(_upload(client, a, body)) for _ in range(2)]
        await wait_until(lambda: UPLOADS.admitted == 2, interval=0.01)
        over_share = await _upload(client, a, body)
        assert "share" in str(assert_problem(over_share, 429)["detail"])
        theirs = [asyncio.create_task(_upload(client, b, body)) for _ in range(2)]
        await wait_until(lambda: UPLOADS.admitted == 4, interval=0.01)
        full = await _upload(client, b, body)
        problem = assert_problem(full, 503)
        assert "waiting" in str(problem["detail"])
        for refused in (over_share, full):
            assert int(refused.headers["Retry-After"]) >= 1
        answers = await asyncio.gather(*mine, *theirs)
        assert [r.status_code for r in answers] == [200] * 4
        assert UPLOADS.admitted == 0
        # Room again once the queue drained.
        assert (await _upload(client, b, body)).status_code == 200


# -- what uploads leave on disk --------------------------------------------------------------

_REJECTS = (
    "campaignId,influencerId,platform,views,likes,comments,shares\n"
    + "cmp_r,inf_r,myspace,10,1,0,0\n" * 50
    + "cmp_r,inf_ok,instagram,10,1,0,0\n"
).encode()


async def _rejecting_upload(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    response = await _upload(client, headers, _REJECTS)
    assert response.status_code == 200, response.text
    link: str = response.json()["rejectedFile"]
    assert (await client.get(link, headers=headers)).status_code == 200
    return link


def _load_folders(settings: Settings) -> list[Path]:
    """The loads this replica keeps files of (their rejected rows, a cache of the store's)."""
    return sorted(p.parent for p in settings.data_dir.rglob("rejected.csv"))


def _kept_sizes(store: Store, org: str) -> list[int]:
    """The sizes of `org`'s loads in the store (report and rejected rows), oldest first."""
    rows = store.query_rows_sync(
        "SELECT length(report) + rejected_bytes FROM etl_upload_reports FINAL"
        " WHERE org = {org:String} ORDER BY created_at",
        {"org": org},
    )
    return [int(size) for (size,) in rows]


def _age(folder: Path, days: float) -> None:
    """Date a load's folder and files `days` back, as if it had been made then."""
    then = time.time() - days * 86_400
    for path in [*folder.rglob("*"), folder]:
        os.utime(path, (then, then))


async def test_organisation_folders_cannot_climb_or_collide(
    settings: Settings, store: Store, topics: None
) -> None:
    """Organisations named `..`, `a/b`, `a_b`, `a.b` or a thousand characters each keep their
    loads in a folder of their own directly under `<data dir>/etl`; none can read another's."""
    orgs = ["..", "../..", "a/b", "a_b", "a.b", "a b", "é" * 1000, "acme"]
    async with api_client(settings, store) as client:
        links = {org: await _rejecting_upload(client, bearer(settings, org)) for org in orgs}
        for org, link in links.items():
            for other in orgs:
                if other != org:
                    foreign = await client.get(link, headers=bearer(settings, other))
                    assert_problem(foreign, 404)
    root = (settings.data_dir / "etl").resolve()
    folders = _load_folders(settings)
    assert len(folders) == len(orgs)
    assert {f.resolve().parent.parent for f in folders} == {root}  # no climbing
    assert len({f.parent for f in folders}) == len(orgs)  # no sharing
    assert all(".." not in f.parts and len(f.parent.name) < 100 for f in folders)


async def test_loads_past_the_retention_are_not_served_and_are_swept(
    settings: Settings, store: Store, topics: None
) -> None:
    """A load older than FK_ETL_RETENTION_DAYS answers 404 at once and is removed from the
    store and the disk by the sweep at start; loads within the retention keep working."""
    settings = settings.model_copy(update={"etl_retention_days": 7})
    a = bearer(settings, ORG_A)
    async with api_client(settings, store) as client:
        old_link = await _rejecting_upload(client, a)
        [old_folder] = _load_folders(settings)
        young_link = await _rejecting_upload(client, a)
        _age(old_folder, days=8)
        await age_in_store(store, old_folder.name, days=8)
        assert_problem(await client.get(old_link, headers=a), 404)
        assert (await client.get(young_link, headers=a)).status_code == 200
    async with api_client(settings, store) as client:  # a restart sweeps
        await wait_until(lambda: not old_folder.exists())
        assert (await client.get(young_link, headers=a)).status_code == 200
    assert len(_load_folders(settings)) == 1
    assert len(_kept_sizes(store, ORG_A)) == 1


async def test_an_organisations_loads_beyond_its_quota_go_oldest_first(
    settings: Settings, store: Store, topics: None
) -> None:
    """With FK_ETL_MAX_STORED_MB_PER_ORG room for three and a half loads, each new load
    removes its organisation's oldest ones past the quota; another organisation's are kept."""
    async with api_client(settings, store) as client:
        await _rejecting_upload(client, bearer(settings, "sizer"))
    [one_load] = _kept_sizes(store, "sizer")
    quota = 3.5 * one_load
    settings = settings.model_copy(update={"etl_max_stored_mb_per_org": quota / 1024 / 1024})
    a, b = bearer(settings, ORG_A), bearer(settings, ORG_B)
    async with api_client(settings, store) as client:
        theirs = await _rejecting_upload(client, b)
        mine = [await _rejecting_upload(client, a) for _ in range(5)]
        served = [(await client.get(link, headers=a)).status_code for link in mine]
        assert served == [404, 404, 200, 200, 200]
        assert (await client.get(theirs, headers=b)).status_code == 200
    stored = sum(_kept_sizes(store, ORG_A))
    assert 2.5 * one_load < stored <= quota  # three loads (reports differ by a few bytes)
    mine_on_disk = [f for f in _load_folders(settings) if f.parent.name.startswith(f"{ORG_A}+")]
    assert sorted(f.name for f in mine_on_disk) == sorted(link.split("/")[3] for link in mine[2:])


async def test_loads_of_the_earlier_layout_are_served_only_where_the_folder_was_unambiguous(
    settings: Settings, store: Store, topics: None
) -> None:
    """Folders from before were named by the organisation with odd characters made `_`: the
    `acme` folder can only be acme's (still served within the retention), the `a_b` one may be
    `a/b`'s (never served)."""
    load_id = "0123456789abcdef0123456789abcdef"
    for folder in ("acme", "a_b"):
        earlier = settings.data_dir / "etl" / folder / load_id
        earlier.mkdir(parents=True)
        (earlier / "rejected.csv").write_text("line,column,reason\n")
    link = f"/etl/uploads/{load_id}/rejected"
    async with api_client(settings, store) as client:
        assert (await client.get(link, headers=bearer(settings, ORG_A))).status_code == 200
        for org in ("a_b", "a/b", ORG_B):
            assert_problem(await client.get(link, headers=bearer(settings, org)), 404)
        _age(settings.data_dir / "etl" / ORG_A / load_id, days=31)
        assert_problem(await client.get(link, headers=bearer(settings, ORG_A)), 404)

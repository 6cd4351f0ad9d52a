"""The in-memory rollups the embedded platform answers metrics from equal the store's answer for
the same moment: random streams with duplicates, late, out-of-order and slightly future events
through the real consumer, CSV loads through the real loader, windows read now and as they move
on; a restart (rollups loaded from the store) gives the same; held buckets stay bounded."""

import csv
import gc
import random
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.main import create_app
from core.clickhouse import Store
from core.repositories.engagement import entities_metrics
from core.rollups import (
    MINUTE_MS,
    EngagementRollups,
    MinuteRollups,
    metrics_window,
    window_starts,
)
from core.settings import Settings
from etl.loader import Outputs, load_file
from schemas.api import METRICS_KINDS, MetricsKind
from streams.agents.engagement import EngagementConsumer
from tests.conftest import wait_until
from tests.factories import encode, make_event

# Minutes before now, around both window edges (60 and 1 440 minutes), plus a future minute
# (within the accepted clock skew) and months-old events.
AGES_MIN = [-2, 0, 1, 59, 60, 61, 62, 1439, 1440, 1441, 1442, 3000, 60 * 24 * 40]
# How far the windows are moved on after the events, in minutes.
LATER_MIN = [0, 1, 2, 59, 61, 1380, 1441, 1500, 3000]


def random_events(rng: random.Random, tag: str, n: int, now_ms: int) -> list[dict[str, Any]]:
    return [
        make_event(
            eventId=f"{tag}-{i}",
            timestamp=now_ms - rng.choice(AGES_MIN) * MINUTE_MS + rng.randint(-30_000, 30_000),
            influencerId=rng.choice(["inf_1", "inf_2", "inf_3"]),
            campaignId=rng.choice(["cmp_1", "cmp_2", None]),
            views=rng.randint(0, 5000),
            likes=rng.randint(0, 300),
            comments=rng.randint(0, 30),
            shares=rng.randint(0, 20),
            saves=rng.randint(0, 9),
        )
        for i in range(n)
    ]


def write_csv(path: Path, rng: random.Random, n: int) -> None:
    """`n` valid rows (their events are stamped with the load's time)."""
    rows = [
        [
            rng.choice(["cmp_1", "cmp_3"]),
            rng.choice(["inf_1", "inf_4"]),
            "tiktok",
            *(rng.randint(1, 900), rng.randint(0, 50), rng.randint(0, 5), rng.randint(0, 3)),
        ]
        for _ in range(n)
    ]
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(
            ["campaignId", "influencerId", "platform", "views", "likes", "comments", "shares"]
        )
        out.writerows(rows)


async def stored_answer(
    store: Store, kind: MetricsKind, org: str, ids: list[str], now_ms: int
) -> dict[str, Any]:
    found = await entities_metrics(
        store, kind, org, ids, datetime.fromtimestamp(now_ms / 1000, UTC)
    )
    return {k: v.model_dump(by_alias=True) for k, v in found.items()}


def kept_answer(
    rollups: EngagementRollups, kind: MetricsKind, org: str, ids: list[str], now_ms: int
) -> dict[str, Any]:
    return {
        i: m.model_dump(by_alias=True)
        for i in ids
        if (m := rollups.metrics(kind, org, i, now_ms)) is not None
    }


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_events=st.integers(1, 120),
    n_duplicates=st.integers(0, 30),
    n_csv=st.integers(0, 25),
)
async def test_the_rollups_equal_the_store_at_every_moment(
    settings: Settings,
    store: Store,
    rollups: EngagementRollups,
    pipeline: EngagementConsumer,
    producer: AIOKafkaProducer,
    tmp_path: Path,
    seed: int,
    n_events: int,
    n_duplicates: int,
    n_csv: int,
) -> None:
    rng = random.Random(seed)
    tag = uuid.uuid4().hex[:8]
    org = f"org-{tag}"
    now_ms = int(time.time() * 1000)
    events = random_events(rng, tag, n_events, now_ms)
    # Repeats of earlier ids with other counts, out of order: the first one stored counts.
    stream = events + [
        {**events[d], "views": 1} for d in (rng.randrange(n_events) for _ in range(n_duplicates))
    ]
    rng.shuffle(stream)
    stored_before = pipeline.sink.stored
    sends = [
        await producer.send(
            settings.engagement_topic,
            encode(e),
            key=e["influencerId"].encode(),
            headers=[("fk-org", org.encode())],
        )
        for e in stream
    ]
    for sent in sends:
        await sent
    await wait_until(lambda: pipeline.sink.stored - stored_before == n_events)
    if n_csv:
        path = tmp_path / f"{tag}.csv"
        write_csv(path, rng, n_csv)
        report = load_file(store, path, Outputs.beside(path), org=org, rollups=rollups)
        assert report.inserted == n_csv

    restarted = EngagementRollups()
    restarted.load(store, int(time.time() * 1000))
    for kind in METRICS_KINDS:
        ids = sorted({i for o, i in rollups.keys(kind) if o == org})
        if kind == "influencer":  # not vacuous: every creator that sent something is held
            assert {e["influencerId"] for e in events} <= set(ids)
        for later in LATER_MIN:
            at = now_ms + later * MINUTE_MS
            expected = await stored_answer(store, kind, org, [*ids, "nobody"], at)
            assert set(expected) == set(ids), (kind, later)  # not vacuous: every key has events
            assert kept_answer(rollups, kind, org, ids, at) == expected, (kind, later)
            assert kept_answer(restarted, kind, org, ids, at) == expected, (kind, later)


async def test_held_buckets_are_forgotten_once_a_day_old_and_totals_stay(
    store: Store, rollups: EngagementRollups
) -> None:
    now_ms = int(time.time() * 1000)
    rollups.add_rows(
        [("acme", "cmp_1", f"inf_{i}", now_ms - i * MINUTE_MS, 10, 1, 0, 0, 0) for i in range(300)],
        now_ms,
    )
    assert rollups.buckets() == 300 + 300  # one per minute for the campaign, one per creator
    # A day and a minute later any write sweeps every key, read or not.
    later = now_ms + 1441 * MINUTE_MS
    rollups.add_rows([], later)
    assert rollups.buckets() == 0
    kept = rollups.metrics("campaign", "acme", "cmp_1", later)
    assert kept is not None
    assert kept.total.views == 3000
    assert kept.total.events == 300
    assert kept.window_24h.events == 0


async def test_until_loaded_the_rollups_ignore_writes_and_are_not_used(store: Store) -> None:
    rollups = EngagementRollups()
    rollups.add_rows([("acme", "cmp_1", "inf_1", int(time.time() * 1000), 1, 0, 0, 0, 0)], 0)
    assert not rollups.ready
    rollups.load(store, int(time.time() * 1000))
    assert rollups.ready
    assert rollups.metrics("campaign", "acme", "cmp_1", int(time.time() * 1000)) is None


async def test_the_embedded_api_answers_metrics_from_the_rollups(
    settings: Settings,
    store: Store,
    rollups: EngagementRollups,
    pipeline: EngagementConsumer,
    topics: None,
    token: str,
) -> None:
    """With rollups the route reads memory, not the store: a row written to the store behind
    the worker's back (which a real writer never does) is not in the answer, while events that
    went through the pipeline are, at once."""
    app = create_app(settings, store=store, rollups=rollups)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api", headers={"Authorization": f"Bearer {token}"}
        ) as client:
            event = make_event(timestamp=int(time.time() * 1000) - 5 * MINUTE_MS)
            assert (await client.post("/events", json=[event])).status_code == 202
            await wait_until(
                lambda: rollups.metrics("campaign", "acme", "cmp_a", int(time.time() * 1000))
            )
            await store.command(
                "INSERT INTO engagement_events (event_id, event_time, influencer_id, campaign_id,"
                " platform, views, source, org) VALUES ('behind', now64(3), 'inf_a', 'cmp_a',"
                " 'tiktok', 1000000, 'stream', 'acme')"
            )
            body = (await client.get("/campaigns/cmp_a/metrics")).json()
            assert body["total"]["views"] == event["views"]
            assert body["window1h"]["events"] == 1
            creator = (await client.get("/influencers/inf_a/metrics")).json()
            assert creator["window24h"]["likes"] == event["likes"]
            assert (await client.get("/influencers/nobody/metrics")).status_code == 404


async def test_minute_buckets_are_not_scanned_by_the_garbage_collector(
    store: Store, rollups: EngagementRollups
) -> None:
    """The engagement consumer lets the collector run once a second in a process that holds a
    day of buckets: they must not be objects it scans."""
    now_ms = int(time.time() * 1000)
    rollups.add_rows(
        [("acme", "cmp_1", "inf_1", now_ms - i * MINUTE_MS, 10, 1, 0, 0, 0) for i in range(100)],
        now_ms,
    )
    gc.collect()
    held = list(rollups._series["campaign"].values())
    buckets = [b for series in held for b in series.minutes.values()]
    assert len(buckets) == 100
    assert not any(gc.is_tracked(b) for b in buckets)
    assert not any(gc.is_tracked(series.minutes) for series in held)


def brute_force_metrics(
    rows: list[tuple[str, str, str, int, int, int, int, int, int]],
    kind: MetricsKind,
    org: str,
    entity: str,
    now_ms: int,
) -> dict[str, Any] | None:
    """The three windows at `now_ms` summed row by row from the raw rows."""
    hour_from, day_from = window_starts(now_ms)
    column = 1 if kind == "campaign" else 2
    mine = [r for r in rows if r[0] == org and r[column] == entity]
    if not mine:
        return None

    def sums(held: list[tuple[str, str, str, int, int, int, int, int, int]]) -> list[int]:
        counts = [(r[4], r[5], r[6], r[7], r[8]) for r in held]
        return [*(sum(c[i] for c in counts) for i in range(5)), len(held)]

    windows = {
        "window1h": sums([r for r in mine if r[3] // MINUTE_MS >= hour_from]),
        "window24h": sums([r for r in mine if r[3] // MINUTE_MS >= day_from]),
        "total": sums(mine),
    }
    return {name: metrics_window(s).model_dump(by_alias=True) for name, s in windows.items()}


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    batches=st.integers(1, 4),
    huge=st.booleans(),
)
def test_batched_rollups_equal_the_rows_summed_one_by_one(
    data: st.DataObject, batches: int, huge: bool
) -> None:
    """Summing a batch per key and minute first changes no answer: rows of many minutes (late
    ones past either window, a future one), keys repeated within a batch and across batches,
    rows without a campaign, counts whose sums leave int64, windows read as they move on; and
    the minute buckets handed over add up to the same per minute and scope."""
    now_ms = 29_000_000 * MINUTE_MS + data.draw(st.integers(0, MINUTE_MS - 1))
    count = st.integers(0, 2**53) if huge else st.integers(0, 5000)
    row = st.builds(
        lambda org, campaign, creator, age, offset, counts: (
            org,
            campaign,
            creator,
            now_ms - age * MINUTE_MS + offset,
            *counts,
        ),
        st.sampled_from(["acme", "globex"]),
        st.sampled_from(["", "c1", "c2"]),
        st.sampled_from(["i1", "i2", "i3"]),
        st.sampled_from(AGES_MIN),
        st.integers(-30_000, 30_000),
        st.tuples(count, count, count, count, count),
    )
    minutes = MinuteRollups()
    rollups = EngagementRollups(minutes)
    rollups.ready = True
    added: list[tuple[str, str, str, int, int, int, int, int, int]] = []
    handed: dict[tuple[int, tuple[str, str, str]], list[int]] = {}
    at = now_ms
    for _ in range(batches):
        batch = data.draw(st.lists(row, max_size=40))
        rollups.add_rows(iter(batch), at)  # the sink hands over a generator
        added += batch
        at += data.draw(st.sampled_from([0, 1, 61]))
        for minute, scope, views, engagements in minutes.close(at):
            sums = handed.setdefault((minute, scope), [0, 0])
            sums[0] += views
            sums[1] += engagements
    for minute, scope, views, engagements in minutes.close(at + 10**9):
        sums = handed.setdefault((minute, scope), [0, 0])
        sums[0] += views
        sums[1] += engagements

    expected: dict[tuple[int, tuple[str, str, str]], list[int]] = {}
    for org, campaign, creator, time_ms, views, likes, comments, shares, _ in added:
        scopes = [(org, "campaign", campaign)] if campaign else []
        for scope in [*scopes, (org, "creator", creator)]:
            sums = expected.setdefault((time_ms // MINUTE_MS, scope), [0, 0])
            sums[0] += views
            sums[1] += likes + comments + shares
    assert handed == expected

    for later in LATER_MIN:
        read_at = at + later * MINUTE_MS
        held: list[tuple[MetricsKind, list[str]]] = [
            ("campaign", ["c1", "c2", ""]),
            ("influencer", ["i1", "i2", "i3"]),
        ]
        for kind, ids in held:
            for org in ("acme", "globex"):
                for entity in ids:
                    kept = rollups.metrics(kind, org, entity, read_at)
                    answer = None if kept is None else kept.model_dump(by_alias=True)
                    expected_answer = (
                        None
                        if not entity
                        else brute_force_metrics(added, kind, org, entity, read_at)
                    )
                    assert answer == expected_answer, (kind, org, entity, later)


def test_an_empty_batch_changes_nothing_but_the_windows() -> None:
    minutes = MinuteRollups()
    rollups = EngagementRollups(minutes)
    rollups.ready = True
    rollups.add_rows([], 0)
    rollups.add_rows(iter([]), MINUTE_MS)
    assert rollups.buckets() == 0
    assert minutes.pending() == 0

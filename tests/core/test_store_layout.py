"""The store's physical layout serves the API's reads: creator metrics read the narrow
`by_org_influencer_metrics` projection, not the whole table."""

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from api.queries import _METRICS_SQL
from core.clickhouse import MIGRATIONS_DIR, Store
from core.settings import Settings
from streams.transforms import EVENT_COLUMNS, EventBatch


def test_creator_metrics_read_the_projection_of_their_columns(store: Store) -> None:
    now = datetime.now(UTC)
    batch = EventBatch()
    for i in range(200):
        row = (f"p{i}", int(now.timestamp() * 1000) - i * 60_000, f"inf_{i % 7}", f"cmp_{i % 3}")
        batch.add_row(
            (*row, "tiktok", "", 10, 1, 1, 1, 0, None, ()), partition=0, offset=i, org="acme"
        )
    store.insert_arrow_sync("engagement_events", batch.arrow())
    projections = [
        name
        for (name,) in store.query_rows_sync(
            "SELECT name FROM system.projections WHERE database = currentDatabase() "
            "AND table = 'engagement_events'"
        )
    ]
    assert projections == ["by_org_influencer_metrics"]
    parameters = {
        "org": "acme",
        "ids": ["inf_3"],
        "h1": now - timedelta(hours=1),
        "h24": now - timedelta(hours=24),
    }
    plan = "\n".join(
        line
        for (line,) in store.query_rows_sync(
            f"EXPLAIN projections = 1 {_METRICS_SQL['influencer']}", parameters
        )
    )
    assert "by_org_influencer_metrics" in plan, plan
    rows = store.query_rows_sync(_METRICS_SQL["influencer"], parameters)
    assert sum(r[-1] for r in rows) == len([i for i in range(200) if i % 7 == 3])


def test_a_store_from_before_the_narrow_projection_upgrades_in_place(
    settings: Settings, tmp_path: Path
) -> None:
    earlier = tmp_path / "migrations"
    earlier.mkdir()
    for path in MIGRATIONS_DIR.glob("*.sql"):
        if path.name < "0022":
            shutil.copy(path, earlier / path.name)
    database = f"{settings.clickhouse_database}_up"
    store = Store.open(settings.store_url, database, migrate=False)
    try:
        store.migrate(earlier)
        now = datetime.now(UTC)
        batch = EventBatch()
        for i in range(300):
            campaign = "cmp_created" if i < 100 else "cmp_nobody"
            row = (f"u{i}", int(now.timestamp() * 1000) - i * 1000, f"inf_{i % 5}", campaign)
            batch.add_row(
                (*row, "x", "", 2, 1, 0, 0, 0, None, ()), partition=0, offset=i, org="acme"
            )
        # As a store of then took them: no organisation column yet.
        store.insert_sync("engagement_events", batch.columns[:-1], EVENT_COLUMNS[:-1])
        store.command_sync(
            "INSERT INTO campaigns (id, org, name, version, body)"
            " VALUES ('cmp_created', 'acme', 'Created', 1, '{}')"
        )
        assert store.migrate() == [
            "0022_narrow_influencer_projection.sql",
            "0023_post_totals.sql",
            "0024_organisations.sql",
        ]
        # Events are adopted by the organisation that created their campaign, else by the
        # default organisation; so is the state kept from them.
        for table in ("engagement_events", "post_totals"):
            assert store.query_rows_sync(
                f"SELECT campaign_id, org, sum(events) FROM (SELECT campaign_id, org,"
                f" {'count()' if table == 'engagement_events' else 'sum(events)'} AS events"
                f" FROM {table} GROUP BY campaign_id, org) GROUP BY campaign_id, org"
                " ORDER BY campaign_id"
            ) == [("cmp_created", "acme", 100), ("cmp_nobody", "demo", 200)]
        # The per-post state is filled from the events stored before it existed.
        assert store.query_rows_sync("SELECT sum(events), sum(views) FROM post_totals") == [
            (300, 600)
        ]
        names = store.query_rows_sync(
            "SELECT name FROM system.projections WHERE database = currentDatabase() "
            "AND table = 'engagement_events'"
        )
        assert names == [("by_org_influencer_metrics",)]
        parameters = {
            "org": "demo",
            "ids": ["inf_2"],
            "h1": now - timedelta(hours=1),
            "h24": now - timedelta(days=1),
        }
        rows = store.query_rows_sync(_METRICS_SQL["influencer"], parameters)
        # sum(saves), count() and sum(views) over the age buckets: the rows are all there
        # (inf_2's events of the default organisation: 40 of its 60).
        assert sum(r[-2] for r in rows) == 0
        assert sum(r[-1] for r in rows) == 40
        assert sum(r[2] for r in rows) == 80
    finally:
        store.command_sync(f"DROP DATABASE IF EXISTS `{database}`")
        store.close()

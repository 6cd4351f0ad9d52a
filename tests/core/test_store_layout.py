"""The store's physical layout serves the API's reads (creator metrics read the narrow
`by_org_influencer_metrics` projection, not the whole table) and keeps organisations apart
(campaigns are sorted by organisation and id); stores of older layouts are migrated."""

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.clickhouse import MIGRATIONS_DIR, Store
from core.repositories.engagement import _METRICS_SQL
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
        applied = store.migrate()
        assert applied[:4] == [
            "0022_narrow_influencer_projection.sql",
            "0023_post_totals.sql",
            "0024_organisations.sql",
            "0025_campaigns_per_organisation.sql",
        ]
        assert applied == sorted(p.name for p in MIGRATIONS_DIR.glob("*.sql") if p.name >= "0022")
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


def _campaign_row(org: str, campaign_id: str, version: int, name: str) -> list[Any]:
    """A `campaigns` row in the columns every layout of the table has had."""
    now = datetime.now(UTC)
    body = f'{{"id": "{campaign_id}", "org": "{org}", "name": "{name}", "version": {version}}}'
    return [campaign_id, org, name, "", "draft", version, body, now, now, None, None]


_CAMPAIGN_COLUMNS = (
    "id",
    "org",
    "name",
    "brand",
    "status",
    "version",
    "body",
    "created_at",
    "updated_at",
    "start_date",
    "end_date",
)


def _insert_campaigns(store: Store, rows: list[list[Any]]) -> None:
    store.insert_sync("campaigns", list(zip(*rows, strict=True)), _CAMPAIGN_COLUMNS)


def _newest_per_campaign(store: Store) -> list[tuple[Any, ...]]:
    return store.query_rows_sync(
        "SELECT org, id, version, name FROM campaigns FINAL ORDER BY org, id"
    )


def test_two_organisations_campaigns_of_one_id_both_survive_merges(store: Store) -> None:
    """The table's sorting key is (organisation, id): a merge keeps the newest version of each
    organisation's campaign, never one organisation's instead of the other's."""
    _insert_campaigns(store, [_campaign_row("acme", "cmp_merge", 1, "A")])
    _insert_campaigns(
        store,
        [_campaign_row("globex", "cmp_merge", 1, "B"), _campaign_row("acme", "cmp_merge", 2, "A2")],
    )
    store.command_sync("OPTIMIZE TABLE campaigns FINAL")
    assert _newest_per_campaign(store) == [
        ("acme", "cmp_merge", 2, "A2"),
        ("globex", "cmp_merge", 1, "B"),
    ]
    assert store.query_rows_sync(
        "SELECT sorting_key FROM system.tables"
        " WHERE database = currentDatabase() AND name = 'campaigns'"
    ) == [("org, id",)]


def test_a_campaigns_table_keyed_by_id_alone_is_migrated_with_its_rows(
    settings: Settings, tmp_path: Path
) -> None:
    """A store whose `campaigns` table an older version created (sorted by id alone) is moved to
    the (organisation, id) key with every row on its next start; applying the step again (a
    start that died inside it) keeps them."""
    earlier = tmp_path / "migrations"
    earlier.mkdir()
    for path in MIGRATIONS_DIR.glob("*.sql"):
        if path.name < "0025":
            shutil.copy(path, earlier / path.name)
    database = f"{settings.clickhouse_database}_ids"
    store = Store.open(settings.store_url, database, migrate=False)
    try:
        store.migrate(earlier)
        assert store.query_rows_sync(
            "SELECT sorting_key FROM system.tables"
            " WHERE database = currentDatabase() AND name = 'campaigns'"
        ) == [("id",)]
        _insert_campaigns(store, [_campaign_row("acme", "cmp_old", 1, "Old")])
        _insert_campaigns(
            store,
            [
                _campaign_row("acme", "cmp_old", 2, "Old v2"),
                _campaign_row("globex", "cmp_theirs", 1, "Theirs"),
            ],
        )
        newest = "SELECT org, id, version, name, body FROM campaigns FINAL ORDER BY org, id"
        before = store.query_rows_sync(newest)
        applied = store.migrate()
        assert applied == sorted(p.name for p in MIGRATIONS_DIR.glob("*.sql") if p.name >= "0025")
        assert applied[0].startswith("0025")
        assert store.query_rows_sync(
            "SELECT sorting_key FROM system.tables"
            " WHERE database = currentDatabase() AND name = 'campaigns'"
        ) == [("org, id",)]
        # The newest version of every campaign, body included (older ones may merge away).
        assert store.query_rows_sync(newest) == before
        assert [row[:3] for row in before] == [
            ("acme", "cmp_old", 2),
            ("globex", "cmp_theirs", 1),
        ]
        # The moved table takes another organisation's campaign of an existing id.
        _insert_campaigns(store, [_campaign_row("globex", "cmp_old", 1, "Also old")])
        again = tmp_path / "again"
        again.mkdir()
        shutil.copy(MIGRATIONS_DIR / applied[0], again / "0999_again.sql")
        store.migrate(again)
        store.command_sync("OPTIMIZE TABLE campaigns FINAL")
        assert _newest_per_campaign(store) == [
            ("acme", "cmp_old", 2, "Old v2"),
            ("globex", "cmp_old", 1, "Also old"),
            ("globex", "cmp_theirs", 1, "Theirs"),
        ]
        tables = store.query_rows_sync(
            "SELECT name FROM system.tables WHERE database = currentDatabase()"
            " AND name LIKE 'campaigns%' ORDER BY name"
        )
        assert tables == [("campaigns",)]
    finally:
        store.command_sync(f"DROP DATABASE IF EXISTS `{database}`")
        store.close()

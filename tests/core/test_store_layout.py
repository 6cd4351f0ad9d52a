"""The store's physical layout serves the API's reads: creator metrics read the narrow
`by_influencer_metrics` projection, not the whole table."""

from datetime import UTC, datetime, timedelta

from api.queries import _METRICS_SQL
from core.clickhouse import Store
from streams.transforms import EventBatch


def test_creator_metrics_read_the_projection_of_their_columns(store: Store) -> None:
    now = datetime.now(UTC)
    batch = EventBatch()
    for i in range(200):
        row = (f"p{i}", int(now.timestamp() * 1000) - i * 60_000, f"inf_{i % 7}", f"cmp_{i % 3}")
        batch.add_row((*row, "tiktok", "", 10, 1, 1, 1, 0, None, ()), partition=0, offset=i)
    store.insert_arrow_sync("engagement_events", batch.arrow())
    projections = [
        name
        for (name,) in store.query_rows_sync(
            "SELECT name FROM system.projections WHERE database = currentDatabase() "
            "AND table = 'engagement_events'"
        )
    ]
    assert projections == ["by_influencer_metrics"]
    parameters = {"id": "inf_3", "h1": now - timedelta(hours=1), "h24": now - timedelta(hours=24)}
    plan = "\n".join(
        line
        for (line,) in store.query_rows_sync(
            f"EXPLAIN projections = 1 {_METRICS_SQL['influencer']}", parameters
        )
    )
    assert "by_influencer_metrics" in plan, plan
    (row,) = store.query_rows_sync(_METRICS_SQL["influencer"], parameters)
    assert row[-1] == len([i for i in range(200) if i % 7 == 3])

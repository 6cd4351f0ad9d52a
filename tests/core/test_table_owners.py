"""One owner per table: SQL naming a ClickHouse table appears only in the repository module of
its domain (`core/repositories/`), so no second reader or writer of a table can creep in."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = (
    "api",
    "core",
    "streams",
    "etl",
    "scoring",
    "briefs",
    "insights",
    "schemas",
    "bench",
    "chaos",
    "soak",
    "grafana",
    "examples",
    "fk",
)

OWNERS = {
    # The CSV loader's statements (built on the CSV header's column slots, so with the loader).
    "creators": "etl/queries.py",
    # The top-performer engine's store side; the store keeps both from inserted events.
    "post_totals": "scoring/queries.py",
    "creator_followers": "scoring/queries.py",
    "engagement_events": "core/repositories/engagement.py",
    "hashtag_minute": "core/repositories/briefs.py",
    "briefs": "core/repositories/briefs.py",
    "brief_cache": "core/repositories/briefs.py",
    "brief_embeddings": "core/repositories/briefs.py",
    "campaign_insights": "core/repositories/insights.py",
    "campaigns": "core/repositories/campaigns.py",
    "campaign_idempotency_keys": "core/repositories/campaigns.py",
    "webhook_endpoints": "core/repositories/webhooks.py",
    "webhook_deliveries": "core/repositories/webhooks.py",
    "webhook_attempts": "core/repositories/webhooks.py",
}
"""Every table of the migrations (`deploy/clickhouse/migrations/`) and the module that owns it."""

ALLOWED: dict[str, set[str]] = {
    # Dashboard panels: SQL that Grafana runs as the read-only reader (`core/reader.py`).
    "grafana/build.py": {"campaigns", "engagement_events"},
    # The store's readiness check: the schema is there.
    "core/clickhouse.py": {"engagement_events"},
    # A CSV load: staged rows checked against and inserted into the events (an ETL answer).
    "etl/queries.py": {"engagement_events"},
    # The top-performer query joins creators' attributes to the per-post state (a scoring one).
    "scoring/queries.py": {"creators"},
    # The busiest campaigns with their names: one scan of events joined to campaigns, an
    # engagement answer.
    "core/repositories/engagement.py": {"campaigns"},
    # The brief generator's retrieval indexes campaign texts beside briefs: a briefs answer.
    "core/repositories/briefs.py": {"campaigns"},
}
"""Modules that may name a table they do not own, and why."""

_INSERTS = re.compile(r"^insert(_[a-z]+)?(_sync)?$")


def sql_tables(text: str) -> set[str]:
    """The owned tables that SQL in `text` reads or writes (after FROM, JOIN, INTO or TABLE: our
    SQL spells its keywords in capitals, prose does not)."""
    return {
        table
        for table in OWNERS
        if re.search(rf"\b(?:FROM|JOIN|INTO|TABLE)\s+`?{table}`?(?![A-Za-z0-9_'])", text)
    }


def named_tables(path: Path) -> set[str]:
    """The owned tables a module's string literals name in SQL, or pass to an insert call."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found |= sql_tables(node.value)
        elif isinstance(node, ast.Call) and node.args:
            func, first = node.func, node.args[0]
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if _INSERTS.match(name) and isinstance(first, ast.Constant) and first.value in OWNERS:
                found.add(first.value)
    return found


def modules() -> list[Path]:
    paths: list[Path] = []
    for source in SOURCES:
        root = ROOT / source
        paths += [root] if root.is_file() else sorted(root.rglob("*.py"))
    return paths


def migrated_tables() -> set[str]:
    """The tables the migrations leave, in the order they run (a table dropped and created again
    is there); materialized views are left out: nothing reads them, their target tables are the
    ones read."""
    tables: set[str] = set()
    statement = re.compile(
        r"\b(CREATE|DROP) (?:TABLE|MATERIALIZED VIEW|VIEW)(?: IF (?:NOT )?EXISTS)? (\w+)"
        r"|\bRENAME TABLE (\w+) TO (\w+)"
    )
    for migration in sorted((ROOT / "deploy/clickhouse/migrations").glob("*.sql")):
        for verb, name, renamed, to in statement.findall(migration.read_text()):
            if renamed:
                tables = (tables - {renamed}) | {to}
            elif verb == "CREATE":
                tables.add(name)
            else:
                tables.discard(name)
    return {t for t in tables if not t.endswith("_mv")}


def test_every_table_the_migrations_leave_has_one_owner() -> None:
    assert sorted(migrated_tables() - OWNERS.keys()) == []
    assert sorted(OWNERS.keys() - migrated_tables()) == []


def test_a_table_is_named_in_sql_only_by_its_owner() -> None:
    strays = {}
    allowances_used: set[tuple[str, str]] = set()
    for path in modules():
        relative = path.relative_to(ROOT).as_posix()
        foreign = {t for t in named_tables(path) if OWNERS[t] != relative}
        allowed = ALLOWED.get(relative, set())
        allowances_used |= {(relative, t) for t in foreign & allowed}
        if foreign - allowed:
            strays[relative] = sorted(foreign - allowed)
    assert strays == {}
    # An exception nothing needs any more goes, so the list cannot rot either.
    allowances = {(module, t) for module, tables in ALLOWED.items() for t in tables}
    assert sorted(allowances - allowances_used) == []


@pytest.mark.parametrize(
    ("source", "tables"),
    [
        (
            'rows = store.query_rows("SELECT id FROM webhook_endpoints FINAL")',
            {"webhook_endpoints"},
        ),
        (
            'sql = f"SELECT {x} FROM webhook_attempts WHERE org = {{org:String}}"',
            {"webhook_attempts"},
        ),
        ('store.command("INSERT INTO webhook_deliveries SELECT 1")', {"webhook_deliveries"}),
        ('store.insert_gathered("webhook_attempts", rows, COLUMNS)', {"webhook_attempts"}),
        ('await store.insert("webhook_endpoints", rows, COLUMNS)', {"webhook_endpoints"}),
        ('"""Reads `webhook_endpoints` and the webhook_attempts audit log."""', set()),
        ('x = "SELECT 1 FROM webhook_endpoints_old"', set()),
        ('"""Merges attributes into `creators`, from creators\' files."""', set()),
        ('sql = "SELECT * FROM creators FINAL WHERE org = {org:String}"', {"creators"}),
    ],
)
def test_the_check_sees_sql_and_inserts_but_not_prose(
    tmp_path: Path, source: str, tables: set[str]
) -> None:
    module = tmp_path / "module.py"
    module.write_text(source + "\n")
    assert named_tables(module) == tables

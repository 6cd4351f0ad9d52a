"""The read-only ClickHouse user Grafana's dashboards query as: the tables it may read, the
columns nobody but the platform may read, and its provisioning on a ClickHouse server (`fk init`;
the embedded chDB has no users to provision)."""

import hashlib
import re
from collections.abc import Mapping, Sequence

import structlog

from core.clickhouse import Store, StoreQueryError

log = structlog.get_logger(__name__)

# What the SQL panels of grafana/build.py read (tests/deploy/test_grafana.py holds them to it).
READER_TABLES = ("engagement_events", "campaigns")

# Never granted, whatever table list the reader is given: webhook signing secrets (sealed with
# FK_SECRETS_KEY; a dashboard has no use for even their sealed form).
SECRET_COLUMNS: Mapping[str, frozenset[str]] = {
    "webhook_endpoints": frozenset({"secret", "previous_secret"}),
}

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

# The Grafana ClickHouse plugin sets max_execution_time on every query (its query timeout);
# readonly = 1 refuses any other setting, and every write and DDL.
_READER_SETTINGS = "readonly = 1, max_execution_time CHANGEABLE_IN_READONLY"


def _quoted(identifier: str) -> str:
    if not _IDENTIFIER.match(identifier):
        raise ValueError(f"not a plain identifier: {identifier!r}")
    return f"`{identifier}`"


def readable_columns(table: str, columns: Sequence[str]) -> list[str]:
    """`columns` of `table` without its secret ones, in their order."""
    secret = SECRET_COLUMNS.get(table, frozenset())
    return [c for c in columns if c not in secret]


def reader_grant(user: str, database: str, columns: Mapping[str, Sequence[str]]) -> str:
    """One GRANT of SELECT on the given tables of `database`, column by column, leaving out their
    secret columns; WITH REPLACE OPTION, so it also takes back whatever the user held before
    (a table or column no longer listed). Raises ValueError when a table has no column left."""
    elements = []
    for table, names in columns.items():
        readable = readable_columns(table, names)
        if not readable:
            raise ValueError(f"no readable column in {table}")
        listed = ", ".join(_quoted(c) for c in readable)
        elements.append(f"SELECT({listed}) ON {_quoted(database)}.{_quoted(table)}")
    if not elements:
        raise ValueError("no table to grant")
    return f"GRANT {', '.join(elements)} TO {_quoted(user)} WITH REPLACE OPTION"


def reader_user_statements(user: str, password: str, database: str) -> list[str]:
    """Create the user if it is missing, then set its password, default database and settings
    (so a changed password takes effect on the next run). Only the password's SHA-256 is sent."""
    if not password:
        raise ValueError("the reader needs a password")
    digest = hashlib.sha256(password.encode()).hexdigest()
    identified = f"IDENTIFIED WITH sha256_hash BY '{digest}'"
    name = _quoted(user)
    return [
        f"CREATE USER IF NOT EXISTS {name} {identified}",
        f"ALTER USER {name} {identified} DEFAULT DATABASE {_quoted(database)}"
        f" SETTINGS {_READER_SETTINGS}",
    ]


def table_columns(store: Store, tables: Sequence[str]) -> dict[str, list[str]]:
    """The columns of each of `tables` in the store's database, in table order; raises
    StoreQueryError when one of them does not exist."""
    rows = store.query_rows_sync(
        "SELECT table, name FROM system.columns"
        " WHERE database = {database:String} AND table IN {tables:Array(String)}"
        " ORDER BY table, position",
        {"database": store.database, "tables": list(tables)},
    )
    found: dict[str, list[str]] = {}
    for table, name in rows:
        found.setdefault(table, []).append(name)
    missing = [t for t in tables if t not in found]
    if missing:
        raise StoreQueryError(f"no table {', '.join(missing)} in {store.database}")
    return {t: found[t] for t in tables}


def provision_reader(
    store: Store, user: str, password: str, tables: Sequence[str] = READER_TABLES
) -> dict[str, list[str]]:
    """Create or update the read-only `user` on a ClickHouse server and grant it SELECT on the
    current columns of `tables` (secret columns never); idempotent, run after the migrations.
    Returns the columns granted per table. Not for chDB, which refuses users and grants."""
    granted = {t: readable_columns(t, c) for t, c in table_columns(store, tables).items()}
    for statement in [
        *reader_user_statements(user, password, store.database),
        reader_grant(user, store.database, granted),
    ]:
        store.command_sync(statement)
    log.info("store.reader_provisioned", user=user, tables=list(granted))
    return granted

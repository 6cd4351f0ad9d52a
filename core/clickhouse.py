"""The ClickHouse store: one client (chDB in-process or a server over HTTP), migrations, and
async wrappers that run the synchronous driver off the event loop.

Driver errors become `StoreUnavailable` (the API answers 503) or `StoreQueryError` (a bug of ours,
500); raw ClickHouse text never reaches a client.
"""

import asyncio
import contextlib
import importlib.util
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import clickhouse_connect
import pyarrow as pa
import structlog
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from core import jsonrows
from core.coalesce import GatheredWrites
from core.settings import Settings

log = structlog.get_logger(__name__)

T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "deploy" / "clickhouse" / "migrations"
_DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class StoreError(Exception):
    """Base of the store's errors."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or refused to work (retryable)."""


class StoreQueryError(StoreError):
    """A query of ours was rejected by the store (not retryable)."""


class StoreRejected(StoreError):
    """The store refused the data of an insert (not retryable: the same rows fail again).

    The message is the store's own first line (code name included), for a dead-letter reason.
    """


# Errors of an insert caused by the rows themselves: sending them again fails again. Anything
# else (memory, too many parts overall, a store going away) is retried.
_REJECTING = (
    "VIOLATED_CONSTRAINT",
    "TYPE_MISMATCH",
    "CANNOT_PARSE",
    "CANNOT_CONVERT_TYPE",
    "ARGUMENT_OUT_OF_BOUND",
    "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
    "TOO_LARGE_STRING_SIZE",
    "INCORRECT_DATA",
    "DECIMAL_OVERFLOW",
    "Too many partitions for single INSERT block",
)


# The embedded engine shares its process with the worker and the API: its caches of marks and
# primary indexes are bounded (the engine's defaults are 5 GiB each, sized for a server of its
# own), so the process's memory follows the data it reads now, not all it has read.
CHDB_OPTIONS = {
    "mark_cache_size": 128 * 1024 * 1024,
    "primary_index_cache_size": 64 * 1024 * 1024,
    "index_mark_cache_size": 16 * 1024 * 1024,
}


@dataclass(frozen=True, slots=True)
class ServerTls:
    """How an https:// (or clickhouse+https://, clickhouses://) store URL's certificate is
    checked: against `ca_file` (PEM; the system's authorities when None), or not at all when
    `verify` is False. http:// URLs ignore it."""

    ca_file: str | None = None
    verify: bool = True


def server_tls(settings: Settings) -> ServerTls:
    ca_file = settings.clickhouse_ca_file
    return ServerTls(str(ca_file) if ca_file else None, settings.clickhouse_verify)


def _connect(
    url: str, database: str, user: str, password: str, tls: ServerTls = ServerTls()
) -> Client:
    if url.startswith("chdb://"):
        if importlib.util.find_spec("chdb") is None:
            raise StoreUnavailable(
                "the embedded store (chdb://) needs the `embedded` extra:"
                " pip install 'fk-platform[embedded]', or set FK_CLICKHOUSE_URL to a server"
            )
        return clickhouse_connect.get_client(dsn=url, database=database, chdb_options=CHDB_OPTIONS)
    return clickhouse_connect.get_client(
        dsn=url,
        database=database,
        username=user,
        password=password,
        connect_timeout=5,
        send_receive_timeout=30,
        **_transport(url, tls),
    )


_TLS_SCHEMES = frozenset({"https", "clickhouse+https", "clickhouses"})
_PLAIN_SCHEMES = frozenset({"http", "clickhouse+http", "clickhouse"})


def _transport(url: str, tls: ServerTls) -> dict[str, Any]:
    """How a server URL is reached: its scheme alone decides between TLS and plain HTTP (the
    driver would otherwise guess TLS from port 8443 or 443, unverified against our CA file)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in _TLS_SCHEMES:
        options: dict[str, Any] = {"interface": "https", "secure": True, "verify": tls.verify}
        if tls.ca_file:
            options["ca_cert"] = tls.ca_file
        return options
    if scheme in _PLAIN_SCHEMES:
        return {"interface": "http"}
    raise StoreUnavailable(
        f"FK_CLICKHOUSE_URL: unknown scheme {scheme!r} (chdb://, http://, https:// or"
        " clickhouse+https://)"
    )


def _first_line(text: str, limit: int = 500) -> str:
    """The store's message without the stack trace or the echoed rows."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:limit]


def _split_statements(sql: str) -> list[str]:
    """Split a migration file on `;` at the end of a line (our DDL has none inside strings)."""
    parts = re.split(r";\s*$", sql, flags=re.MULTILINE)
    return [p.strip() for p in parts if p.strip() and not _only_comments(p)]


def _only_comments(text: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in text.splitlines())


class Store:
    """A connected store bound to one database. Create with `Store.open(...)`.

    Each of the store's threads has a client of its own: chDB's client serialises every call
    on a per-client lock, so one shared client ran the threads' queries one at a time (reads
    queued behind inserts and rankings). chDB allows any number of clients on one engine.

    Inserts have threads of their own, so ingestion never waits behind queries (rankings,
    look-ups) that occupy every reading thread under load, nor queries behind it: `writers` for
    the engagement stream's bulk inserts (Arrow tables), `row_writers` for every row insert
    (campaign versions, webhook deliveries, Idempotency-Keys, briefs), which commands and
    deliveries wait for and which must not queue behind the stream's.
    """

    def __init__(
        self,
        client: Client,
        database: str,
        *,
        workers: int = 4,
        writers: int = 2,
        row_writers: int = 2,
        connect: Callable[[], Client] | None = None,
    ) -> None:
        self.client = client
        self.database = database
        self.embedded = type(client).__module__.endswith("_chdbclient")
        """chDB in this process (it reads files on this machine); False for a server."""
        self._connect = connect
        self._local = threading.local()
        self._clients: list[Client] = []
        self._clients_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="store", initializer=self._mark_own_thread
        )
        self._write_executor = ThreadPoolExecutor(
            max_workers=writers,
            thread_name_prefix="store-write",
            initializer=self._mark_own_thread,
        )
        self._row_write_executor = ThreadPoolExecutor(
            max_workers=row_writers,
            thread_name_prefix="store-write-rows",
            initializer=self._mark_own_thread,
        )
        self._gathered: dict[tuple[str, tuple[str, ...]], GatheredWrites[Sequence[Any]]] = {}
        self._column_types: dict[str, dict[str, str]] = {}
        self._sizes = {
            self._executor: workers,
            self._write_executor: writers,
            self._row_write_executor: row_writers,
        }

    def _mark_own_thread(self) -> None:
        self._local.own = True

    @classmethod
    def open(
        cls,
        url: str,
        database: str,
        *,
        user: str = "default",
        password: str = "",
        migrate: bool = True,
        default_org: str = "demo",
        tls: ServerTls = ServerTls(),
    ) -> "Store":
        """Connect, create the database if needed and apply pending migrations (blocking).
        `tls` applies to an https:// URL (`server_tls(settings)`)."""
        if not _DATABASE_NAME.match(database):
            raise ValueError(f"invalid database name {database!r}")
        if url.startswith("chdb://"):
            Path(url.removeprefix("chdb://")).mkdir(parents=True, exist_ok=True)
        try:
            bootstrap = _connect(url, "default", user, password, tls)
            bootstrap.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
            client = _connect(url, database, user, password, tls)
        except ClickHouseError as exc:
            raise StoreUnavailable(f"cannot open store: {type(exc).__name__}") from exc
        except OSError as exc:
            raise StoreUnavailable(f"cannot reach store: {exc.strerror or exc}") from exc
        store = cls(client, database, connect=lambda: _connect(url, database, user, password, tls))
        if migrate:
            store.migrate(default_org=default_org)
        return store

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        url: str | None = None,
        database: str | None = None,
        migrate: bool = True,
    ) -> "Store":
        """`open` with the settings' store (`FK_CLICKHOUSE_*`), or another `url` / `database`
        reached with the same credentials and TLS."""
        return cls.open(
            url or settings.store_url,
            database or settings.clickhouse_database,
            user=settings.clickhouse_user,
            password=settings.clickhouse_password,
            tls=server_tls(settings),
            default_org=settings.default_org,
            migrate=migrate,
        )

    def migrate(self, directory: Path = MIGRATIONS_DIR, *, default_org: str = "demo") -> list[str]:
        """Apply every numbered `NNNN_*.sql` file not applied yet, in order; return their names.

        A statement may use the parameters `default_org` (`FK_DEFAULT_ORG`) and `owners` (the
        database-qualified name of `_campaign_owners`)."""
        parameters = {"default_org": default_org, "owners": f"{self.database}._campaign_owners"}
        self.client.command(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
            "ENGINE = ReplacingMergeTree ORDER BY version"
        )
        applied = {
            row[0]
            for row in self.client.query("SELECT version FROM schema_migrations FINAL").result_rows
        }
        done: list[str] = []
        for path in sorted(directory.glob("[0-9][0-9][0-9][0-9]_*.sql")):
            version = int(path.name[:4])
            if version in applied:
                continue
            for statement in _split_statements(path.read_text()):
                bound = {k: v for k, v in parameters.items() if f"{{{k}:" in statement}
                self.client.command(statement, parameters=bound or None)
            self.client.insert(
                "schema_migrations", [[version, path.name]], column_names=["version", "name"]
            )
            done.append(path.name)
            log.info("store.migrated", migration=path.name, database=self.database)
        return done

    def warm(self) -> None:
        """Start every store thread and open its client now, and read every table's column
        types for row inserts (blocking). Otherwise the first call a thread runs starts it and
        opens its client, so the first requests after a start paid for that (on the embedded
        engine 9 ms a client, 110 ms the first), and the first row insert into each table for
        a look-up of its columns."""
        self._read_column_types(self.client)
        for executor, size in self._sizes.items():
            everyone = threading.Barrier(size)

            def open_client(everyone: threading.Barrier = everyone) -> None:
                self._thread_client()
                # Held until every thread of the executor runs one: each gets a thread.
                with contextlib.suppress(threading.BrokenBarrierError):
                    everyone.wait(timeout=10)

            for opened in [executor.submit(open_client) for _ in range(size)]:
                opened.result()

    # -- blocking calls (run in the store's threads by the async wrappers) -------------------

    def _thread_client(self) -> Client:
        """The calling store thread's own client; any other thread shares `self.client`."""
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            if self._connect is None or not getattr(self._local, "own", False):
                client = self.client
            else:
                try:
                    client = self._connect()
                except ClickHouseError as exc:
                    raise StoreUnavailable(f"cannot open store: {type(exc).__name__}") from exc
                with self._clients_lock:
                    self._clients.append(client)
            self._local.client = client
        return client

    def query_rows_sync(
        self, sql: str, parameters: dict[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        try:
            result = self._thread_client().query(sql, parameters=parameters)
            return [tuple(row) for row in result.result_rows]
        except ClickHouseError as exc:
            raise self._translate(exc) from exc

    def query_columns_sync(
        self, sql: str, parameters: dict[str, Any] | None = None
    ) -> list[Sequence[Any]]:
        try:
            columns: list[Sequence[Any]] = list(
                self._thread_client().query(sql, parameters=parameters).result_columns
            )
            return columns
        except ClickHouseError as exc:
            raise self._translate(exc) from exc

    def query_arrow_sync(self, sql: str, parameters: dict[str, Any] | None = None) -> pa.Table:
        try:
            return self._thread_client().query_arrow(sql, parameters=parameters)
        except ClickHouseError as exc:
            raise self._translate(exc) from exc

    def insert_sync(
        self, table: str, columns: Sequence[Sequence[Any]], names: Sequence[str]
    ) -> None:
        """Rows (one sequence per column of `names`) as JSON lines the store parses itself
        (`core.jsonrows`: a fraction of the driver's Python work per call); through the
        driver's own insert when a value cannot be written that way exactly."""
        client = self._thread_client()
        try:
            converters = self._converters(client, table, names)
            body = None
            if converters is not None and columns and columns[0]:
                body = jsonrows.encode(columns, converters)
            if body is None:
                client.insert(table, columns, column_names=list(names), column_oriented=True)
            else:
                client.command(
                    f"INSERT INTO {table} ({', '.join(names)}) FORMAT {jsonrows.FORMAT}",
                    data=body,
                )
        except ClickHouseError as exc:
            raise self._translate(exc, insert=True) from exc

    def _converters(
        self, client: Client, table: str, names: Sequence[str]
    ) -> list[jsonrows.Convert | None] | None:
        """How each column's values are written, from the table's column types (read once
        per table: the schema changes only by migrations, before any insert); None when a
        column is not known (the driver's insert then reports what is wrong)."""
        if table not in self._column_types:
            self._read_column_types(client, table)
        types = self._column_types.get(table)
        if types is None or any(name not in types for name in names):
            return None
        return [jsonrows.converter(types[name]) for name in names]

    def _read_column_types(self, client: Client, table: str | None = None) -> None:
        """Read the column types of one table, or of every table of the database, into
        `_column_types` (a table that does not exist stays out of it)."""
        sql = "SELECT table, name, type FROM system.columns WHERE database = {database:String}"
        parameters = {"database": self.database}
        if table is not None:
            sql += " AND table = {table:String}"
            parameters["table"] = table
        found = client.query(sql, parameters=parameters)
        tables: dict[str, dict[str, str]] = {}
        for found_table, name, type_name in found.result_rows:
            tables.setdefault(str(found_table), {})[str(name)] = str(type_name)
        self._column_types.update(tables)

    def insert_arrow_sync(
        self, table: str, data: pa.Table, settings: dict[str, Any] | None = None
    ) -> None:
        """Insert an Arrow table (columns named as the table's). Cheaper in Python than
        `insert_sync`: the store parses the Arrow buffer natively, outside the GIL."""
        try:
            self._thread_client().insert_arrow(table, data, settings=settings)
        except ClickHouseError as exc:
            raise self._translate(exc, insert=True) from exc

    def command_sync(
        self,
        sql: str,
        parameters: dict[str, Any] | None = None,
        *,
        data: bytes | None = None,
        settings: dict[str, Any] | None = None,
    ) -> Any:
        """`data` is the body of an `INSERT … FORMAT …` (read by `input()`), on a server."""
        try:
            return self._thread_client().command(
                sql, parameters=parameters, data=data, settings=settings
            )
        except ClickHouseError as exc:
            raise self._translate(exc) from exc

    # -- async wrappers ---------------------------------------------------------------------

    async def query_rows(
        self, sql: str, parameters: dict[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        return await self._run(self.query_rows_sync, sql, parameters)

    async def query_columns(
        self, sql: str, parameters: dict[str, Any] | None = None
    ) -> list[Sequence[Any]]:
        return await self._run(self.query_columns_sync, sql, parameters)

    async def query_arrow(self, sql: str, parameters: dict[str, Any] | None = None) -> pa.Table:
        return await self._run(self.query_arrow_sync, sql, parameters)

    async def insert(
        self, table: str, columns: Sequence[Sequence[Any]], names: Sequence[str]
    ) -> None:
        await self._run(self.insert_sync, table, columns, names, executor=self._row_write_executor)

    async def insert_gathered(
        self, table: str, rows: Sequence[Sequence[Any]], names: Sequence[str]
    ) -> None:
        """Insert rows, gathered with the rows other callers insert into the same table and
        columns meanwhile: one insert (one part) for many small writes under load. Returns once
        the insert that holds them has returned; fails as it failed."""
        key = (table, tuple(names))
        writes = self._gathered.get(key)
        if writes is None:

            async def insert(gathered: list[Sequence[Any]]) -> None:
                await self.insert(table, list(zip(*gathered, strict=True)), key[1])

            writes = self._gathered[key] = GatheredWrites(insert)
        await writes.write(rows)

    async def insert_arrow(
        self, table: str, data: pa.Table, settings: dict[str, Any] | None = None
    ) -> None:
        await self._run(
            self.insert_arrow_sync, table, data, settings, executor=self._write_executor
        )

    async def command(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        return await self._run(self.command_sync, sql, parameters)

    async def ping(self) -> None:
        """Raise `StoreUnavailable` unless the store answers and holds the platform's schema
        (a dropped or never-migrated database still answers `SELECT 1`)."""
        if await self._run(self.command_sync, "EXISTS TABLE engagement_events") != 1:
            raise StoreUnavailable(f"no engagement_events table in {self.database}")

    async def _run(
        self, fn: Callable[..., T], *args: Any, executor: ThreadPoolExecutor | None = None
    ) -> T:
        loop = asyncio.get_running_loop()
        try:
            pending = loop.run_in_executor(executor or self._executor, fn, *args)
        except RuntimeError as exc:  # the executor was shut down: the store is closed
            raise StoreUnavailable(f"store closed: {exc}") from exc
        try:
            return await pending
        except OSError as exc:
            raise StoreUnavailable(f"store unreachable: {exc.strerror or exc}") from exc

    @staticmethod
    def _translate(exc: ClickHouseError, *, insert: bool = False) -> StoreError:
        text = str(exc)
        if insert and any(marker in text for marker in _REJECTING):
            return StoreRejected(_first_line(text))
        if "UNKNOWN_TABLE" in text or "SYNTAX_ERROR" in text or "UNKNOWN_IDENTIFIER" in text:
            return StoreQueryError(type(exc).__name__)
        return StoreUnavailable(type(exc).__name__)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._write_executor.shutdown(wait=True, cancel_futures=True)
        self._row_write_executor.shutdown(wait=True, cancel_futures=True)
        with self._clients_lock:
            clients, self._clients = [*self._clients, self.client], []
        for client in clients:
            # Closing a dead connection is not worth failing a shutdown.
            with contextlib.suppress(ClickHouseError):
                client.close()

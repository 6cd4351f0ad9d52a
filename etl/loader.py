"""Load one performance CSV into the store: validate every row, store the valid ones once by
content (`csv:<hash>` event ids in `engagement_events`, source 'batch'), merge creator attributes
into `creators`, and write the rejected rows beside the report.

ClickHouse parses and validates the file itself, never Python objects per row: the embedded chDB
store reads it where it lies (`file()`); a ClickHouse server gets it as the body of one INSERT
and parses it with the same statement (`input()`, `etl.queries.stage_from_body`). From the
staged rows on (counts, inserts, errors, rejected rows, creators), both run the same statements.
Loads in one process run one at a time, which is what makes the "ids already stored" check
exact; on a server, two API replicas loading the same rows at the same moment could both insert
them.
"""

import csv
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import structlog

from core import metrics
from core.changes import ENGAGEMENT_WRITES
from core.clickhouse import Store
from core.rollups import EngagementRollups
from etl import queries
from etl.columns import Header, resolve_header
from schemas.etl import LoadReport, RowError

log = structlog.get_logger(__name__)

_LOCK = threading.Lock()
_LOAD_ID = re.compile(r"[0-9a-f]{32}")
_REJECTED_PAGE = 50_000
_BUCKET_ROWS = 250_000
"""Valid rows per insert statement (each builds hash sets of its bucket's ids)."""


class LoadRefused(ValueError):
    """The file as a whole cannot be loaded (no header, missing columns, not UTF-8, ...)."""


@dataclass(frozen=True, slots=True)
class Outputs:
    """Where a load writes its report and its rejected rows."""

    report: Path
    rejected: Path

    @classmethod
    def beside(cls, source: Path, directory: Path | None = None) -> "Outputs":
        """`<stem>.report.json` and `<stem>.rejected.csv` in `directory` (default: the file's)."""
        where = directory or source.parent
        return cls(where / f"{source.stem}.report.json", where / f"{source.stem}.rejected.csv")


def read_header(path: Path) -> tuple[list[str], int]:
    """The header's names and how many physical lines it spans (BOM and quotes understood)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            names = next(reader, None)
            lines = reader.line_num
    except UnicodeDecodeError:
        raise LoadRefused("The header is not UTF-8 text.") from None
    except csv.Error as exc:
        raise LoadRefused(f"The header is not valid CSV ({exc}).") from None
    if not names or all(not n.strip() for n in names):
        raise LoadRefused("The file is empty: a header row is required.")
    return names, lines


def load_file(
    store: Store,
    path: Path,
    outputs: Outputs,
    *,
    org: str,
    name: str | None = None,
    load_id: str | None = None,
    max_errors: int = 10_000,
    now: datetime | None = None,
    rollups: EngagementRollups | None = None,
) -> LoadReport:
    """Load `path` (absolute or not) into `store` as events of organisation `org` and write
    the report and rejected rows.

    Valid rows are stored even when others are rejected. Raises `LoadRefused` (with a message
    for the user) when the file as a whole is unusable; store failures propagate as `StoreError`.
    `rollups` (the in-memory metrics of a worker in this process) are told of the stored rows.
    """
    started = time.perf_counter()
    path = path.resolve()
    names, header_lines = read_header(path)
    try:
        header = resolve_header(names)
    except ValueError as exc:
        raise LoadRefused(f"The file lacks required columns ({exc}).") from None
    load_id = load_id or uuid.uuid4().hex
    if not _LOAD_ID.fullmatch(load_id):
        raise ValueError("load_id must be 32 lowercase hex digits")
    load_time = now or datetime.now(UTC)
    with _LOCK:
        _drop_stale_staging(store)
        table = f"etl_stage_{load_id}"
        try:
            _stage(store, path, header, header_lines, table, load_time)
            rows, accepted, error_count, distinct = store.query_rows_sync(queries.summary(table))[0]
            # Loads are serialised: the organisation's batch rows stored from now on are this
            # load's (what the rollups are told of).
            inserting_since = int(store.query_rows_sync(queries.STORE_NOW_MS)[0][0])
            if int(distinct) == int(accepted) and not int(
                store.query_rows_sync(queries.HAS_CSV_IDS, {"org": org})[0][0]
            ):
                # No repeated row and nothing ever batch-loaded: every valid row is new.
                store.command_sync(queries.insert_new_events(table), {"org": org})
                inserted = int(accepted)
            else:
                inserted = _insert_news(store, table, int(accepted), org)
            if rollups is not None:
                rollups.add_stored(
                    store,
                    queries.STORED_SINCE,
                    {"org": org, "stored_since": inserting_since},
                    int(time.time() * 1000),
                )
            store.command_sync(queries.upsert_creators(table), {"org": org, "load_time": load_time})
            errors = [
                RowError(line=line, column=column or None, reason=reason)
                for line, column, reason in store.query_rows_sync(
                    queries.errors(table), {"skip": header_lines, "limit": max_errors}
                )
            ]
            rejected = int(rows) - int(accepted)
            if rejected:
                _write_rejected(store, table, header_lines, names, outputs.rejected)
        finally:
            store.command_sync(f"DROP TABLE IF EXISTS {table}")
            ENGAGEMENT_WRITES.bump()  # an API in this process then reloads what it cached
    report = LoadReport(
        load_id=load_id,
        file=name or path.name,
        rows=int(rows),
        accepted=int(accepted),
        rejected=rejected,
        inserted=inserted,
        duplicates=int(accepted) - inserted,
        errors=errors,
        errors_omitted=int(error_count) - len(errors),
        extra_columns=list(header.extra),
        rejected_file=str(outputs.rejected) if rejected else None,
        seconds=round(time.perf_counter() - started, 3),
    )
    outputs.report.parent.mkdir(parents=True, exist_ok=True)
    outputs.report.write_bytes(
        orjson.dumps(report.model_dump(by_alias=True), option=orjson.OPT_INDENT_2)
    )
    metrics.ETL_ROWS.labels("accepted").inc(report.accepted)
    metrics.ETL_ROWS.labels("rejected").inc(report.rejected)
    metrics.ETL_LOAD_SECONDS.observe(report.seconds)
    log.info(
        "etl.loaded",
        file=report.file,
        rows=report.rows,
        inserted=report.inserted,
        duplicates=report.duplicates,
        rejected=report.rejected,
        seconds=report.seconds,
    )
    return report


def _stage(
    store: Store, path: Path, header: Header, header_lines: int, table: str, load_time: datetime
) -> None:
    """Every row of the file, numbered, checked and typed, into the staging table `table`."""
    if store.embedded:
        store.command_sync(
            queries.stage(header, table),
            {
                "path": str(path),
                "structure": queries.file_structure(header),
                "skip": header_lines,
                "load_time": load_time,
            },
        )
        return
    store.command_sync(queries.staging_table(header, table), {"load_time": load_time})
    store.command_sync(
        queries.stage_from_body(header, table),
        {"load_time": load_time},
        data=path.read_bytes(),
        settings=queries.body_settings(header_lines),
    )


def _insert_news(store: Store, table: str, accepted: int, org: str) -> int:
    """Insert the valid rows whose ids the store does not hold yet, bucket by bucket (bounded
    id sets); return how many were inserted."""
    buckets = max(1, accepted // _BUCKET_ROWS)
    inserted = 0
    for bucket in range(buckets):
        where = {"org": org, "buckets": buckets, "bucket": bucket}
        inserted += int(store.query_rows_sync(queries.bucket_news(table), where)[0][0])
        store.command_sync(queries.insert_events(table), where)
    return inserted


_SERVER_STAGING_AGE_SECONDS = 6 * 3600
"""On a server, a staging table older than this was left by a crashed load (younger ones may be
another API replica's load in progress)."""


def _drop_stale_staging(store: Store) -> None:
    """Loads in a process run one at a time, so on the embedded store any staging table seen
    here was left by a crashed load."""
    age = 0 if store.embedded else _SERVER_STAGING_AGE_SECONDS
    for (table,) in store.query_rows_sync(queries.STALE_STAGING, {"age": age}):
        store.command_sync(f"DROP TABLE IF EXISTS `{table}`")


def _write_rejected(
    store: Store, table: str, header_lines: int, names: list[str], target: Path
) -> None:
    """Rejected rows as CSV, file order: line, columns and reasons, then the original fields."""
    target.parent.mkdir(parents=True, exist_ok=True)
    after = -1
    with target.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["line", "column", "reason", *names])
        while True:
            page = store.query_rows_sync(
                queries.rejected(table),
                {"skip": header_lines, "after": after, "limit": _REJECTED_PAGE},
            )
            for _, line, columns, reasons, raw in page:
                writer.writerow([line, columns, reasons, *(v or "" for v in raw)])
            if len(page) < _REJECTED_PAGE:
                return
            after = page[-1][0]

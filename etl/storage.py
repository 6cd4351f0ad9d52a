"""Where uploads keep their report and rejected rows: in the store (`etl_upload_reports`,
`etl_upload_rejected`), so every API replica serves every load, removed past the retention and,
oldest first, beyond each organisation's quota.

The replica that loads a file, and any replica that serves its rejected rows, also keeps them
as files under `<data dir>/etl/<organisation folder>/<loadId>/` (one folder per organisation
whose name cannot climb or collide): a cache, read only for a load the store holds. Loads made
before the store kept them (their folder holds `report.json`, or is of the earlier layout) are
served from those files by the replica that made them until the retention removes them.

Every statement on the two tables is in this module."""

import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import structlog

from core.clickhouse import Store

log = structlog.get_logger(__name__)

_REPORT_COLUMNS = ("org", "load_id", "created_at", "report", "rejected_bytes", "rejected_parts")
_REJECTED_COLUMNS = ("org", "load_id", "part", "created_at", "body")

KEPT = """
SELECT created_at, rejected_bytes, rejected_parts
FROM etl_upload_reports FINAL
WHERE org = {org:String} AND load_id = {load_id:String}
  AND created_at >= {since:DateTime64(3, 'UTC')}
LIMIT 1
"""

REJECTED_PARTS = """
SELECT body
FROM etl_upload_rejected FINAL
WHERE org = {org:String} AND load_id = {load_id:String} AND part >= {first:UInt32}
ORDER BY part
LIMIT {limit:UInt32}
"""

ORG_LOADS = """
SELECT load_id, length(report) + rejected_bytes
FROM etl_upload_reports FINAL
WHERE org = {org:String}
ORDER BY created_at, load_id
"""

EXPIRED = """
SELECT
    (SELECT count() FROM etl_upload_reports FINAL
     WHERE created_at < {before:DateTime64(3, 'UTC')}),
    (SELECT count() FROM etl_upload_rejected WHERE created_at < {before:DateTime64(3, 'UTC')})
"""

DELETE_EXPIRED = [
    "DELETE FROM etl_upload_rejected WHERE created_at < {before:DateTime64(3, 'UTC')}",
    "DELETE FROM etl_upload_reports WHERE created_at < {before:DateTime64(3, 'UTC')}",
]

DELETE_LOADS = [
    "DELETE FROM etl_upload_rejected"
    " WHERE org = {org:String} AND load_id IN {load_ids:Array(String)}",
    "DELETE FROM etl_upload_reports"
    " WHERE org = {org:String} AND load_id IN {load_ids:Array(String)}",
]

PART_BYTES = 1024 * 1024
"""Rejected rows are kept in parts of this many bytes (the last one shorter)."""
_PARTS_PER_INSERT = 8
_PARTS_PER_READ = 8

_READABLE = re.compile(r"[^A-Za-z0-9_-]+")
_UNAMBIGUOUS_BEFORE = re.compile(r"[A-Za-z0-9-]+")
"""Organisations whose folder of the earlier layout (their name with each run of other
characters than letters, digits, `.`, `_`, `-` made one `_`) was theirs alone."""
_LOAD_DIR = re.compile(r"[0-9a-f]{32}")


def org_folder(org: str) -> str:
    """A folder name for `org`: a readable prefix (letters, digits, `_` and `-` only, so never
    `.`, `..` or a separator), `+`, and a hash of the whole name, so two organisations never
    share one, whatever characters or length their names have. (Folders of the earlier layout
    never held a `+`.)"""
    digest = hashlib.sha256(org.encode()).hexdigest()[:32]
    return f"{_READABLE.sub('_', org)[:40]}+{digest}"


@dataclass(frozen=True, slots=True)
class Kept:
    """A load the store holds: when it was made and the size of its rejected rows."""

    created_at: datetime
    rejected_bytes: int
    rejected_parts: int


@dataclass(frozen=True, slots=True)
class UploadStore:
    """The loads kept in `store`, cached (and of earlier versions kept) under `root`
    (`<data dir>/etl`)."""

    store: Store
    root: Path
    retention_seconds: float
    max_bytes_per_org: int

    def load_dir(self, org: str, load_id: str) -> Path:
        if not _LOAD_DIR.fullmatch(load_id):
            raise ValueError("load_id must be 32 lowercase hex digits")
        return self.root / org_folder(org) / load_id

    def earlier_load_dir(self, org: str, load_id: str) -> Path | None:
        """Where a load stored before organisation folders were hashed is, when that folder
        can only be `org`'s (until the retention removes it); else None."""
        if not _UNAMBIGUOUS_BEFORE.fullmatch(org) or not _LOAD_DIR.fullmatch(load_id):
            return None
        return self.root / org / load_id

    def expired(self, path: Path, now: float | None = None) -> bool:
        """Whether the load that `path` belongs to is past the retention (or gone)."""
        try:
            modified = path.stat().st_mtime
        except FileNotFoundError:
            return True
        return (now or time.time()) - modified > self.retention_seconds

    def earlier_rejected(self, org: str, load_id: str) -> Path | None:
        """The rejected rows of `org`'s load `load_id` made before the store kept loads, on
        this replica's disk and within the retention (a folder holding `report.json`, or one of
        the earlier layout); else None."""
        directory = self.load_dir(org, load_id)
        folders = [directory] if (directory / "report.json").is_file() else []
        if (earlier := self.earlier_load_dir(org, load_id)) is not None:
            folders.append(earlier)
        for folder in folders:
            path = folder / "rejected.csv"
            if path.is_file():
                return None if self.expired(path) else path
        return None

    # -- the store's copy ------------------------------------------------------------------

    def keep(self, org: str, load_id: str, report: bytes, rejected: Path | None) -> datetime:
        """Put a load's report and its rejected rows (the file `rejected`, if any) in the
        store, the report last, and date the file (now its cache) as the store does; return
        when it was made. Blocking: run on the load queue's thread."""
        created_at = _milliseconds(datetime.now(UTC))
        size = parts = 0
        if rejected is not None:
            with rejected.open("rb") as fh:
                while batch := _read_parts(fh, _PARTS_PER_INSERT):
                    rows = [
                        (org, load_id, parts + n, created_at, body.decode())
                        for n, body in enumerate(batch)
                    ]
                    self.store.insert_sync(
                        "etl_upload_rejected", list(zip(*rows, strict=True)), _REJECTED_COLUMNS
                    )
                    parts += len(batch)
                    size += sum(len(body) for body in batch)
            _date(rejected, created_at)
        row = (org, load_id, created_at, report.decode(), size, parts)
        self.store.insert_sync("etl_upload_reports", [[value] for value in row], _REPORT_COLUMNS)
        return created_at

    async def kept(self, org: str, load_id: str) -> Kept | None:
        """`org`'s load `load_id` if the store holds it within the retention."""
        since = datetime.now(UTC) - timedelta(seconds=self.retention_seconds)
        rows = await self.store.query_rows(KEPT, {"org": org, "load_id": load_id, "since": since})
        if not rows:
            return None
        created_at, size, parts = rows[0]
        return Kept(_utc(created_at), int(size), int(parts))

    async def rejected_file(self, org: str, load_id: str, kept: Kept) -> Path:
        """The rejected rows of a kept load as a file of this replica: the cache when it is
        whole, else written from the store (parts a few at a time) and then made the cache."""
        cache = self.load_dir(org, load_id) / "rejected.csv"
        stamp = kept.created_at.timestamp()
        with contextlib.suppress(FileNotFoundError):
            found = cache.stat()
            if found.st_size == kept.rejected_bytes and abs(found.st_mtime - stamp) < 1e-3:
                return cache
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_name(f".rejected.{uuid.uuid4().hex}.csv")
        try:
            with partial.open("wb") as fh:
                first = 0
                while first < kept.rejected_parts:
                    page = await self.store.query_rows(
                        REJECTED_PARTS,
                        {"org": org, "load_id": load_id, "first": first, "limit": _PARTS_PER_READ},
                    )
                    if not page:
                        break
                    await asyncio.to_thread(fh.writelines, [body.encode() for (body,) in page])
                    first += len(page)
            _date(partial, kept.created_at)
            partial.replace(cache)
            _date(cache.parent, kept.created_at)  # swept with the load, not a month on
        finally:
            partial.unlink(missing_ok=True)
        return cache

    # -- removal ---------------------------------------------------------------------------

    def sweep(self, now: float | None = None) -> int:
        """Remove every load past the retention from the store and from this replica's disk
        (any organisation, and folders of earlier layouts alike) and organisation folders left
        empty; return how many loads went from each, together."""
        now = now or time.time()
        before = datetime.fromtimestamp(now - self.retention_seconds, UTC)
        loads, parts = self.store.query_rows_sync(EXPIRED, {"before": before})[0]
        removed = int(loads)
        if loads or parts:  # parts without a report: a load that failed while kept
            for statement in DELETE_EXPIRED:
                self.store.command_sync(statement, {"before": before})
        if self.root.is_dir():
            removed += self._sweep_disk(now)
        if removed:
            log.info("etl.swept", loads=removed)
        return removed

    def _sweep_disk(self, now: float) -> int:
        removed = 0
        for folder in self.root.iterdir():
            if not folder.is_dir() or folder.is_symlink():
                continue
            for load in folder.iterdir():
                if self.expired(load, now):
                    _remove(load)
                    removed += 1
            if not any(folder.iterdir()):
                # An upload may have made its folder there meanwhile: then it stays.
                with contextlib.suppress(OSError):
                    folder.rmdir()
        return removed

    def enforce_quota(self, org: str, keep: str) -> int:
        """Remove `org`'s oldest loads until its loads fit in the quota, never the load `keep`
        (just made: its report must stay readable, so one load may exceed the quota on its
        own): from the store (sizes as the files', report and rejected rows), then from this
        replica's disk (its caches and loads of earlier versions); return how many went from
        the store. Blocking: run on the load queue's thread."""
        loads = [
            (str(load_id), int(size))
            for load_id, size in self.store.query_rows_sync(ORG_LOADS, {"org": org})
        ]
        gone = _beyond(loads, self.max_bytes_per_org, keep)
        if gone:
            for statement in DELETE_LOADS:
                self.store.command_sync(statement, {"org": org, "load_ids": gone})
            for load_id in gone:
                _remove(self.load_dir(org, load_id))
            log.info("etl.quota_removed", loads=len(gone))
        folder = self.root / org_folder(org)
        if folder.is_dir():
            on_disk = sorted((p.stat().st_mtime, p.name, _size(p)) for p in folder.iterdir())
            for name in _beyond(
                [(n, size) for _, n, size in on_disk], self.max_bytes_per_org, keep
            ):
                _remove(folder / name)
        return len(gone)


def _beyond(loads: list[tuple[str, int]], quota: int, keep: str) -> list[str]:
    """The loads (oldest first, with their sizes) to remove, oldest first, until the rest fit in
    `quota`, never `keep`."""
    total = sum(size for _, size in loads)
    gone: list[str] = []
    for name, size in loads:
        if total <= quota:
            break
        if name == keep:
            continue
        gone.append(name)
        total -= size
    return gone


def _read_parts(fh: BinaryIO, count: int) -> list[bytes]:
    """Up to `count` parts of about `PART_BYTES` each, every one ending at a line's end (so
    whole characters)."""
    parts: list[bytes] = []
    while len(parts) < count and (part := fh.read(PART_BYTES)):
        if not part.endswith(b"\n"):
            part += fh.readline()
        parts.append(part)
    return parts


def _milliseconds(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _date(path: Path, moment: datetime) -> None:
    """Give `path` the modification time `moment`, as every replica's copy has it."""
    stamp = moment.timestamp()
    os.utime(path, (stamp, stamp))


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)

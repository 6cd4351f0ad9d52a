"""Where uploads keep their report and rejected rows: `<data dir>/etl/<organisation folder>/
<loadId>/`, one folder per organisation whose name cannot climb or collide, loads removed past
the retention, and each organisation's loads kept within a size quota (oldest removed first)."""

import contextlib
import hashlib
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

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
class UploadStore:
    """The loads kept under `root` (`<data dir>/etl`)."""

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

    def sweep(self, now: float | None = None) -> int:
        """Remove every load past the retention (any organisation, and folders of earlier
        layouts alike) and organisation folders left empty; return how many loads went."""
        now = now or time.time()
        removed = 0
        if not self.root.is_dir():
            return 0
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
        if removed:
            log.info("etl.swept", loads=removed)
        return removed

    def enforce_quota(self, org: str, keep: str) -> int:
        """Remove `org`'s oldest loads until its loads fit in the quota, never the load `keep`
        (just made: its report must stay readable, so one load may exceed the quota on its
        own); return how many went."""
        folder = self.root / org_folder(org)
        loads = [(p.stat().st_mtime, p.name, p, _size(p)) for p in folder.iterdir()]
        loads.sort()
        total = sum(size for *_, size in loads)
        removed = 0
        for _, name, path, size in loads:
            if total <= self.max_bytes_per_org:
                break
            if name == keep:
                continue
            _remove(path)
            total -= size
            removed += 1
        if removed:
            log.info("etl.quota_removed", loads=removed, kept_bytes=total)
        return removed


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)

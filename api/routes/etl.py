"""`POST /etl/uploads`: a performance CSV streamed to disk, loaded, answered with its report;
`GET /etl/uploads/{loadId}/rejected`: the rejected rows of one of the caller's loads."""

import asyncio
import contextlib
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import orjson
import structlog
from fastapi import APIRouter, FastAPI, File, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import FileResponse

from api.deps import PrincipalDep, Services, ServicesDep
from api.errors import (
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManyRequests,
)
from core.clickhouse import Store, StoreError
from core.settings import Settings
from etl.executor import UPLOADS, QueueFull
from etl.loader import LoadRefused, Outputs, load_file
from etl.storage import UploadStore
from schemas.api import Problem
from schemas.etl import LoadReport

log = structlog.get_logger(__name__)

UPLOAD_PATH = "/etl/uploads"
MULTIPART_OVERHEAD = 64 * 1024
"""Room for multipart boundaries and part headers on top of the file size limit."""
_CHUNK = 1024 * 1024
SWEEP_INTERVAL_SECONDS = 3600.0

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The load report.",
        "links": {
            "RejectedRows": {
                "operationId": "rejected_rows_etl_uploads__load_id__rejected_get",
                "parameters": {"load_id": "$response.body#/loadId"},
            }
        },
    },
    413: {"model": Problem, "description": "The file exceeds FK_ETL_MAX_UPLOAD_BYTES."},
    422: {"model": Problem, "description": "No file, or it lacks required columns / a header."},
    429: {
        "model": Problem,
        "description": "The organisation's uploads hold half of the load queue (Retry-After).",
    },
    503: {
        "model": Problem,
        "description": "FK_ETL_MAX_WAITING_UPLOADS uploads already wait (Retry-After).",
    },
}


def upload_store(settings: Settings, store: Store) -> UploadStore:
    """Where this platform's uploads keep their reports and rejected rows."""
    return UploadStore(
        store=store,
        root=settings.data_dir.resolve() / "etl",
        retention_seconds=settings.etl_retention_days * 86_400,
        max_bytes_per_org=int(settings.etl_max_stored_mb_per_org * 1024 * 1024),
    )


@asynccontextmanager
async def sweeping(app: FastAPI) -> AsyncIterator[None]:
    """Remove loads past the retention at start and then hourly, on the load queue's thread."""
    services = app.state.services
    uploads = upload_store(services.settings, services.store)

    async def sweep() -> None:
        while True:
            try:
                await UPLOADS.run_housekeeping(uploads.sweep)
            except (OSError, StoreError) as exc:  # a full disk, a store away: next time
                log.warning("etl.sweep_failed", error=str(exc))
            await asyncio.sleep(SWEEP_INTERVAL_SECONDS)

    task = asyncio.create_task(sweep())
    try:
        yield
    finally:
        task.cancel()


router = APIRouter(tags=["etl"], lifespan=sweeping)


def _copy_and_load(
    services: Services,
    upload: UploadFile,
    source: Path,
    outputs: Outputs,
    org: str,
    load_id: str,
) -> LoadReport:
    """The upload's file copied to `source` (at most FK_ETL_MAX_UPLOAD_BYTES) and loaded, its
    report (as answered) and rejected rows kept in the store, then the organisation's oldest
    loads removed past its quota; run on the load queue's thread."""
    settings = services.settings
    source.parent.mkdir(parents=True)
    _copy_limited(upload, source, settings.etl_max_upload_bytes)
    report = load_file(
        services.store,
        source,
        outputs,
        org=org,
        name=upload.filename or "upload.csv",
        load_id=load_id,
        max_errors=settings.etl_max_reported_errors,
        rollups=services.rollups,
    )
    source.unlink(missing_ok=True)
    if report.rejected_file is not None:
        report = report.model_copy(update={"rejected_file": f"{UPLOAD_PATH}/{load_id}/rejected"})
    uploads = upload_store(settings, services.store)
    answer = orjson.dumps(report.model_dump(by_alias=True), option=orjson.OPT_INDENT_2)
    uploads.keep(org, load_id, answer, outputs.rejected if report.rejected else None)
    outputs.report.unlink(missing_ok=True)  # the store has it
    with contextlib.suppress(OSError):  # left empty when nothing was rejected
        outputs.report.parent.rmdir()
    uploads.enforce_quota(org, keep=load_id)
    return report


def _copy_limited(upload: UploadFile, target: Path, limit: int) -> int:
    size = 0
    with target.open("wb") as out:
        while chunk := upload.file.read(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"The file exceeds {limit} bytes.")
            out.write(chunk)
    return size


@router.post(
    UPLOAD_PATH,
    response_model=LoadReport,
    summary="Load a performance CSV (multipart field `file`) and return its report.",
    responses=_RESPONSES,
)
async def upload(
    services: ServicesDep,
    principal: PrincipalDep,
    file: Annotated[UploadFile, File(description="The performance CSV (header row required).")],
) -> LoadReport:
    """Valid rows are stored even when others are rejected; loading the same rows again stores
    nothing twice. Rows are listed in `errors` by physical line; all rejected rows are
    downloadable from `GET /etl/uploads/{loadId}/rejected`.

    Uploads load one at a time on a queue of their own; past FK_ETL_MAX_WAITING_UPLOADS
    waiting the answer is 503, and an organisation holding half of the queue's places gets 429,
    both with Retry-After."""
    settings = services.settings
    load_id = uuid.uuid4().hex
    directory = upload_store(settings, services.store).load_dir(principal.org, load_id)
    source = directory / "upload.csv"
    # Not `report.json`: a folder holding one is a load of an earlier version (never kept in the
    # store); the report is removed once the store has it, the rejected rows stay as a cache.
    outputs = Outputs(report=directory / "loaded.json", rejected=directory / "rejected.csv")
    try:
        report = await UPLOADS.run(
            principal.org,
            settings.etl_max_waiting_uploads,
            _copy_and_load,
            services,
            file,
            source,
            outputs,
            principal.org,
            load_id,
        )
    except QueueFull as exc:
        busy = ServiceUnavailable if exc.everyone else TooManyRequests
        raise busy(
            "Too many uploads are waiting to load; try again later."
            if exc.everyone
            else "Your organisation's uploads fill its share of the load queue; try again later.",
            headers={"Retry-After": str(exc.retry_after)},
        ) from None
    except LoadRefused as exc:
        shutil.rmtree(directory, ignore_errors=True)
        raise InvalidInput(str(exc)) from None
    except PayloadTooLarge:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    finally:
        source.unlink(missing_ok=True)
    # The organisation's cached answers only (keys are (kind, organisation, ...)): its next reads
    # show the load; another's keep their cache, so nobody's uploads cost others a re-scoring.
    services.top_cache.forget(lambda key: _org_of(key) == principal.org)
    services.metrics_cache.forget(lambda key: _org_of(key) == principal.org)
    return report


@router.get(
    UPLOAD_PATH + "/{load_id}/rejected",
    summary="The rejected rows of a load as CSV: line, column, reason, then the row's fields.",
    response_class=FileResponse,
    responses={404: {"model": Problem, "description": "No such load of yours with rejects."}},
)
async def rejected_rows(
    services: ServicesDep,
    principal: PrincipalDep,
    load_id: Annotated[str, PathParam(pattern=r"^[0-9a-f]{32}$")],
) -> FileResponse:
    # From the store through any replica (a file of this replica's caches it); loads of earlier
    # versions, which only the replica that made them holds, from their files.
    uploads = upload_store(services.settings, services.store)
    kept = await uploads.kept(principal.org, load_id)
    if kept is None:
        path = uploads.earlier_rejected(principal.org, load_id)
    elif kept.rejected_parts:
        path = await uploads.rejected_file(principal.org, load_id, kept)
    else:
        path = None
    if path is None:
        raise NotFound(f"No rejected rows for load {load_id}.")
    return FileResponse(path, media_type="text/csv", filename=f"{load_id}.rejected.csv")


def _org_of(key: object) -> object:
    return key[1] if isinstance(key, tuple) and len(key) > 1 else None

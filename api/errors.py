"""One error base class carrying its status, and the handlers that render every error as RFC 9457
problem details (`application/problem+json`). Expected conditions are never a 500."""

import re
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.clickhouse import StoreQueryError, StoreUnavailable

log = structlog.get_logger(__name__)

PROBLEM_JSON = "application/problem+json"


class ApiError(Exception):
    status: int = 500
    title: str = "Internal Server Error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.errors = errors
        self.headers = headers


class NotFound(ApiError):
    status, title = 404, "Not Found"


class Unauthorized(ApiError):
    status, title = 401, "Unauthorized"


class InvalidInput(ApiError):
    status, title = 422, "Unprocessable Content"


class Conflict(ApiError):
    status, title = 409, "Conflict"


class PreconditionFailed(ApiError):
    status, title = 412, "Precondition Failed"


class PreconditionRequired(ApiError):
    status, title = 428, "Precondition Required"


class PayloadTooLarge(ApiError):
    status, title = 413, "Content Too Large"


class TooManyRequests(ApiError):
    status, title = 429, "Too Many Requests"


class ServiceUnavailable(ApiError):
    status, title = 503, "Service Unavailable"


class BadGateway(ApiError):
    status, title = 502, "Bad Gateway"


class GatewayTimeout(ApiError):
    status, title = 504, "Gateway Timeout"


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    instance: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        out.append(
            {
                "location": ".".join(str(p) for p in err.get("loc", ())),
                "message": err.get("msg", "invalid"),
                "type": err.get("type", "value_error"),
            }
        )
    return out


_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
}


def _allowed_methods(request: Request) -> list[str]:
    """The methods the OpenAPI document declares for this path."""
    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        pattern = "[^/]+".join(re.escape(part) for part in re.split(r"\{[^/}]+\}", template))
        if re.fullmatch(pattern, request.url.path):
            methods |= {method.upper() for method in operations}
    return sorted(methods)


def install_error_handlers(
    app: FastAPI, *, authenticate: Callable[[Request], Awaitable[object]] | None = None
) -> None:
    """`authenticate` (raising `ApiError` for a caller without a valid token) runs before an
    unparsable or malformed body is answered with 400 or 422."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return problem(
            exc.status,
            exc.title,
            exc.detail,
            instance=request.url.path,
            errors=exc.errors,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        if authenticate is not None and any(e.get("type") == "json_invalid" for e in exc.errors()):
            # Malformed JSON is found while the body is read, before the dependencies run.
            try:
                await authenticate(request)
            except ApiError as refused:
                return await _api_error(request, refused)
        return problem(
            422,
            "Unprocessable Content",
            "The request is not valid.",
            instance=request.url.path,
            errors=_validation_errors(exc),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 400 and authenticate is not None:
            # FastAPI parses the body (400 when it cannot) before it resolves dependencies; a
            # caller without a valid token learns only that (every operation with a body needs
            # one).
            try:
                await authenticate(request)
            except ApiError as refused:
                return await _api_error(request, refused)
        if exc.status_code == 405:
            # Starlette names only the methods of the first route with this path.
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return problem(
            exc.status_code,
            _TITLES.get(exc.status_code, "Error"),
            str(exc.detail) if exc.detail else None,
            instance=request.url.path,
            headers=headers or None,
        )

    @app.exception_handler(StoreUnavailable)
    async def _store_down(request: Request, exc: StoreUnavailable) -> JSONResponse:
        log.warning("api.store_unavailable", path=request.url.path, error=str(exc))
        return problem(
            503,
            "Service Unavailable",
            "The analytics store is unavailable; retry.",
            instance=request.url.path,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(StoreQueryError)
    async def _store_query(request: Request, exc: StoreQueryError) -> JSONResponse:
        log.error("api.store_query_failed", path=request.url.path, error=str(exc))
        return problem(500, "Internal Server Error", instance=request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("api.unhandled", path=request.url.path)
        return problem(500, "Internal Server Error", instance=request.url.path)

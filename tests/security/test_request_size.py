"""API4 (unrestricted resource consumption): every write operation refuses a body over its limit
with 413 problem details -- announced by Content-Length or streamed without one -- before a
route handles it. Generated from the OpenAPI document, so a new write route is covered."""

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from api.main import MAX_BODY_BYTES, create_app
from api.middleware import BodyLimit
from api.routes.etl import MULTIPART_OVERHEAD
from core.clickhouse import Store
from core.settings import Settings
from tests.api.test_http import assert_problem
from tests.security.conftest import ORG_A, WRITE_METHODS, api_client, bearer, operations

UPLOAD_LIMIT = 4096


def _settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"etl_max_upload_bytes": UPLOAD_LIMIT})


def write_operations(settings: Settings) -> list[tuple[str, str, int, str | None]]:
    """(method, concrete path, body limit, body media type or None) of every write operation."""
    schema = create_app(_settings(settings)).openapi()
    out = []
    for op in operations(schema):
        if op.method not in WRITE_METHODS:
            continue
        path = re.sub(r"\{[^}]+\}", "x1", op.path)
        limit = UPLOAD_LIMIT + MULTIPART_OVERHEAD if op.path == "/etl/uploads" else MAX_BODY_BYTES
        media = next(iter(op.spec.get("requestBody", {}).get("content", {})), None)
        out.append((op.method.upper(), path, limit, media))
    return out


def _content_type(media: str | None) -> str:
    if media == "multipart/form-data":
        return "multipart/form-data; boundary=b0undary"
    return media or "application/json"


async def _chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """A body with no Content-Length: a multipart part's head, then filler."""
    head = b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="p.csv"\r\n\r\n'
    yield head
    sent = len(head)
    while sent < total:
        chunk = b"x" * min(size, total - sent)
        sent += len(chunk)
        yield chunk


async def test_every_write_operation_refuses_an_oversized_body(
    settings: Settings, store: Store, topics: None
) -> None:
    ops = write_operations(settings)
    assert len(ops) >= 8, ops
    wrong = []
    async with api_client(_settings(settings), store) as client:
        for method, path, limit, media in ops:
            headers = {**bearer(settings, ORG_A), "content-type": _content_type(media)}
            body = b"x" * (limit + 1)
            answers = [
                (
                    "content-length",
                    await client.request(method, path, content=body, headers=headers),
                )
            ]
            if media is not None:
                # A route without a body never reads one, so only routes with one can see this.
                stream = _chunks(limit + 1)
                answers.append(
                    (
                        "streamed",
                        await client.request(method, path, content=stream, headers=headers),
                    )
                )
            for how, response in answers:
                is_problem = response.headers.get("content-type", "").startswith(
                    "application/problem+json"
                )
                if response.status_code != 413 or not is_problem:
                    wrong.append((method, path, how, response.status_code, response.text[:120]))
    assert not wrong, "\n".join(map(str, wrong))


@pytest.mark.usefixtures("campaign_agent")  # it commands campaigns
async def test_a_body_at_the_limit_is_not_refused_for_its_size(
    settings: Settings, store: Store, topics: None
) -> None:
    headers = {**bearer(settings, ORG_A), "content-type": "application/json"}
    async with api_client(_settings(settings), store) as client:
        padded = b'{"name": "x"}' + b" " * (MAX_BODY_BYTES - 13)
        assert len(padded) == MAX_BODY_BYTES
        response = await client.post("/campaigns", content=padded, headers=headers)
        assert response.status_code == 201, response.text


@pytest.mark.parametrize("size", [UPLOAD_LIMIT + 1, UPLOAD_LIMIT + MULTIPART_OVERHEAD + 1])
async def test_an_upload_over_its_file_limit_is_413(
    settings: Settings, store: Store, topics: None, size: int
) -> None:
    async with api_client(_settings(settings), store) as client:
        response = await client.post(
            "/etl/uploads",
            files={"file": ("p.csv", b"a" * size, "text/csv")},
            headers=bearer(settings, ORG_A),
        )
        assert_problem(response, 413)


async def _swallowing_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the body, gives up quietly on any error and answers nothing."""
    try:
        while (await receive()).get("more_body"):
            pass
    except Exception:  # the point: an app that hides the failed read
        return


async def _raising_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Turns the failed read into an error of its own."""
    try:
        while (await receive()).get("more_body"):
            pass
    except Exception as exc:
        raise RuntimeError("body parsing failed") from exc


@pytest.mark.parametrize("app", [_swallowing_app, _raising_app])
async def test_a_streamed_body_is_413_whatever_the_app_makes_of_the_failed_read(
    app: ASGIApp,
) -> None:
    limited = BodyLimit(app, max_bytes=10)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=limited), base_url="http://api"
    ) as client:
        response = await client.post("/x", content=_chunks(100, size=8))
    assert_problem(response, 413)

"""API2/API5: every operation needs a token except a short, deliberate list; generated from the
OpenAPI document, so a new route is covered (or must be added to PUBLIC on purpose)."""

import re

import httpx

from api.main import create_app
from core.settings import Settings
from tests.api.test_http import assert_problem
from tests.security.conftest import operations

PUBLIC = {
    ("GET", "/healthz"): "liveness, no I/O",
    ("GET", "/readyz"): "readiness for orchestrators; names only which dependency is down",
    ("GET", "/metrics"): "Prometheus scrape; route templates and bounded labels, no ids",
    ("GET", "/dashboard"): "the static page; every API call it makes carries a token",
}


async def test_every_other_operation_needs_a_token(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    schema = create_app(settings).openapi()
    ops = operations(schema)
    assert {op.key for op in ops if "security" not in op.spec} == set(PUBLIC)
    let_through = []
    for op in ops:
        if op.key in PUBLIC:
            continue
        path = re.sub(r"\{[^}]+\}", "x1", op.path)
        for authorization in ("", "Bearer "):
            response = await client.request(
                op.method, path, json={}, headers={"Authorization": authorization}
            )
            if response.status_code != 401:
                let_through.append((op.key, authorization, response.status_code))
            else:
                assert_problem(response, 401)
    assert not let_through
    for key in PUBLIC:
        response = await client.request(key[0], key[1], headers={"Authorization": ""})
        assert response.status_code in (200, 503), (key, response.status_code)

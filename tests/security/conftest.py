"""Security-suite helpers: two organisations' tokens on one real app and store, and the app's
operations read from its own OpenAPI document (so new routes are picked up by the checks)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from api.main import create_app
from core.auth import issue_token
from core.clickhouse import Store
from core.settings import Settings

ORG_A, ORG_B = "acme", "globex"
WRITE_METHODS = ("post", "put", "patch", "delete")


def bearer(settings: Settings, org: str, subject: str = "dev") -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(settings.jwt_secret, org=org, subject=subject)}"}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: dict[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        return (self.method.upper(), self.path)

    def parameters(self, where: str) -> list[dict[str, Any]]:
        return [p for p in self.spec.get("parameters", []) if p["in"] == where]


def operations(schema: dict[str, Any]) -> list[Operation]:
    return [
        Operation(method, path, spec)
        for path, methods in schema["paths"].items()
        for method, spec in methods.items()
    ]


@asynccontextmanager
async def api_client(settings: Settings, store: Store) -> AsyncIterator[httpx.AsyncClient]:
    """The real app on `store`, over ASGI, with no default credentials."""
    app = create_app(settings, store=store)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client,
    ):
        yield client

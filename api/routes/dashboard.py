"""`GET /dashboard`: the live dashboard page (static HTML, JS and CSS under `api/static/`).

The page itself needs no token; the API calls it makes do. In embedded development mode
(`FK_ENV=dev` with the embedded broker) the page carries a freshly minted token for the `demo`
organisation, so `fk up --demo` opens straight onto the demo data; everywhere else the page asks
for a token and keeps it in the tab's sessionStorage.
"""

import html
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from api.deps import ServicesDep
from core.auth import issue_token
from core.settings import Settings

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
ASSETS_PATH = "/dashboard/assets"
DEV_ORG = "demo"
DEV_TOKEN_TTL_SECONDS = 12 * 3600
_TOKEN_SLOT = "__FK_DEV_TOKEN__"

# Scripts and styles only from this origin (no inline code, no CDN); API calls only to it.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    # The page may carry a token: never store it in a cache.
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

router = APIRouter(tags=["dashboard"])


@lru_cache(maxsize=1)
def _template() -> str:
    return (STATIC_DIR / "dashboard.html").read_text(encoding="utf-8")


def injects_dev_token(settings: Settings) -> bool:
    """Only a development platform on its embedded broker hands out a token with the page."""
    return settings.env == "dev" and settings.embedded_broker


@router.get(
    "/dashboard",
    response_class=HTMLResponse,
    summary="The live dashboard (HTML; the API calls it makes need a token).",
)
async def dashboard(services: ServicesDep) -> HTMLResponse:
    settings = services.settings
    token = ""
    if injects_dev_token(settings):
        token = issue_token(
            settings.jwt_secret,
            org=DEV_ORG,
            subject="dashboard",
            ttl_seconds=DEV_TOKEN_TTL_SECONDS,
            issuer=settings.jwt_issuer,
        )
    page = _template().replace(_TOKEN_SLOT, html.escape(token, quote=True))
    return HTMLResponse(page, headers=_HEADERS)

"""`/docs` and `/redoc` load nothing from outside the API: every script, style and icon they name is
served by the API itself. No engine needed: the pages and their assets do no I/O."""

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from api.main import create_app
from tests.conftest import JWT_SECRET, SECRETS_KEY, make_settings

_ASSET = re.compile(r"""(?:src|href)\s*=\s*['"]([^'"]+)['"]""")
_EXPECTED = {
    "/docs": {"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"},
    "/redoc": {"redoc.standalone.js", "favicon.png"},
}


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(env="test", jwt_secret=JWT_SECRET, secrets_key=SECRETS_KEY))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as c:
        yield c


@pytest.mark.parametrize("page", sorted(_EXPECTED))
async def test_page_references_only_assets_the_api_serves(
    api: httpx.AsyncClient, page: str
) -> None:
    response = await api.get(page)
    assert response.status_code == 200
    html = response.text
    # Nothing from another origin, not even a font or an API call.
    assert "http://" not in html
    assert "https://" not in html
    assert "//" not in html.replace("://", "")
    assets = _ASSET.findall(html)
    assert {asset.rsplit("/", 1)[-1] for asset in assets} == _EXPECTED[page]
    for asset in assets:
        assert asset.startswith("/docs/assets/"), asset
        served = await api.get(asset)
        assert served.status_code == 200, asset
        assert len(served.content) > 1000, asset
    assert "'/openapi.json'" in html or '"/openapi.json"' in html


async def test_swagger_ui_is_a_version_that_renders_openapi_3_1(api: httpx.AsyncClient) -> None:
    """FastAPI writes OpenAPI 3.1, which Swagger UI renders from version 5 on."""
    assert (await api.get("/openapi.json")).json()["openapi"].startswith("3.1")
    bundle = (await api.get("/docs/assets/swagger-ui-bundle.js")).text
    versions = re.findall(r'"(5\.\d+\.\d+)"', bundle)
    assert versions, "no Swagger UI 5 version string in the bundle"
    assert (await api.get("/docs/assets/nope.js")).status_code == 404

"""SQL injection attempts in every parameter of every GET operation (generated from the OpenAPI
document): never a 5xx, never another organisation's data, every table intact. Queries bind
parameters (`{name:Type}`) and never format values into SQL; this proves it from the outside."""

from typing import Any
from urllib.parse import quote

import pytest

from api.main import create_app
from core.clickhouse import Store
from core.settings import Settings
from tests.briefs.conftest import insert_events
from tests.factories import make_event
from tests.security.conftest import ORG_A, ORG_B, api_client, bearer, operations

# Campaign commands are answered by the campaign agent.
pytestmark = pytest.mark.usefixtures("campaign_agent")

PAYLOADS = [
    "' OR 1=1 --",
    "' OR '1'='1",
    "x'); DROP TABLE engagement_events; --",
    "\\' UNION SELECT name, 1, 2, 3 FROM system.tables --",
    "cmp_b' OR org != 'acme",
    "1; SELECT * FROM campaigns",
    "{org:String}",
    "%(org)s %s",
    "') OR 1=1 SETTINGS max_execution_time=1 --",
    "* FROM campaigns FORMAT JSON --",
]
# Org B's data that must never reach org A (none of it appears in a payload).
SECRETS = ("Hidden Launch", "inf_hidden_b", "cmp_hidden_b")


def _tables(store: Store) -> dict[str, int]:
    names = [r[0] for r in store.query_rows_sync("SHOW TABLES")]
    return {
        name: int(store.query_rows_sync(f"SELECT count() FROM `{name}`")[0][0])
        for name in names
        if not name.startswith(".")
    }


def _requests(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """(label, path, query) for each payload in each parameter of each GET operation."""
    out = []
    for op in operations(schema):
        if op.method != "get":
            continue
        for param in op.parameters("path") + op.parameters("query"):
            for payload in PAYLOADS:
                path, query = op.path, {}
                for p in op.parameters("path"):
                    value = payload if p is param else "cmp_a"
                    path = path.replace("{" + p["name"] + "}", quote(value, safe=""))
                if param["in"] == "query":
                    query[param["name"]] = payload
                out.append((f"{op.path} {param['name']}", path, query))
    return out


async def test_injection_payloads_in_every_get_parameter(
    settings: Settings, store: Store, topics: None
) -> None:
    a, b = bearer(settings, ORG_A), bearer(settings, ORG_B)
    async with api_client(settings, store) as client:
        created = await client.post(
            "/campaigns", json={"id": "cmp_hidden_b", "name": "Hidden Launch"}, headers=b
        )
        assert created.status_code == 201, created.text
        assert (
            await client.post("/campaigns", json={"id": "cmp_a", "name": "A"}, headers=a)
        ).is_success
        insert_events(
            store,
            [
                make_event(campaignId="cmp_hidden_b", influencerId="inf_hidden_b"),
                make_event(campaignId="cmp_a", influencerId="inf_a"),
            ],
        )
        before = _tables(store)
        assert before["engagement_events"] == 2
        assert before["campaigns"] >= 2

        requests = _requests(create_app(settings).openapi())
        assert len(requests) >= 150, len(requests)
        failures = []
        for label, path, query in requests:
            response = await client.get(path, params=query, headers=a)
            leaked = [s for s in SECRETS if s in response.text]
            if response.status_code >= 500 or leaked:
                failures.append((label, query or path, response.status_code, leaked))
        assert not failures, "\n".join(map(str, failures))
        assert _tables(store) == before
        # The control: org B does see its own data through the same routes.
        own = await client.get("/campaigns/cmp_hidden_b", headers=b)
        assert "Hidden Launch" in own.text

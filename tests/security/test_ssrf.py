"""API7 (server-side request forgery) through the API: webhook endpoint URLs that are, or stand
for, loopback, private, link-local or metadata addresses are refused with 422 at registration
(names are checked again at connect time: tests/core/test_netguard.py)."""

import httpx

from tests.api.test_http import assert_problem

REFUSED = [
    "http://127.0.0.1/hook",
    "http://127.1/hook",
    "http://2130706433/hook",
    "http://0x7f.0.0.1/hook",
    "http://017700000001/hook",
    "http://0/hook",
    "http://localhost/hook",
    "http://localhost./hook",
    "http://api.localhost/hook",
    "http://10.0.0.1/hook",
    "http://172.16.5.4/hook",
    "http://192.168.0.10/hook",
    "http://100.64.0.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.169.254./latest/meta-data/",
    "http://100.100.100.200/latest/meta-data/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:a9fe:a9fe]/hook",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://[fe80::1]/hook",
    "http://[64:ff9b::a9fe:a9fe]/hook",
    "http://[2002:a9fe:a9fe::]/hook",
    "http://[::127.0.0.1]/hook",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_INFO",
    "ftp://hooks.example.com/",
]


async def test_private_and_metadata_urls_are_refused(client: httpx.AsyncClient) -> None:
    accepted = []
    for url in REFUSED:
        response = await client.post("/webhooks/endpoints", json={"url": url})
        if response.status_code != 422:
            accepted.append((url, response.status_code))
        else:
            assert_problem(response, 422)
    assert not accepted
    assert (await client.get("/webhooks/endpoints")).json()["items"] == []


async def test_a_public_url_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post("/webhooks/endpoints", json={"url": "https://hooks.example.com/x"})
    assert response.status_code == 201, response.text

"""API2 (broken authentication): every token the API must refuse is a 401 problem details with a
`WWW-Authenticate: Bearer` challenge -- unsigned, wrongly signed, another algorithm, expired, not
yet valid, or missing a claim the API relies on."""

import base64
import hashlib
import hmac
import time
from typing import Any

import httpx
import jwt
import orjson

from core.settings import Settings
from tests.api.test_http import PROBLEM, assert_problem
from tests.conftest import wait_until

ROUTE = "/campaigns"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade(
    header: dict[str, Any], claims: dict[str, Any], key: bytes | None, digest: str = "sha256"
) -> str:
    """A JWT assembled by hand (PyJWT refuses to sign some of these): an HMAC over the signing
    input with `key`, or an empty signature."""
    signing_input = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(claims))}"
    signature = (
        hmac.new(key, signing_input.encode(), getattr(hashlib, digest)).digest()
        if key is not None
        else b""
    )
    return f"{signing_input}.{_b64(signature)}"


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "dev",
        "org": "acme",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "iss": "fk",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def refused_tokens(secret: str) -> dict[str, str]:
    key = secret.encode()
    now = int(time.time())
    return {
        "alg none": handmade({"alg": "none", "typ": "JWT"}, claims(), None),
        "alg None": handmade({"alg": "None", "typ": "JWT"}, claims(), None),
        "alg none with a signature": handmade({"alg": "none"}, claims(), key),
        "HS256 with another secret": jwt.encode(
            claims(), "another-secret-that-is-long-enough-32b", algorithm="HS256"
        ),
        "HS512 with the right secret": handmade({"alg": "HS512"}, claims(), key, "sha512"),
        "HS384 with the right secret": handmade({"alg": "HS384"}, claims(), key, "sha384"),
        # Algorithm confusion: an RS256 header over an HMAC made with the key material.
        "RS256 header, HMAC signature": handmade({"alg": "RS256", "typ": "JWT"}, claims(), key),
        "RS256 header, junk signature": handmade({"alg": "RS256"}, claims(), b"x"),
        "ES256 header": handmade({"alg": "ES256"}, claims(), key),
        "expired": jwt.encode(claims(exp=now - 5), secret, algorithm="HS256"),
        "nbf in the future": jwt.encode(claims(nbf=now + 3600), secret, algorithm="HS256"),
        "iat in the future": jwt.encode(claims(iat=now + 3600), secret, algorithm="HS256"),
        "no exp": jwt.encode(claims(exp=None), secret, algorithm="HS256"),
        "no org": jwt.encode(claims(org=None), secret, algorithm="HS256"),
        "empty org": jwt.encode(claims(org=""), secret, algorithm="HS256"),
        "org not a string": jwt.encode(claims(org=["acme", "globex"]), secret, algorithm="HS256"),
        "no sub": jwt.encode(claims(sub=None), secret, algorithm="HS256"),
        "another issuer": jwt.encode(claims(iss="someone-else"), secret, algorithm="HS256"),
        "no issuer": jwt.encode(claims(iss=None), secret, algorithm="HS256"),
        "exp not a number": jwt.encode(claims(exp="tomorrow"), secret, algorithm="HS256"),
        "signature stripped": jwt.encode(claims(), secret, algorithm="HS256").rsplit(".", 1)[0]
        + ".",
        "payload swapped": _swap_payload(jwt.encode(claims(), secret, algorithm="HS256")),
        "garbage": "not-a-jwt",
        "three dots": "a.b.c",
        "empty segments": "..",
        "unicode": "токен.токен.токен",
        "huge": "A" * 8000,
    }


def _swap_payload(token: str) -> str:
    header, _, signature = token.split(".")
    return f"{header}.{_b64(orjson.dumps(claims(org='globex')))}.{signature}"


async def test_every_refused_token_is_401_with_a_bearer_challenge(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """One app for all the cases (each would otherwise pay for its own store and topics); the
    failure names every case that was let through."""
    let_through = []
    for name, token in refused_tokens(settings.jwt_secret).items():
        for method in ("GET", "POST"):
            response = await client.request(
                method,
                ROUTE,
                json={"name": "x"},
                headers={"Authorization": f"Bearer {token}".encode()},
            )
            ok = (
                response.status_code == 401
                and response.headers["content-type"].startswith(PROBLEM)
                and response.headers.get("www-authenticate", "").startswith("Bearer")
                and token not in response.text
            )
            if not ok:
                let_through.append((name, method, response.status_code, response.text[:200]))
    assert not let_through
    assert len(refused_tokens(settings.jwt_secret)) >= 25


async def test_missing_or_malformed_authorization_is_401(client: httpx.AsyncClient) -> None:
    for header in (
        "",
        "Bearer",
        "Bearer ",
        "bearer",
        "Basic YWNtZTpzZWNyZXQ=",
        "Token abc",
        "Bearer a b",
    ):
        response = await client.get(ROUTE, headers={"Authorization": header})
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer"), header


async def test_a_hand_signed_hs256_token_is_accepted(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """The control for the refusals above: the same construction with the right key and
    algorithm is a valid token."""
    good = handmade({"alg": "HS256", "typ": "JWT"}, claims(), settings.jwt_secret.encode())
    response = await client.get(ROUTE, headers={"Authorization": f"Bearer {good}"})
    assert response.status_code == 200, response.text


async def test_a_remembered_token_stops_working_when_it_expires(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """Verified tokens are cached (api.deps); the cache must not outlive the token's `exp`."""
    token = jwt.encode(claims(exp=int(time.time()) + 2), settings.jwt_secret, algorithm="HS256")
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get(ROUTE, headers=headers)).status_code == 200

    async def refused() -> bool:
        return (await client.get(ROUTE, headers=headers)).status_code == 401

    await wait_until(refused, timeout=10, interval=0.2)

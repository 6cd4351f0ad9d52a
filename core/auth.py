"""HS256 JWTs: the `org` claim scopes campaign data; `fk token` mints development tokens."""

import time
from dataclasses import dataclass

import jwt


class InvalidToken(Exception):
    """The token is missing, malformed, expired, not yet valid or signed with another key."""


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    org: str
    expires_at: float


def issue_token(
    secret: str, *, org: str, subject: str = "dev", ttl_seconds: int = 3600, issuer: str = "fk"
) -> str:
    now = int(time.time())
    claims = {
        "sub": subject,
        "org": org,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
        "iss": issuer,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def verify_token(secret: str, token: str, *, issuer: str = "fk") -> Principal:
    """Only HS256 is accepted (never `none`, never an algorithm named by the token)."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            issuer=issuer,
            options={"require": ["exp", "org", "sub"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from None
    org = claims.get("org")
    if not isinstance(org, str) or not org:
        raise InvalidToken("token has no organisation")
    return Principal(subject=str(claims["sub"]), org=org, expires_at=float(claims["exp"]))

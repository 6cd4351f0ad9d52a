"""What routes depend on: the shared clients (built in the lifespan) and the caller's identity."""

import time
from dataclasses import dataclass, field
from typing import Annotated

from aiokafka import AIOKafkaProducer
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.cache import TtlCache
from api.errors import Unauthorized
from core.auth import InvalidToken, Principal, verify_token
from core.clickhouse import Store
from core.settings import Settings


@dataclass
class Services:
    settings: Settings
    store: Store
    producer: AIOKafkaProducer
    metrics_cache: TtlCache[bytes | None]
    top_cache: TtlCache[bytes | None]
    tokens: dict[str, Principal] = field(default_factory=dict)


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]

_bearer = HTTPBearer(auto_error=False, description="A JWT signed with FK_JWT_SECRET (HS256).")
_MAX_CACHED_TOKENS = 10_000


async def require_principal(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, from `Authorization: Bearer <JWT>`; verified tokens are remembered until they
    expire so the signature check is not paid on every request."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized(
            "Send Authorization: Bearer <token>.", headers={"WWW-Authenticate": "Bearer"}
        )
    token = credentials.credentials
    cached = services.tokens.get(token)
    if cached is not None and cached.expires_at > time.time():
        return cached
    try:
        principal = verify_token(
            services.settings.jwt_secret, token, issuer=services.settings.jwt_issuer
        )
    except InvalidToken as exc:
        services.tokens.pop(token, None)
        raise Unauthorized(
            f"Invalid token: {exc}.", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
        ) from None
    if len(services.tokens) >= _MAX_CACHED_TOKENS:
        services.tokens.clear()
    services.tokens[token] = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(require_principal)]

"""Standard Webhooks signatures: `whsec_` secrets and `v1,<base64 HMAC-SHA256>` of
`{webhook-id}.{webhook-timestamp}.{body}` keyed with the base64-decoded secret."""

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _key(secret: str) -> bytes:
    raw = secret.removeprefix(PREFIX)
    return base64.b64decode(raw + "=" * (-len(raw) % 4))


def valid_secret(secret: str) -> bool:
    try:
        return secret.startswith(PREFIX) and len(_key(secret)) >= 16
    except ValueError:
        return False


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    message = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(
    active_secrets: Iterable[str], webhook_id: str, timestamp: int, body: bytes
) -> str:
    """Space-separated signatures, one per secret (the new one and, during a rotation's grace
    period, the old one), so receivers holding either secret verify."""
    return " ".join(sign(s, webhook_id, timestamp, body) for s in active_secrets)

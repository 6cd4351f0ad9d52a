"""Secrets at rest (webhook signing secrets): sealed with a key from settings (`FK_SECRETS_KEY`)
before they are stored, opened when read. A stored value without the `fkenc1:` prefix is a row
written before sealing existed and is read as it is (plaintext)."""

import base64
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "fkenc1:"
"""Marks a sealed value; a later scheme takes another prefix, so stored values say how to open
them."""

_NONCE_BYTES = 12
_TAG_BYTES = 16


class SecretUnreadable(ValueError):
    """A sealed value does not open with this key (another key sealed it, or it was altered)."""


class SecretCipher:
    """AES-256-GCM (the `cryptography` package) under a key derived from the settings' key with
    HKDF-SHA256; a random 96-bit nonce per value. `context` (the endpoint id) is authenticated
    with the value as associated data, so a sealed secret copied into another row does not open
    there."""

    def __init__(self, key: str) -> None:
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"fk webhook secrets v1"
        ).derive(key.encode())
        self._aead = AESGCM(derived)

    def seal(self, plain: str, *, context: str) -> str:
        """The stored form of `plain`; an empty string stays empty (no secret)."""
        if not plain:
            return ""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = nonce + self._aead.encrypt(nonce, plain.encode(), _associated(context))
        return PREFIX + base64.urlsafe_b64encode(sealed).decode().rstrip("=")

    def open(self, stored: str, *, context: str) -> str:
        """The secret a stored value holds: a sealed value opened, a legacy (plaintext) one as it
        is. Raises `SecretUnreadable` when a sealed value does not open with this key."""
        if not stored.startswith(PREFIX):
            return stored
        raw = stored.removeprefix(PREFIX)
        try:
            sealed = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        except ValueError:
            raise SecretUnreadable("not a sealed value") from None
        if len(sealed) < _NONCE_BYTES + _TAG_BYTES:
            raise SecretUnreadable("not a sealed value")
        try:
            plain = self._aead.decrypt(
                sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], _associated(context)
            )
        except InvalidTag:
            raise SecretUnreadable("does not open with FK_SECRETS_KEY") from None
        return plain.decode()


def _associated(context: str) -> bytes:
    return PREFIX.encode() + context.encode()


def is_sealed(stored: str) -> bool:
    """Whether a stored value is sealed (an empty one holds nothing to seal)."""
    return not stored or stored.startswith(PREFIX)

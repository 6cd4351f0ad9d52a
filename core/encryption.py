"""Secrets at rest (webhook signing secrets): sealed with a key from settings (`FK_SECRETS_KEY`)
before they are stored, opened when read. A stored value without the `fkenc1:` prefix is a row
written before sealing existed and is read as it is (plaintext)."""

import base64
import hashlib
import hmac
import secrets

PREFIX = "fkenc1:"
"""Marks a sealed value; a later scheme takes another prefix, so stored values say how to open
them."""

_NONCE_BYTES = 16
_TAG_BYTES = 32
_BLOCK_BYTES = hashlib.sha256().digest_size


class SecretUnreadable(ValueError):
    """A sealed value does not open with this key (another key sealed it, or it was altered)."""


class SecretCipher:
    """Authenticated encryption from the standard library's primitives (the `cryptography`
    package is not a dependency): HMAC-SHA256 in counter mode as the keystream (a PRF in CTR
    mode) over a random 128-bit nonce, then HMAC-SHA256 over the context, nonce and ciphertext
    (encrypt-then-MAC) with a separate key; both keys are derived from the settings' key.

    `context` (the endpoint id) is authenticated with the value, so a sealed secret copied into
    another row does not open there.
    """

    def __init__(self, key: str) -> None:
        master = key.encode()
        self._enc_key = hmac.digest(master, b"fk secrets v1 encryption", "sha256")
        self._mac_key = hmac.digest(master, b"fk secrets v1 authentication", "sha256")

    def seal(self, plain: str, *, context: str) -> str:
        """The stored form of `plain`; an empty string stays empty (no secret)."""
        if not plain:
            return ""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        data = plain.encode()
        body = bytes(a ^ b for a, b in zip(data, self._keystream(nonce, len(data)), strict=True))
        sealed = nonce + body + self._tag(context, nonce, body)
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
        nonce, body, tag = (
            sealed[:_NONCE_BYTES],
            sealed[_NONCE_BYTES:-_TAG_BYTES],
            sealed[-_TAG_BYTES:],
        )
        if not hmac.compare_digest(tag, self._tag(context, nonce, body)):
            raise SecretUnreadable("does not open with FK_SECRETS_KEY")
        plain = bytes(a ^ b for a, b in zip(body, self._keystream(nonce, len(body)), strict=True))
        return plain.decode()

    def _keystream(self, nonce: bytes, size: int) -> bytes:
        blocks = (
            hmac.digest(self._enc_key, nonce + i.to_bytes(4, "big"), "sha256")
            for i in range(-(-size // _BLOCK_BYTES))
        )
        return b"".join(blocks)[:size]

    def _tag(self, context: str, nonce: bytes, body: bytes) -> bytes:
        ctx = context.encode()
        message = PREFIX.encode() + len(ctx).to_bytes(4, "big") + ctx + nonce + body
        return hmac.digest(self._mac_key, message, "sha256")


def is_sealed(stored: str) -> bool:
    """Whether a stored value is sealed (an empty one holds nothing to seal)."""
    return not stored or stored.startswith(PREFIX)

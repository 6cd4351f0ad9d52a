"""Sealing secrets at rest: what is stored reveals nothing, opens only with its key and context,
and a legacy plaintext value is read as it is."""

import secrets

import pytest

from core.encryption import PREFIX, SecretCipher, SecretUnreadable, is_sealed
from core.signing import new_secret

KEY = secrets.token_urlsafe(48)


def test_a_sealed_secret_opens_to_itself_and_shows_nothing_of_it() -> None:
    cipher = SecretCipher(KEY)
    plain = new_secret()
    sealed = cipher.seal(plain, context="ep_1")
    assert sealed.startswith(PREFIX)
    assert plain not in sealed
    assert plain.removeprefix("whsec_") not in sealed
    assert cipher.open(sealed, context="ep_1") == plain
    # A fresh nonce each time: the same secret is never stored twice alike.
    assert cipher.seal(plain, context="ep_1") != sealed


def test_a_sealed_secret_opens_only_with_its_key_and_its_endpoint() -> None:
    sealed = SecretCipher(KEY).seal(new_secret(), context="ep_1")
    with pytest.raises(SecretUnreadable):
        SecretCipher(secrets.token_urlsafe(48)).open(sealed, context="ep_1")
    with pytest.raises(SecretUnreadable):
        SecretCipher(KEY).open(sealed, context="ep_2")


@pytest.mark.parametrize("position", [len(PREFIX), len(PREFIX) + 30, -1])
def test_an_altered_sealed_secret_does_not_open(position: int) -> None:
    sealed = SecretCipher(KEY).seal(new_secret(), context="ep_1")
    flipped = "A" if sealed[position] != "A" else "B"
    altered = sealed[:position] + flipped + sealed[position + 1 :]
    with pytest.raises(SecretUnreadable):
        SecretCipher(KEY).open(altered, context="ep_1")


@pytest.mark.parametrize("stored", [PREFIX, PREFIX + "short", PREFIX + "!!not base64!!"])
def test_a_malformed_sealed_value_does_not_open(stored: str) -> None:
    with pytest.raises(SecretUnreadable):
        SecretCipher(KEY).open(stored, context="ep_1")


def test_a_legacy_plaintext_secret_is_read_as_it_is() -> None:
    plain = new_secret()
    assert SecretCipher(KEY).open(plain, context="ep_1") == plain
    assert not is_sealed(plain)
    assert is_sealed("")
    assert SecretCipher(KEY).seal("", context="ep_1") == ""

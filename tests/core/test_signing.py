"""Standard Webhooks signatures, checked with the official verifier."""

import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from core import signing


def headers(secrets: list[str], body: bytes, msg_id: str = "msg_1") -> dict[str, str]:
    ts = int(time.time())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signing.signature_header(secrets, msg_id, ts, body),
    }


def test_new_secrets_are_whsec_and_verify() -> None:
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    assert signing.valid_secret(secret)
    body = b'{"a":1}'
    assert Webhook(secret).verify(body, headers([secret], body)) == {"a": 1}


def test_during_rotation_both_secrets_verify_and_a_stranger_does_not() -> None:
    old, new = signing.new_secret(), signing.new_secret()
    body = b'{"b":2}'
    h = headers([new, old], body)
    assert len(h["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(body, h)
    Webhook(new).verify(body, h)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, h)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(b'{"b":3}', h)

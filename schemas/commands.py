"""Campaign commands and their answers, between command clients (API processes, the clock) and
the campaign agent that owns the campaign (`streams/agents/commands.py`).

A command goes to `campaign-commands` keyed by the campaign id, so one agent (the owner of
the id's partition) decides every command of a campaign in order; its answer goes to
`campaign-command-replies`, keyed by the client and the command (`reply_key`, which spreads
the answers over the topic's partitions), where the client that sent it (`client`) picks it up
by `id`. Internal topics: not part of the public contract.
"""

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class Command(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    """Unique per request; a redelivered command is recognised by it."""
    client: str
    kind: Literal["create", "update"]
    org: str
    campaign_id: str
    body: dict[str, Any]
    """CampaignCreate (create) or CampaignPatch (update), as sent by the caller."""
    expected_version: int | None = None
    idempotency_key: str | None = None
    body_hash: str | None = None
    check: bool = True
    """create: look for an existing campaign of the id (the caller chose it)."""
    sent_at: float | None = None
    """When the client sent it (seconds since the epoch), for the delivery wait's metric."""


class Outcome(StrEnum):
    changed = "changed"
    unchanged = "unchanged"
    replayed = "replayed"
    not_found = "notFound"
    exists = "exists"
    version_mismatch = "versionMismatch"
    invalid_transition = "invalidTransition"
    invalid_change = "invalidChange"
    key_reused = "keyReused"
    failed = "failed"


class Reply(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    client: str
    outcome: Outcome
    campaign: dict[str, Any] | None = None
    """The campaign after the command (changed, unchanged, replayed), by alias."""
    current_version: int | None = None
    current_status: str | None = None
    requested_status: str | None = None
    error: str | None = None
    event: tuple[str, int, int] | None = None
    """Where the campaign event went (topic, partition, offset), for a wait on its storage."""


def reply_key(client: str, command_id: str) -> bytes:
    """The key of an answer: its client, then the command."""
    return f"{client}/{command_id}".encode()


def reply_client(key: bytes | None) -> bytes | None:
    """The client of an answer's key (also of one keyed by its client alone, as answers were
    before they were spread)."""
    return None if key is None else key.split(b"/", 1)[0]

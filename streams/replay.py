"""Producing files into Kafka: JSONL events as they are, performance-CSV rows as events.

Used by `fk replay` and the embedded demo; paced by a rate limit or by recorded event time.
"""

import asyncio
import csv
import hashlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from schemas.events import parse_event_time

_CSV_FIELDS = {
    "campaignid": "campaignId",
    "campaign_id": "campaignId",
    "influencerid": "influencerId",
    "influencer_id": "influencerId",
    "platform": "platform",
    "postid": "postId",
    "post_id": "postId",
    "postedat": "timestamp",
    "posted_at": "timestamp",
    "views": "views",
    "likes": "likes",
    "comments": "comments",
    "shares": "shares",
    "saves": "saves",
    "followers": "followers",
}
_INT_FIELDS = {"views", "likes", "comments", "shares", "saves", "followers"}


@dataclass(frozen=True, slots=True)
class Message:
    key: bytes | None
    value: bytes
    event_time_ms: int | None


def _key_and_time(value: bytes) -> tuple[bytes | None, int | None]:
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(obj, dict):
        return None, None
    key = obj.get("influencerId")
    try:
        ts = int(parse_event_time(obj.get("timestamp")).timestamp() * 1000)
    except ValueError:
        ts = None
    return (key.encode() if isinstance(key, str) else None), ts


def read_jsonl(path: Path) -> Iterator[Message]:
    """Each non-empty line is sent unchanged (invalid ones reach the dead-letter topic)."""
    with path.open("rb") as fh:
        for line in fh:
            line = line.strip()
            if line:
                key, ts = _key_and_time(line)
                yield Message(key, line, ts)


def csv_row_to_event(row: dict[str, str]) -> dict[str, object]:
    """A performance-CSV row as an engagement event; its eventId is a hash of the row, so the
    same row replayed twice is counted once."""
    event: dict[str, object] = {}
    for column, raw in row.items():
        name = _CSV_FIELDS.get((column or "").strip().lower())
        if name is None or raw is None or raw.strip() == "":
            continue
        value = raw.strip()
        event[name] = int(value) if name in _INT_FIELDS and value.lstrip("-").isdigit() else value
    digest = hashlib.sha256(orjson.dumps(sorted(row.items()))).hexdigest()[:24]
    event["eventId"] = f"csv-{digest}"
    event.setdefault("timestamp", int(time.time() * 1000))
    return event


def read_csv(path: Path) -> Iterator[Message]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        for row in csv.DictReader(fh):
            value = orjson.dumps(csv_row_to_event(row))
            key, ts = _key_and_time(value)
            yield Message(key, value, ts)


def read_file(path: Path) -> Iterator[Message]:
    return read_csv(path) if path.suffix.lower() == ".csv" else read_jsonl(path)


async def paced(
    messages: Iterable[Message], *, rate: float | None, speedup: float | None
) -> AsyncIterator[Message]:
    """Yield messages no faster than `rate` per second, or spaced like their recorded event
    times divided by `speedup`."""
    started = time.monotonic()
    first_ts: int | None = None
    for n, message in enumerate(messages):
        if rate:
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        elif speedup and message.event_time_ms is not None:
            first_ts = first_ts if first_ts is not None else message.event_time_ms
            due = started + (message.event_time_ms - first_ts) / 1000 / speedup
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        yield message


async def produce(
    bootstrap: str,
    topic: str,
    messages: AsyncIterator[Message],
    on_progress: Callable[[int], None] | None = None,
    chunk: int = 2000,
    *,
    security: Mapping[str, Any] | None = None,
) -> int:
    """Send every message and wait for the broker's acknowledgements; return how many.
    `security` is `core.kafka.client_security(settings)` for a cluster with TLS or SASL."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        **(security or {}),
        acks="all",
        linger_ms=20,
        max_batch_size=256 * 1024,
        max_request_size=8 * 1024 * 1024,
    )
    await producer.start()
    sent = 0
    pending: list[asyncio.Future[object]] = []
    try:
        async for message in messages:
            pending.append(await producer.send(topic, value=message.value, key=message.key))
            if len(pending) >= chunk:
                await asyncio.gather(*pending)
                sent += len(pending)
                if on_progress:
                    on_progress(len(pending))
                pending = []
        if pending:
            await asyncio.gather(*pending)
            sent += len(pending)
            if on_progress:
                on_progress(len(pending))
    finally:
        await producer.stop()
    return sent

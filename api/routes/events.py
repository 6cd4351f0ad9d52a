"""`POST /events`: validate engagement events and publish them to `engagement-events`."""

import asyncio
import time
from typing import Annotated

import structlog
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Body, Request, status
from fastapi.openapi.models import Example
from pydantic import Field

from api.deps import PrincipalDep, ServicesDep
from api.errors import InvalidInput, ServiceUnavailable
from core.changes import STORED
from schemas.api import EventsAccepted, Problem
from schemas.events import (
    EVENT_EXAMPLES,
    ORG_KAFKA_HEADER,
    REQUEST_ID_KAFKA_HEADER,
    EngagementEvent,
)

router = APIRouter(tags=["events"])
log = structlog.get_logger(__name__)

EventOrEvents = EngagementEvent | Annotated[list[EngagementEvent], Field(min_length=1)]
_ONE, _LEAST = EVENT_EXAMPLES
_BODY_EXAMPLES: dict[str, Example] = {
    "event": {"summary": "One event", "value": _ONE},
    "batch": {"summary": "An array of events (all or nothing)", "value": [_ONE, _LEAST]},
}


@router.post(
    "/events",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EventsAccepted,
    summary="Publish one engagement event or an array of them.",
    responses={
        413: {"model": Problem, "description": "Body larger than 1 MiB."},
        422: {"model": Problem, "description": "An event is invalid; none was published."},
        503: {"model": Problem, "description": "The broker did not acknowledge the events."},
    },
)
async def post_events(
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    body: Annotated[EventOrEvents, Body(openapi_examples=_BODY_EXAMPLES)],
) -> EventsAccepted:
    """All or nothing: if any event is invalid (including a timestamp more than five minutes in the
    future), the answer is 422 naming each one and nothing is published. Accepted events are
    acknowledged by the broker before the 202; in the embedded platform, whose broker keeps
    messages in memory only, they are also stored before the 202 (a 503 otherwise)."""
    settings = services.settings
    events = body if isinstance(body, list) else [body]
    if len(events) > settings.max_events_per_request:
        raise InvalidInput(f"At most {settings.max_events_per_request} events per request.")
    horizon_ms = int(time.time() * 1000) + settings.max_future_skew_seconds * 1000
    future = [
        {
            "location": f"body.{i}.timestamp" if isinstance(body, list) else "body.timestamp",
            "message": f"more than {settings.max_future_skew_seconds}s in the future",
            "type": "future_timestamp",
        }
        for i, e in enumerate(events)
        if e.timestamp_ms > horizon_ms
    ]
    if future:
        raise InvalidInput("An event's timestamp is in the future.", errors=future)
    # The events belong to the caller's organisation. The request id travels with each message,
    # so the worker's log lines about these events (dead letters, duplicates) can be joined to
    # the API's.
    headers = [
        (ORG_KAFKA_HEADER, principal.org.encode()),
        (REQUEST_ID_KAFKA_HEADER, str(request.state.request_id).encode()),
    ]
    try:
        sent = [
            await services.producer.send(
                settings.engagement_topic,
                value=e.model_dump_json(by_alias=True, exclude_none=True).encode(),
                key=e.influencer_id.encode(),
                headers=headers,
            )
            for e in events
        ]
        records = await asyncio.wait_for(asyncio.gather(*sent), timeout=10)
    except (KafkaError, TimeoutError) as exc:
        raise ServiceUnavailable(
            f"The broker did not accept the events ({type(exc).__name__}).",
            headers={"Retry-After": "1"},
        ) from None
    if services.ack_after_store and not await STORED.wait(
        [(r.topic, r.partition, r.offset) for r in records], settings.ack_store_timeout_seconds
    ):
        # Published but not stored yet: resending the same eventIds is safe (they count once).
        raise ServiceUnavailable(
            "The events were not stored in time; send them again with the same eventIds.",
            headers={"Retry-After": "1"},
        )
    event_ids = [e.event_id for e in events]
    log.info("events.published", events=len(events), event_ids=event_ids[:20])
    return EventsAccepted(accepted=len(events), event_ids=event_ids)

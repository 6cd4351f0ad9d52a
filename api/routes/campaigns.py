"""`/campaigns`: create, read, list and change campaigns. The routes validate and command; the
ledger publishes each accepted change to `campaign-events`."""

import re
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Response, status

from api.deps import PrincipalDep, ServicesDep
from api.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    ServiceUnavailable,
)
from core import lifecycle
from core.ledger import (
    CampaignExists,
    CampaignNotFound,
    CommandNotPublished,
    CommandUnanswered,
    IdempotencyKeyReused,
    VersionMismatch,
)
from core.repositories.campaigns import list_campaigns
from schemas.api import Problem
from schemas.campaigns import (
    Campaign,
    CampaignCreate,
    CampaignPage,
    CampaignPatch,
    CampaignStatus,
)

router = APIRouter(tags=["campaigns"])

CampaignPath = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]
_ETAG = re.compile(r'^\s*(?:W/)?"(\d{1,18})"\s*$')


def etag(campaign: Campaign) -> str:
    return f'"{campaign.version}"'


def _answer(campaign: Campaign, response: Response) -> Campaign:
    response.headers["ETag"] = etag(campaign)
    return campaign


_UNAVAILABLE = (
    "The broker did not take the command (nothing changed), or the campaign agent gave no"
    " answer in time (the change may still be applied). Either way a retry with the same"
    " If-Match or Idempotency-Key is safe; Retry-After says when."
)


def _unavailable(exc: CommandNotPublished) -> ServiceUnavailable:
    if isinstance(exc, CommandUnanswered):
        return ServiceUnavailable(
            f"The campaign agent gave no answer ({exc}); the change may still be applied."
            " Retrying with the same If-Match or Idempotency-Key is safe.",
            headers={"Retry-After": "1"},
        )
    return ServiceUnavailable(
        f"The change was not accepted by the broker ({exc}); nothing changed. Retry.",
        headers={"Retry-After": "1"},
    )


_ETAG_HEADER = {
    "ETag": {
        "description": 'The version, e.g. "3": send it as If-Match to change the campaign.',
        "schema": {"type": "string"},
    }
}
_CAMPAIGN_ID = "$response.body#/id"
# Where a campaign answer leads (OpenAPI links; the stateful schema fuzz run follows them).
_CHANGE_LINK = {
    "ChangeCampaign": {
        "operationId": "patch_campaign_campaigns__campaign_id__patch",
        "parameters": {"campaign_id": _CAMPAIGN_ID, "header.if-match": "$response.header.ETag"},
        "description": "Change the campaign at the version just returned.",
    }
}
_CAMPAIGN_LINKS = {
    "GetCampaign": {
        "operationId": "get_campaign_campaigns__campaign_id__get",
        "parameters": {"campaign_id": _CAMPAIGN_ID},
    },
    **_CHANGE_LINK,
    "CampaignMetrics": {
        "operationId": "campaign_metrics_campaigns__campaign_id__metrics_get",
        "parameters": {"campaign_id": _CAMPAIGN_ID},
    },
    "CampaignDeliveries": {
        "operationId": "delivery_log_logs_get",
        "parameters": {"campaignId": _CAMPAIGN_ID},
    },
}


@router.post(
    "/campaigns",
    status_code=status.HTTP_201_CREATED,
    response_model=Campaign,
    summary="Create a campaign (status draft, version 1).",
    responses={
        201: {
            "description": "The campaign, at version 1.",
            "headers": {
                **_ETAG_HEADER,
                "Location": {"description": "The campaign's URL.", "schema": {"type": "string"}},
            },
            "links": _CAMPAIGN_LINKS,
        },
        409: {
            "model": Problem,
            "description": "Your organisation has a campaign with this id (ids are unique within "
            "an organisation; another organisation's use of an id is never in the way).",
        },
        422: {"model": Problem, "description": "Invalid body, or Idempotency-Key reused."},
        503: {"model": Problem, "description": _UNAVAILABLE},
    },
)
async def create_campaign(
    body: CampaignCreate,
    response: Response,
    services: ServicesDep,
    principal: PrincipalDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=200,
            description="Retries with the same key and body return the same campaign.",
        ),
    ] = None,
) -> Campaign:
    try:
        campaign, replayed = await services.ledger.create(
            principal.org, body, idempotency_key=idempotency_key
        )
    except IdempotencyKeyReused:
        raise InvalidInput(
            "This Idempotency-Key was used with a different body; use a new key."
        ) from None
    except CampaignExists:
        raise Conflict(f"Your organisation already has a campaign {body.id!r}.") from None
    except lifecycle.InvalidChange as exc:
        raise InvalidInput(str(exc)) from None
    except CommandNotPublished as exc:
        raise _unavailable(exc) from None
    services.known_campaigns.add((campaign.org, campaign.id))
    response.headers["Location"] = f"/campaigns/{campaign.id}"
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return _answer(campaign, response)


@router.get(
    "/campaigns",
    response_model=CampaignPage,
    summary="The caller's campaigns by id, optionally of one status.",
)
async def get_campaigns(
    services: ServicesDep,
    principal: PrincipalDep,
    status_filter: Annotated[CampaignStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str, Query(max_length=100)] = "",
) -> CampaignPage:
    items = await list_campaigns(services.store, principal.org, status_filter, cursor, limit)
    return CampaignPage(items=items, next_cursor=items[-1].id if len(items) == limit else None)


@router.get(
    "/campaigns/{campaign_id}",
    response_model=Campaign,
    summary="One campaign; its ETag is the version for If-Match.",
    responses={
        200: {"description": "The campaign.", "headers": _ETAG_HEADER, "links": _CHANGE_LINK},
        404: {"model": Problem, "description": "No such campaign in your organisation."},
    },
)
async def get_campaign(
    campaign_id: CampaignPath, response: Response, services: ServicesDep, principal: PrincipalDep
) -> Campaign:
    try:
        return _answer(await services.ledger.get(principal.org, campaign_id), response)
    except CampaignNotFound:
        raise NotFound(f"No campaign {campaign_id!r}.") from None


@router.patch(
    "/campaigns/{campaign_id}",
    response_model=Campaign,
    summary="Change fields and/or request a status transition, at the version in If-Match.",
    responses={
        200: {
            "description": "The campaign at its new version.",
            "headers": _ETAG_HEADER,
            "links": _CHANGE_LINK,
        },
        404: {"model": Problem, "description": "No such campaign in your organisation."},
        409: {"model": Problem, "description": "Transition not allowed (lists allowed ones)."},
        412: {"model": Problem, "description": "If-Match is not the current version."},
        428: {"model": Problem, "description": "Neither If-Match nor version was sent."},
        503: {"model": Problem, "description": _UNAVAILABLE},
    },
)
async def patch_campaign(
    campaign_id: CampaignPath,
    body: CampaignPatch,
    response: Response,
    services: ServicesDep,
    principal: PrincipalDep,
    if_match: Annotated[
        str | None, Header(description='The ETag of the version you changed, e.g. "3".')
    ] = None,
) -> Campaign:
    """Fields left out stay as they are. A `status` different from the current one must be an
    allowed transition: draft → scheduled | cancelled; scheduled → live | cancelled; live →
    paused | completed | cancelled; paused → live | cancelled. Refused changes leave no trace."""
    expected = _expected_version(if_match, body.version)
    try:
        campaign = await services.ledger.update(
            principal.org, campaign_id, body, expected_version=expected
        )
    except CampaignNotFound:
        raise NotFound(f"No campaign {campaign_id!r}.") from None
    except VersionMismatch as exc:
        raise PreconditionFailed(
            f"The campaign is at version {exc.current}; fetch it and retry.",
            headers={"ETag": f'"{exc.current}"'},
        ) from None
    except lifecycle.InvalidTransition as exc:
        allowed = [s.value for s in exc.allowed]
        raise Conflict(
            f"Cannot go from {exc.current.value} to {exc.requested.value}; allowed: "
            f"{', '.join(allowed) or 'none (final state)'}.",
            errors=[_transition_error(exc.current, exc.requested, allowed)],
        ) from None
    except lifecycle.InvalidChange as exc:
        raise InvalidInput(str(exc)) from None
    except CommandNotPublished as exc:
        raise _unavailable(exc) from None
    return _answer(campaign, response)


def _transition_error(
    current: CampaignStatus, requested: CampaignStatus, allowed: list[str]
) -> dict[str, Any]:
    return {
        "location": "body.status",
        "message": f"{current.value} -> {requested.value} is not allowed",
        "type": "invalid_transition",
        "currentStatus": current.value,
        "allowedTransitions": allowed,
    }


def _expected_version(if_match: str | None, version: int | None) -> int:
    if if_match is not None:
        found = _ETAG.match(if_match)
        if found is None:
            raise PreconditionFailed('If-Match must be an ETag of this API, e.g. "3".')
        tagged = int(found.group(1))
        if version is not None and version != tagged:
            raise InvalidInput("If-Match and version disagree.")
        return tagged
    if version is None:
        raise PreconditionRequired('Send If-Match: "<version>" (the ETag) or a version field.')
    return version

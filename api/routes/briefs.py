"""`POST /generate-brief` and `GET /briefs/{id}`: campaign briefs grounded in our data, scoped to
the caller's organisation."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response, status

from api.deps import PrincipalDep, ServicesDep
from api.errors import ApiError, BadGateway, GatewayTimeout, InvalidInput, NotFound
from briefs.errors import BriefError, Ungrounded
from briefs.service import BriefService
from schemas.api import Problem
from schemas.briefs import Brief, BriefRequest

router = APIRouter(tags=["briefs"])

BriefId = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")]


async def get_brief_service(services: ServicesDep) -> BriefService:
    if services.briefs is None:
        raise ApiError("The brief generator is not configured.")
    return services.briefs


BriefServiceDep = Annotated[BriefService, Depends(get_brief_service)]


def _api_error(exc: BriefError) -> ApiError:
    errors: list[dict[str, Any]] | None = None
    if isinstance(exc, Ungrounded):
        errors = [{"location": "brief", "message": p, "type": "ungrounded"} for p in exc.problems]
    kind = {422: InvalidInput, 504: GatewayTimeout}.get(exc.status, BadGateway)
    return kind(exc.detail, errors=errors)


_READ_BRIEF = {
    "GetBrief": {
        "operationId": "get_brief_briefs__brief_id__get",
        "parameters": {"brief_id": "$response.body#/id"},
    }
}


@router.post(
    "/generate-brief",
    response_model=Brief,
    status_code=status.HTTP_201_CREATED,
    summary="Plan a campaign brief with tools over our engagement data (200 when cached).",
    responses={
        201: {"description": "The new brief.", "links": _READ_BRIEF},
        200: {
            "model": Brief,
            "description": "An identical request's brief, from the cache.",
            "links": _READ_BRIEF,
        },
        422: {"model": Problem, "description": "Invalid request, refusal, or ungrounded brief."},
        502: {"model": Problem, "description": "The model provider failed or answered badly."},
        504: {"model": Problem, "description": "The model provider timed out."},
    },
)
async def generate_brief(
    body: BriefRequest, service: BriefServiceDep, principal: PrincipalDep, response: Response
) -> Brief:
    """Every number in the brief comes from a tool result (see `evidence`). Brand-supplied text is
    passed to the model as data only. An identical request (same data snapshot, model and prompt
    version) is answered from the shared cache."""
    try:
        generated = await service.generate(body, principal.org)
    except BriefError as exc:
        raise _api_error(exc) from None
    if not generated.created:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/briefs/{generated.brief.id}"
    return generated.brief


@router.get(
    "/briefs/{brief_id}",
    response_model=Brief,
    summary="A stored brief of the caller's organisation.",
    responses={404: {"model": Problem, "description": "No such brief in your organisation."}},
)
async def get_brief(brief_id: BriefId, service: BriefServiceDep, principal: PrincipalDep) -> Brief:
    brief = await service.get(brief_id, principal.org)
    if brief is None:
        raise NotFound(f"No brief {brief_id!r}.")
    return brief

"""Schemathesis hooks of the schema fuzz run: the problem-details and authentication checks, and
webhook URLs kept on this machine."""

import os
from typing import Any

import schemathesis
from pydantic import HttpUrl, TypeAdapter, ValidationError

PROBLEM_JSON = "application/problem+json"
# Answered with its Readiness body (naming the failed check), not problem details.
NOT_PROBLEMS = {("GET", "/readyz", 503)}
DEAD_END = os.environ.get("FUZZ_WEBHOOK_URL", "http://127.0.0.1:9/hook")
# What `POST /webhooks/endpoints` accepts as a URL (schemas.webhooks.EndpointCreate.url).
_URL: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)


@schemathesis.check
def problem_details(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx/5xx is an RFC 9457 problem-details object whose `status` is the status."""
    if response.status_code < 400 or (case.method, case.path, response.status_code) in NOT_PROBLEMS:
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type.startswith(PROBLEM_JSON), f"error served as {content_type!r}"
    body = response.json()
    assert isinstance(body, dict), "problem details must be an object"
    assert body.get("status") == response.status_code, "problem `status` is not the status"
    assert isinstance(body.get("title"), str), "problem without a `title`"
    assert body["title"], "problem with an empty `title`"
    assert isinstance(body.get("type", "about:blank"), str), "problem `type` is not a string"
    return True


@schemathesis.check
def token_required(ctx: Any, response: Any, case: Any) -> bool | None:
    """An operation that declares bearer security answers 401 to a request without a token."""
    operation = case.operation
    # Other methods on the path (405 before any authentication) are not this operation.
    if case.method.upper() != operation.method.upper() or not operation.definition.raw.get(
        "security"
    ):
        return None
    if "authorization" in {k.lower() for k in response.request.headers}:
        return None
    assert response.status_code == 401, f"{response.status_code} without a token"
    return True


# Schemathesis attaches `apply_to` at run time; its hook decorator is typed as a bare Callable.
@schemathesis.hook("map_body").apply_to(  # type: ignore[attr-defined,untyped-decorator]
    method="POST", path="/webhooks/endpoints"
)
def local_webhook_url(ctx: Any, body: Any) -> Any:
    """Deliveries never leave the machine: every endpoint registered is a closed local port. A URL
    the API refuses anyway (a negative case: too long, not a URL) stays as generated, so the case
    stays invalid."""
    if isinstance(body, dict) and isinstance(body.get("url"), str):
        try:
            _URL.validate_python(body["url"])
        except ValidationError:
            return body
        return {**body, "url": DEAD_END}
    return body

"""Examples in the OpenAPI document: the models' own (`schemas/`) as written, and beyond them each
JSON body shows its model's first example where the operation names none, each error its problem
details, and each parameter a value naming the example resources. Tools that read only the latter
(Postman's converter, code generators) then show real-looking requests and answers too."""

import copy
from collections.abc import Iterator
from typing import Any

from api.errors import PROBLEM_JSON, ApiError
from schemas.base import WireModel

PATH_PARAMETER_EXAMPLES = {
    "campaign_id": "spring-launch",
    "influencer_id": "inf_priya_sharma",
    "endpoint_id": "ep_d08c523c92694efc",
    "brief_id": "brf_9410ebd1eff14ea4bc5325cee9f184f5",
    "load_id": "30466e9e50c745a38f74e0d930e6aa9c",
}
PARAMETER_EXAMPLES = {
    **PATH_PARAMETER_EXAMPLES,
    "campaignId": "spring-launch",
    "platform": "instagram",
    "category": "Fitness",
    "status": "live",
    "kind": "spike",
    "since": "2026-12-05T00:00:00Z",
    "if-match": '"1"',
    "idempotency-key": "create-spring-launch",
}
"""By parameter name (the API uses each name with one meaning)."""
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    **{kind.status: kind.title for kind in ApiError.__subclasses__()},
}


def _wire_models(base: type[WireModel] = WireModel) -> Iterator[type[WireModel]]:
    for model in base.__subclasses__():
        yield model
        yield from _wire_models(model)


def _restore_model_examples(components: dict[str, Any]) -> None:
    # FastAPI drops every null from the document it builds, those of examples included, which
    # leaves required nullable fields (`nextCursor: null`) out of an answer's example.
    for model in _wire_models():
        extra = model.model_config.get("json_schema_extra")
        component = components.get(model.__name__)
        if isinstance(extra, dict) and "examples" in extra and component is not None:
            component["examples"] = copy.deepcopy(extra["examples"])


def _model_example(content: dict[str, Any], components: dict[str, Any]) -> None:
    if "example" in content or "examples" in content:
        return
    ref = content.get("schema", {}).get("$ref")
    examples = components.get(str(ref).rsplit("/", 1)[-1], {}).get("examples") if ref else None
    if examples:
        content["example"] = examples[0]


def _problem_example(status: int, description: str | None, instance: str) -> dict[str, Any]:
    return {
        "type": "about:blank",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": description,
        "instance": instance,
    }


def document_examples(schema: dict[str, Any]) -> None:
    """Add the examples to an OpenAPI document in place; examples it has are kept."""
    components = schema.get("components", {}).get("schemas", {})
    _restore_model_examples(components)
    for path, operations in schema.get("paths", {}).items():
        instance = path
        for name, value in PATH_PARAMETER_EXAMPLES.items():
            instance = instance.replace("{" + name + "}", value)
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                example = PARAMETER_EXAMPLES.get(parameter["name"])
                if example is not None:
                    parameter.setdefault("example", example)
            for content in operation.get("requestBody", {}).get("content", {}).values():
                _model_example(content, components)
            for code, response in operation.get("responses", {}).items():
                # Error responses share one content object: each gets its own example.
                response_content = {
                    media: dict(content) for media, content in response.get("content", {}).items()
                }
                if response_content:
                    response["content"] = response_content
                for media, content in response_content.items():
                    if media == PROBLEM_JSON and code.isdigit():
                        content.setdefault(
                            "example",
                            _problem_example(int(code), response.get("description"), instance),
                        )
                    else:
                        _model_example(content, components)

"""The OpenAPI document in the repository (docs/openapi.json) is the one the app serves, the Postman
collection made from it has the same operations, and every request and response model carries
examples the model itself accepts (responses: exactly as the API renders them). No engine needed:
the document is built without starting anything."""

import importlib
import inspect
import json
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

import schemas
from api.main import create_app
from api.openapi import DOCUMENT, POSTMAN_COLLECTION, render
from tests.conftest import JWT_SECRET, SECRETS_KEY, make_settings

REPO = Path(__file__).resolve().parents[2]
_REGENERATE = "run `make openapi` and commit docs/openapi.json and docs/postman_collection.json"
# FastAPI's own model of the multipart upload: a file, for which no JSON example means anything.
_NO_EXAMPLES = {"Body_upload_etl_uploads_post"}
_METHODS = {"get", "post", "put", "patch", "delete", "head", "options"}


@pytest.fixture(scope="module")
def served() -> dict[str, Any]:
    """`GET /openapi.json` of an app whose lifespan never runs (the document needs none)."""
    app = create_app(make_settings(env="test", jwt_secret=JWT_SECRET, secrets_key=SECRETS_KEY))
    response = TestClient(app).get("/openapi.json")
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


def test_the_committed_document_is_the_served_one(served: dict[str, Any]) -> None:
    committed = (REPO / DOCUMENT).read_text(encoding="utf-8")
    assert committed == render(served), f"docs/openapi.json is stale: {_REGENERATE}"


def _operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, operations in doc["paths"].items()
        for method in operations
        if method in _METHODS
    }


def _requests(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        if "item" in item:
            yield from _requests(item["item"])
        else:
            yield item["request"]


def test_the_postman_collection_has_every_operation(served: dict[str, Any]) -> None:
    collection = json.loads((REPO / POSTMAN_COLLECTION).read_text(encoding="utf-8"))
    assert collection["info"]["name"] == served["info"]["title"]
    found = set()
    for request in _requests(collection["item"]):
        segments = request["url"]["path"]
        # Postman writes a path parameter as `:name`; OpenAPI as `{name}`.
        path = "/" + "/".join(re.sub(r"^:(.+)$", r"{\1}", s) for s in segments)
        found.add((request["method"], path))
    assert found == _operations(served), f"the collection is stale: {_REGENERATE}"


def _models() -> dict[str, type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {}
    for module_info in pkgutil.iter_modules(schemas.__path__):
        module = importlib.import_module(f"schemas.{module_info.name}")
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, BaseModel):
                found.setdefault(name, value)
    return found


def _refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str):
            yield ref.rsplit("/", 1)[-1]
        for item in value.values():
            yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def _reachable(doc: dict[str, Any], roots: list[Any]) -> set[str]:
    components = doc["components"]["schemas"]
    seen: set[str] = set()
    todo = [name for root in roots for name in _refs(root)]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_refs(components[name]))
    return seen


def _sides(doc: dict[str, Any]) -> tuple[set[str], set[str]]:
    operations = [
        operation
        for path_item in doc["paths"].values()
        for method, operation in path_item.items()
        if method in _METHODS
    ]
    requests = _reachable(doc, [op.get("requestBody", {}) for op in operations])
    responses = _reachable(doc, [op["responses"] for op in operations])
    return requests, responses


def test_every_request_and_response_model_has_examples(served: dict[str, Any]) -> None:
    requests, responses = _sides(served)
    components = served["components"]["schemas"]
    missing = [
        name
        for name in sorted((requests | responses) - _NO_EXAMPLES)
        if components[name].get("type") == "object" and not components[name].get("examples")
    ]
    assert not missing, f"models without examples: {missing}"
    for path_item in served["paths"].values():
        for method, operation in path_item.items():
            if method not in _METHODS:
                continue
            for code, response in operation["responses"].items():
                for media, content in response.get("content", {}).items():
                    if media.endswith("json"):
                        assert content.get("schema") or content.get("example"), (method, code)


def test_examples_are_what_the_models_accept_and_render(served: dict[str, Any]) -> None:
    """A request example validates; a response example is also exactly what the API would send
    for it (dates, decimals and field names as rendered)."""
    requests, responses = _sides(served)
    models = _models()
    components = served["components"]["schemas"]
    checked = 0
    for name in sorted((requests | responses) - _NO_EXAMPLES):
        for example in components[name].get("examples", []):
            if name not in models:  # an enum's values are its examples
                continue
            value = models[name].model_validate(example)
            if name in responses:
                rendered = value.model_dump(mode="json", by_alias=True, exclude_unset=True)
                assert rendered == example, name
            checked += 1
    assert checked > 50


def _bodies(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(where, status code or "request", media-type object) of every JSON body."""
    for path, path_item in doc["paths"].items():
        for method, operation in path_item.items():
            if method not in _METHODS:
                continue
            where = f"{method.upper()} {path}"
            for media_type, media in operation.get("requestBody", {}).get("content", {}).items():
                if media_type.endswith("json"):
                    yield where, "request", media
            for code, response in operation["responses"].items():
                for media_type, media in response.get("content", {}).items():
                    if media_type.endswith("json"):
                        yield where, code, media


def test_operation_examples_are_bodies_the_models_accept(served: dict[str, Any]) -> None:
    """The examples each operation shows (the model's own, named ones such as POST /events' one
    event and array, problem details per status) are bodies of the operation's model; every
    JSON body has one."""
    models = _models()
    for where, code, media in _bodies(served):
        named = [example["value"] for example in media.get("examples", {}).values()]
        examples = [media["example"]] if "example" in media else named
        assert examples, (where, code)
        ref = media.get("schema", {}).get("$ref")
        for example in examples:
            if ref is None:
                continue
            model = models[ref.rsplit("/", 1)[-1]]
            for body in example if isinstance(example, list) else [example]:
                model.model_validate(body)
            if model.__name__ == "Problem":
                assert example["status"] == int(code), where
    events = served["paths"]["/events"]["post"]["requestBody"]["content"]["application/json"]
    assert [type(e["value"]) for e in events["examples"].values()] == [dict, list]
